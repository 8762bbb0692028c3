"""Reporting: collect -> tables / figures / report.md / notebook, from a synthetic results tree.

The tables are checked against the JSON files themselves (not against the collected frame), so a
bug anywhere between the result files and the LaTeX shows up here.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harp.errors import HarpError
from harp.report.collect import collect, load_results
from tests.report_fixtures import ABLATIONS, METHODS, MODELS, TASKS, make_results

ROOT = Path(__file__).resolve().parents[1]
DISPLAY = {"Dense": "dense", "HARP": "harp", "Wanda-sp": "wanda_sp"}
RULES = re.compile(r"\\(toprule|midrule|bottomrule)")


def run_stage(name: str, results: Path) -> None:
    """Run a stage's Hydra entry point in this process, as `python -m harp.cli.<name>` would."""
    module = importlib.import_module(f"harp.cli.{name}")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        mp.setattr(sys, "argv", [name, f"results_dir={results}", "tracking=disabled"])
        module.main()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """The synthetic tree after the collect and report stages ran on it (as snakemake runs them)."""
    results = make_results(tmp_path_factory.mktemp("report"))
    run_stage("collect", results)
    run_stage("report", results)
    return results


def parse_tabular(tex: str) -> tuple[str, list[list[str]]]:
    """(column spec, rows of cells) of the one tabular in `tex`, booktabs rules removed."""
    match = re.search(r"\\begin\{tabular\}\{([^}]*)\}(.*?)\\end\{tabular\}", tex, re.DOTALL)
    assert match, "no tabular environment"
    spec, body = match.groups()
    rows = [RULES.sub("", r).strip() for r in body.split("\\\\")]
    return spec, [[c.strip() for c in re.split(r"(?<!\\)&", r)] for r in rows if r]


def cell(text: str) -> tuple[float | None, bool]:
    """(number or None for `--`, bold?) of one table cell."""
    bold = text.startswith("\\textbf{")
    text = text.removeprefix("\\textbf{").removesuffix("}")
    return (None if text == "--" else float(text)), bold


def unescape(text: str) -> str:
    return text.replace("\\_", "_").replace("\\%", "%")


def score(results: Path, model: str, method: str, task: str, run_dir: str = "") -> float:
    path = results / run_dir / model / method / "eval" / f"{task}.json"
    return json.loads(path.read_text())["score"]


def check_bold(rows: list[list[str]], column: int, how: str = "max") -> None:
    """Bold exactly on the best value among the pruned rows (row 0 is Dense, the reference)."""
    values = [cell(r[column]) for r in rows]
    pruned = [v for v, _ in values[1:] if v is not None]
    best = max(pruned) if how == "max" else min(pruned)
    assert not values[0][1], "the Dense reference row must not be bolded"
    assert [bold for _, bold in values[1:]] == [v == best for v, _ in values[1:]]


def test_collect_builds_a_tidy_frame(results):
    frame = load_results(results / "all_results.csv")
    runs = len(MODELS) * len(METHODS) + sum(map(len, ABLATIONS.values()))
    tasks = sum(map(len, TASKS.values()))
    counts = frame.kind.value_counts()
    assert counts["eval"] == runs * tasks  # the half-written .boolq.json.*.tmp is skipped
    assert counts["perplexity"] == runs
    assert set(frame.experiment) == {"main", *ABLATIONS}
    alphas = frame[frame.kind == "alpha"].sort_values("layer", ascending=False)
    qwen = alphas[alphas.model == "qwen2_7b"]
    assert list(qwen.layer) == [27, 26, 25, 24]
    assert list(qwen.published_alpha) == [0.9, 0.3, 0.3, 0.2]  # as the search stage records them, last layer first
    assert alphas[alphas.model == "tiny"].published_alpha.isna().all()
    harp = frame[(frame.kind == "eval") & (frame.model == "qwen2_7b") & (frame.method == "harp")]
    assert (harp.kv_cache_reduction == 4 / 28).all() and harp.pruning_ratio.notna().all()


def test_corrupt_or_incomplete_results_name_the_file(tmp_path):
    results = make_results(tmp_path)
    bad = results / "tiny" / "dense" / "eval" / "piqa.json"
    bad.write_text('{"model": "tiny"')
    with pytest.raises(HarpError, match="piqa.json"):
        collect(results)
    bad.write_text('{"model": "tiny", "method": "dense"}')
    with pytest.raises(HarpError, match=r"piqa\.json lacks the key"):
        collect(results)
    with pytest.raises(HarpError, match="collect stage"):
        load_results(tmp_path / "nowhere.csv")


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("category", list(TASKS))
def test_score_tables_match_the_json_files(results, model, category):
    tex = (results / "tables" / f"{model}_{category}.tex").read_text()
    spec, rows = parse_tabular(tex)
    header, body = rows[0], rows[1:]
    tasks = TASKS[category]
    assert len(spec) == len(header) == 1 + len(tasks) + 3  # method, tasks, Avg, pruned, KV cache
    assert all(len(r) == len(header) for r in body)
    assert [r[0] for r in body] == ["Dense", "HARP", "Wanda-sp"]
    shown = [unescape(h) if category != "longbench" else f"longbench_{unescape(h)}" for h in header[1 : 1 + len(tasks)]]
    assert shown == sorted(tasks)
    for row in body:
        method = DISPLAY[row[0]]
        scores = [score(results, model, method, t) for t in shown]
        assert [cell(c)[0] for c in row[1 : 1 + len(tasks)]] == [round(100 * s, 1) for s in scores]
        assert cell(row[1 + len(tasks)])[0] == round(100 * sum(scores) / len(scores), 1)
        plan = json.loads((results / model / method / "plan.json").read_text())
        assert cell(row[-2])[0] == round(100 * plan["pruning_ratio"], 1)
        assert cell(row[-1])[0] == round(100 * plan["kv_cache_reduction"], 1)
    for column in range(1, 2 + len(tasks)):
        check_bold(body, column)
    assert not any(cell(r[-1])[1] or cell(r[-2])[1] for r in body), "budgets are not scores: never bold"
    caption = re.search(r"\\caption\{(.*?)\}\n", tex, re.DOTALL).group(1)
    assert "multiplied by 100 and rounded to one decimal" in caption
    tiny = MODELS[model][3]
    assert ("FIXTURE DATA" in caption) == tiny and ("CAPPED EVALUATION: at most 8 samples" in caption) == tiny


def test_ablation_table(results):
    _, rows = parse_tabular((results / "tables" / "qwen2_7b_ablations.tex").read_text())
    header, body = rows[0], rows[1:]
    assert header == [
        "Run",
        "Generation",
        "Discriminative",
        "LongBench",
        "Avg",
        "PPL",
        "Pruned (\\%)",
        "KV cache (-\\%)",
    ]
    assert [unescape(r[0]) for r in body] == ["Dense", "HARP", "layers_bottom", "no_rescale"]
    runs = {
        "Dense": ("", "dense"),
        "HARP": ("", "harp"),
        "layers_bottom": ("ablations/layers_bottom", "harp"),
        "no_rescale": ("ablations/no_rescale", "harp"),
    }
    for row in body:
        run_dir, method = runs[unescape(row[0])]
        for i, category in enumerate(TASKS, start=1):
            scores = [score(results, "qwen2_7b", method, t, run_dir) for t in TASKS[category]]
            assert cell(row[i])[0] == round(100 * sum(scores) / len(scores), 1)
        ppl = json.loads((results / run_dir / "qwen2_7b" / method / "ppl.json").read_text())["perplexity"]
        assert cell(row[5])[0] == round(ppl, 2)
        plan = json.loads((results / run_dir / "qwen2_7b" / method / "plan.json").read_text())
        assert cell(row[7])[0] == round(100 * plan["kv_cache_reduction"], 1)
    for column in range(1, 5):
        check_bold(body, column, "max")
    check_bold(body, 5, "min")
    assert "FIXTURE DATA" in (results / "tables" / "tiny_ablations.tex").read_text()


def test_perplexity_table(results):
    _, rows = parse_tabular((results / "tables" / "perplexity.tex").read_text())
    assert [unescape(h) for h in rows[0]] == ["Method", *sorted(MODELS)]
    for row in rows[1:]:
        for model, text in zip(sorted(MODELS), row[1:]):
            ppl = json.loads((results / model / DISPLAY[row[0]] / "ppl.json").read_text())["perplexity"]
            assert cell(text)[0] == round(ppl, 2)
    for column in range(1, 1 + len(MODELS)):
        check_bold(rows[1:], column, "min")


def test_alpha_table_against_published(results):
    _, rows = parse_tabular((results / "tables" / "alphas.tex").read_text())
    assert rows[0] == ["Model", "Layer", "Searched alpha", "Published alpha"]
    searched = json.loads((results / "qwen2_7b" / "harp" / "alphas.json").read_text())["alphas"]
    qwen = rows[1:5]
    assert unescape(qwen[0][0]) == "qwen2_7b" and [r[1] for r in qwen] == ["27", "26", "25", "24"]
    assert [float(r[2]) for r in qwen] == [round(searched[r[1]], 2) for r in qwen]
    assert [float(r[3]) for r in qwen] == [0.9, 0.3, 0.3, 0.2]
    assert [r[3] for r in rows[5:]] == ["--"] * 3  # tiny: nothing published
    assert "TINY MODEL (tiny)" in (results / "tables" / "alphas.tex").read_text()


def test_figures_are_written(results):
    for name in ("fig1_rescaling", "fig2_alphas", "fig3_speed", "search_trace"):
        for suffix in (".pdf", ".png"):
            path = results / "figures" / f"{name}{suffix}"
            assert path.exists() and path.stat().st_size > 1024, path


def test_report_page(results):
    page = (results / "report.md").read_text()
    for png in (results / "figures").glob("*.png"):
        assert f"](figures/{png.name})" in page
    for tex in (results / "tables").glob("*.tex"):
        assert f"](tables/{tex.name})" in page
    assert "Not paper numbers" in page and "**tiny** [fixture data, limit 8, tiny model]" in page
    assert "Qwen/Qwen2-7B" in page and "results/models/tiny" in page  # model ids in the provenance table
    assert re.search(r"git commit: `([0-9a-f]{40}(-dirty)?|unknown)`", page)
    assert "transformers " in page and "lm_eval 0.4.13" in page


def test_report_stage_needs_collect_first(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_stage("report", tmp_path)
    assert exit_.value.code == 2 and "run the collect stage first" in capsys.readouterr().err


def test_notebook_runs_top_to_bottom(results, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    monkeypatch.setenv("HARP_RESULTS_DIR", str(results))
    notebook = nbformat.read(ROOT / "notebooks" / "results.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}
    ).execute()
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_tables_compile_with_pdflatex(results, tmp_path):
    inputs = "\n".join(f"\\input{{{p}}}" for p in sorted((results / "tables").glob("*.tex")))
    (tmp_path / "tables.tex").write_text(
        f"\\documentclass{{article}}\n\\usepackage{{booktabs}}\n\\begin{{document}}\n{inputs}\n\\end{{document}}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 1024
