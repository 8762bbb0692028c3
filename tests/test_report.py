"""Reporting: collect -> tables / figures / report.md / notebook, from a synthetic results tree.

The tables are checked against the JSON files themselves (not against the collected frame), so a
bug anywhere between the result files and the LaTeX shows up here.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harp import methods
from harp.errors import HarpError
from harp.eval.tasks import SUITE
from harp.eval.tasks import label as task_label
from harp.report.collect import collect, load_results
from harp.report.latex import overflows
from harp.report.page import summary
from harp.report.tables import build_tables, latex_escape, method_order
from tests.report_fixtures import ABLATIONS, METHODS, MODELS, PUBLISHED, TASKS, make_results

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_DIR = "ablations/published_alphas"


def label(method: str, published: bool = False) -> str:
    """A row's label as the LaTeX shows it."""
    return latex_escape(methods.label(method) + (", published α" if published else ""))


# row label -> (run folder under results/, method)
DISPLAY = {label(m): ("", m) for m in METHODS} | {label(m, True): (PUBLISHED_DIR, m) for m in PUBLISHED["qwen2_7b"]}
ROWS = {  # the methods in table order, each searched run followed by its published-alpha rerun (qwen2_7b only)
    "qwen2_7b": [label("dense"), label("harp"), label("harp", True), label("harp_flap"), label("harp_flap", True)]
    + [label("wanda_sp")],
    "tiny": [label("dense"), label("harp"), label("harp_flap"), label("wanda_sp")],
}
BLOCKS = {"Qwen/Qwen2-7B": "qwen2_7b", "tiny model (tiny, built here)": "tiny"}
RULES = re.compile(r"\\(toprule|midrule|bottomrule)")
TITLE = re.compile(r"\\multicolumn\{(\d+)\}\{l\}\{\\textit\{(.*)\}\}")


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


def blocks(rows: list[list[str]]) -> dict[str, list[list[str]]]:
    """The rows of each model block of a paper table, by block title (the line that opens the block)."""
    out: dict[str, list[list[str]]] = {}
    for row in rows:
        if title := TITLE.fullmatch(row[0]):
            out[title.group(2)] = []
        else:
            out[list(out)[-1]].append(row)
    return out


def check_bold(rows: list[list[str]], column: int, how: str = "max", margin: float = 0.0) -> None:
    """Bold exactly on the best value among the pruned rows (Dense, the reference, never), and nowhere when the
    pruned rows do not differ or the best leads the next by no more than `margin` (the block's stderr row)."""
    values = [cell(r[column]) for r in rows]
    dense = [r[0] == "Dense" for r in rows]
    pruned = sorted({v for (v, _), d in zip(values, dense) if v is not None and not d}, reverse=how == "max")
    best = pruned[0] if len(pruned) > 1 and abs(pruned[0] - pruned[1]) > margin else None
    assert [bold for _, bold in values] == [v == best and not d for (v, _), d in zip(values, dense)]


def stderr(results: Path, model: str, method: str, task: str, run_dir: str = "") -> float:
    data = json.loads((results / run_dir / model / method / "eval" / f"{task}.json").read_text())
    return data["stderr"][data["primary_metric"]]


def check_scores(results: Path, model: str, category: str, header: list[str], body: list[list[str]]) -> None:
    """Every row of a score table against the result files: tasks (short names), Avg, pruning ratio, KV cache."""
    tasks = [t for t in SUITE if t in TASKS[category]]  # the paper's order
    assert header == ["Method", *(task_label(t) for t in tasks), "Avg", "Pruned (\\%)", "KV cache (-\\%)"]
    assert all(len(r) == len(header) for r in body)
    *body, errors = body  # the last row: each column's largest stderr, what a difference must exceed to be bold
    assert [r[0] for r in body] == ROWS[model] and errors[0] == "$\\pm$ stderr"
    runs = [DISPLAY[r[0]] for r in body]
    largest = [max(stderr(results, model, m, t, d) for d, m in runs) for t in tasks]
    assert [cell(c)[0] for c in errors[1 : 1 + len(tasks)]] == [round(100 * e, 1) for e in largest]
    for row in body:
        run_dir, method = DISPLAY[row[0]]
        scores = [score(results, model, method, t, run_dir) for t in tasks]
        assert [cell(c)[0] for c in row[1 : 1 + len(tasks)]] == [round(100 * s, 1) for s in scores]
        assert cell(row[1 + len(tasks)])[0] == round(100 * sum(scores) / len(scores), 1)
        plan = json.loads((results / run_dir / model / method / "plan.json").read_text())
        assert cell(row[-2])[0] == round(100 * plan["pruning_ratio"], 1)
        assert cell(row[-1])[0] == round(100 * plan["kv_cache_reduction"], 1)
    for column in range(1, 2 + len(tasks)):
        check_bold(body, column, margin=cell(errors[column])[0])
    assert not any(cell(r[-1])[1] or cell(r[-2])[1] for r in body), "budgets are not scores: never bold"


def test_collect_builds_a_tidy_frame(results):
    frame = load_results(results / "all_results.csv")
    runs = len(MODELS) * len(METHODS) + sum(map(len, ABLATIONS.values())) + sum(map(len, PUBLISHED.values()))
    tasks = sum(map(len, TASKS.values()))
    counts = frame.kind.value_counts()
    assert counts["eval"] == runs * tasks  # the half-written .boolq.json.*.tmp is skipped
    assert counts["perplexity"] == runs
    assert set(frame.experiment) == {"main", "published_alphas", *ABLATIONS}
    alphas = frame[frame.kind == "alpha"].sort_values("layer", ascending=False)
    qwen = alphas[(alphas.model == "qwen2_7b") & (alphas.experiment == "main")]
    assert list(qwen.layer) == [27, 26, 25, 24]
    assert list(qwen.published_alpha) == [0.9, 0.3, 0.3, 0.2]  # as the search stage records them, last layer first
    assert alphas[alphas.model == "tiny"].published_alpha.isna().all()
    published = alphas[alphas.experiment == "published_alphas"]
    assert list(published.alpha) == [0.9, 0.3, 0.3, 0.2] and not published.searched.any()
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


@pytest.mark.parametrize("category", list(TASKS))
def test_paper_tables_have_one_block_per_model_and_match_the_json_files(results, category):
    tex = (results / "tables" / f"{category}.tex").read_text()
    spec, rows = parse_tabular(tex)
    header = rows[0]
    assert spec == "l" + "r" * (len(header) - 1)
    found = blocks(rows[1:])
    assert list(found) == list(BLOCKS)  # the models as row blocks, in name order
    for title, body in found.items():
        check_scores(results, BLOCKS[title], category, header, body)
    assert tex.count("\\midrule") == 1 + len(BLOCKS) - 1  # under the header, then between blocks
    assert "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}" in tex  # scaled down to fit
    caption = re.search(r"\\caption\{(.*?)\}\n", tex, re.DOTALL).group(1)
    assert len(caption) < 200 and "Not paper numbers: fixture data, limit 8, tiny model." in caption  # one short line
    notes = (results / "tables" / "tables.tex").read_text()  # what every table shares, once, where the tables open
    assert "FIXTURE DATA (tiny)" in notes and "published $\\alpha$" in notes and "one decimal" in notes
    assert f"{latex_escape(label('harp_flap'))}: HARP, then FLAP MLP-channel pruning up to the paper" in notes


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("category", list(TASKS))
def test_per_model_score_tables_match_the_json_files(results, model, category):
    tex = (results / "tables" / f"{model}_{category}.tex").read_text()
    _, rows = parse_tabular(tex)
    check_scores(results, model, category, rows[0], rows[1:])
    caption = re.search(r"\\caption\{(.*?)\}\n", tex, re.DOTALL).group(1)
    assert ("Not paper numbers: fixture data, limit 8, tiny model." in caption) == MODELS[model][3]


def test_bold_only_where_the_pruned_rows_differ():
    import pandas as pd

    from harp.report.tables import Table, to_latex, to_markdown

    frame = pd.DataFrame({"Method": ["Dense", "A", "B", "A", "B"], "x": [9.0, 1.0, 1.0, 1.0, 2.0]})
    table = Table("t", "c", frame, {"x": "max"}, reference=[0], blocks=[("one", [0, 1, 2]), ("two", [3, 4])])
    _, rows = parse_tabular(to_latex(table))
    assert [cell(r[1])[1] for r in rows[1:] if len(r) > 1] == [False, False, False, False, True]
    markdown = to_markdown(table)
    assert re.search(r"\| B +\| \*\*2\.0\*\* +\|", markdown) and re.search(r"\| \*one\* +\| +\|", markdown)


def test_ablation_table(results):
    _, rows = parse_tabular((results / "tables" / "qwen2_7b_ablations.tex").read_text())
    header, body = rows[0], rows[1:]
    assert header == [
        "Run",
        "Layers",
        "Generation",
        "Discriminative",
        "LongBench",
        "Avg",
        "PPL",
        "Pruned (\\%)",
        "KV cache (-\\%)",
    ]
    runs = {
        "Dense": ("", "dense"),
        "HARP": ("", "harp"),
        "layers\\_bottom": ("ablations/layers_bottom", "harp"),
        "no\\_rescale": ("ablations/no_rescale", "harp"),
        label("harp", True): (PUBLISHED_DIR, "harp"),
        label("harp_flap", True): (PUBLISHED_DIR, "harp_flap"),
    }
    assert [r[0] for r in body] == list(runs)
    for row in body:
        run_dir, method = runs[row[0]]
        alphas = results / run_dir / "qwen2_7b" / "harp" / "alphas.json"
        reads_alphas = method.startswith("harp") and alphas.exists()  # the ablation fixtures have no alphas file
        layers = sorted(map(int, json.loads(alphas.read_text())["alphas"])) if reads_alphas else None
        assert row[1] == (f"{layers[0]}-{layers[-1]}" if layers else "--")  # the fixtures prune the top layers
        row = [row[0], *row[2:]]
        for i, category in enumerate(TASKS, start=1):
            scores = [score(results, "qwen2_7b", method, t, run_dir) for t in TASKS[category]]
            assert cell(row[i])[0] == round(100 * sum(scores) / len(scores), 1)
        ppl = json.loads((results / run_dir / "qwen2_7b" / method / "ppl.json").read_text())["perplexity"]
        assert cell(row[5])[0] == round(ppl, 2)
        plan = json.loads((results / run_dir / "qwen2_7b" / method / "plan.json").read_text())
        assert cell(row[7])[0] == round(100 * plan["kv_cache_reduction"], 1)
    numbers = [[r[0], *r[2:]] for r in body]
    for column in range(1, 5):
        check_bold(numbers, column, "max")
    check_bold(numbers, 5, "min")
    assert "FIXTURE DATA" in (results / "tables" / "tiny_ablations.tex").read_text()


def test_perplexity_table(results):
    _, rows = parse_tabular((results / "tables" / "perplexity.tex").read_text())
    assert rows[0] == ["Method", *(latex_escape(m) for m in sorted(MODELS))]
    assert [r[0] for r in rows[1:]] == ROWS["qwen2_7b"]
    for row in rows[1:]:
        run_dir, method = DISPLAY[row[0]]
        for model, text in zip(sorted(MODELS), row[1:]):
            path = results / run_dir / model / method / "ppl.json"
            assert cell(text)[0] == (round(json.loads(path.read_text())["perplexity"], 2) if path.exists() else None)
    for column in range(1, 1 + len(MODELS)):
        check_bold(rows[1:], column, "min")


def test_alpha_table_against_published(results):
    _, rows = parse_tabular((results / "tables" / "alphas.tex").read_text())
    assert rows[0] == ["Model", "Layer", "Searched alpha", "Published alpha"]
    searched = json.loads((results / "qwen2_7b" / "harp" / "alphas.json").read_text())["alphas"]
    qwen = rows[1:5]
    assert qwen[0][0] == "qwen2\\_7b" and [r[1] for r in qwen] == ["27", "26", "25", "24"]
    assert [float(r[2]) for r in qwen] == [round(searched[r[1]], 2) for r in qwen]
    assert [float(r[3]) for r in qwen] == [0.9, 0.3, 0.3, 0.2]
    assert [r[3] for r in rows[5:]] == ["--"] * 3  # tiny: nothing published
    assert "TINY MODEL (tiny)" in (results / "tables" / "alphas.tex").read_text()


def test_figures_are_written(results):
    for name in ("fig1_methods", "fig1_rescaling", "fig2_alphas", "fig3_speed", "search_trace"):
        for suffix in (".pdf", ".png"):
            path = results / "figures" / f"{name}{suffix}"
            assert path.exists() and path.stat().st_size > 1024, path


def test_figure1_left_compares_the_methods_on_one_model(results):
    from harp.report.figures import figure1_model, methods_by_category

    assert figure1_model(["tiny", "qwen2_7b"]) == "qwen2_7b"  # no Llama-3.1-8B: the first model by name
    assert figure1_model(["tiny", "llama3_1_8b", "gemma2_9b"]) == "llama3_1_8b"  # the paper's
    frame = load_results(results / "all_results.csv")
    fig = methods_by_category(frame)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Generation", "Discriminative", "LongBench"]
    shown = method_order(METHODS)  # the tables' order
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [methods.label(m) for m in shown]
    harp = [p.get_height() for p in ax.containers[shown.index("harp")]]
    expected = [100 * sum(score(results, "qwen2_7b", "harp", t) for t in ts) / len(ts) for ts in TASKS.values()]
    assert harp == pytest.approx(expected, abs=0.051)
    tiny = methods_by_category(frame[frame.model == "tiny"]).axes[0].get_title()
    assert "fixture data" in tiny and "tiny model" in tiny


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
    assert re.search(r"\| \*Qwen/Qwen2-7B\* +\|", page) and "HARP, published α" in page  # the paper's blocks


def test_summary_opens_with_the_real_data_else_the_first_table(results):
    """The text a finished `snakemake` prints: each model evaluated on real data at a glance; with fixtures alone
    (the tiny model) the first table, labelled as a pipeline check."""
    assert (results / "summary.md").read_text().startswith("## Qwen/Qwen2-7B: at a glance")
    frame = load_results(results / "all_results.csv")
    tiny = frame[frame.model == "tiny"]
    tables = build_tables(tiny)
    assert summary(tiny, tables).startswith(f"## {tables[0].name} (pipeline check, not paper numbers)")


def test_report_stage_needs_collect_first(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_stage("report", tmp_path)
    assert exit_.value.code == 2 and "does not exist; rerun the collect stage" in capsys.readouterr().err


def test_the_report_stage_executes_the_notebook_on_its_results(results):
    """notebooks/results.ipynb, run top to bottom on this results folder, is written beside the report."""
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(results / "results.ipynb", as_version=4)
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 5
    assert not [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


# --- the LaTeX document and its PDF ---------------------------------------------------------------------------
def test_tables_document_inputs_every_table(results):
    doc = (results / "tables" / "tables.tex").read_text()
    inputs = re.findall(r"\\input\{(.*?)\}", doc)
    assert sorted(inputs) == sorted(p.stem for p in (results / "tables").glob("*.tex") if p.stem != "tables")
    assert inputs[:3] == list(TASKS)  # the paper's tables first
    assert "\\usepackage{booktabs}" in doc and "\\usepackage{graphicx}" in doc
    assert "\\usepackage[T1]{fontenc}" in doc  # else `L<i>` prints as "L¡i¿"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (.ci/run installs it)")
def test_report_stage_builds_a_pdf_where_every_table_fits(results):
    """The stage's own build: no LaTeX error, no line wider than 1 pt, no float taller than the page."""
    assert (results / "tables" / "tables.pdf").stat().st_size > 1024
    log = (results / "logs" / "tables.pdflatex.log").read_text(errors="replace")
    assert "Output written on" in log and not re.search(r"^! ", log, re.M)
    assert overflows(log) == []


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (.ci/run installs it)")
def test_paper_sized_tables_fit_the_page(tmp_path):
    """Four models, every method with the published-alpha reruns, all 27 tasks: the widest and tallest tables."""
    import pandas as pd

    from harp.report.latex import build_pdf, document
    from harp.report.tables import paper_tables, write_tables

    runs = [("main", m) for m in methods.METHODS] + [("published_alphas", m) for m in ("harp", "harp_flap")]
    rows = [
        dict(experiment=e, model=model, method=m, model_id=f"org/{model}", task=t.name, category=t.category)
        for model in ("llama3_1_8b", "mistral_7b_v0_3", "qwen2_7b", "gemma2_9b")
        for e, m in runs
        for t in SUITE.values()
        if not t.bigbench  # the paper's 27 tasks
    ]
    frame = pd.DataFrame(rows).assign(kind="eval", score=0.5, limit=None, fixture=False, tiny_model=False)
    frame = frame.assign(pruning_ratio=0.02, kv_cache_reduction=0.25, score=[i % 97 / 97 for i in range(len(frame))])
    tables = paper_tables(frame)
    names = ["generation", "discriminative", "longbench", "longbench_2", "longbench_3"]  # LongBench's 16: 3 parts
    assert [t.name for t in tables] == names
    write_tables(tables, tmp_path)
    (tmp_path / "tables.tex").write_text(document([t.name for t in tables]))
    build_pdf(tmp_path / "tables.tex", tmp_path / "tables.log")
    assert overflows((tmp_path / "tables.log").read_text(errors="replace")) == []
    assert re.findall(r"Output written on .*\((\d+) pages?", (tmp_path / "tables.log").read_text()) == ["5"]
    # no table's text below 80% of its size: each tabular's natural width against the width it is set in
    for table in tables:
        tex = (tmp_path / f"{table.name}.tex").read_text()
        tabular = tex[tex.index("\\begin{tabular}") : tex.index("\\end{tabular}") + len("\\end{tabular}")]
        (tmp_path / "width.tex").write_text(
            "\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage{booktabs}\\newsavebox\\tab"
            f"\\begin{{document}}\\sbox\\tab{{{tabular}}}\\typeout{{WIDTH=\\the\\wd\\tab}}\\end{{document}}"
        )
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "width.tex"], cwd=tmp_path, capture_output=True)
        natural = float(re.findall(rb"WIDTH=([\d.]+)pt", run.stdout)[-1])
        room = 550.0 if "sidewaystable" in tex else 345.0  # article's text height (landscape) or width
        assert min(1.0, room / natural) >= 0.8, (table.name, natural, room)


FAKE_PDFLATEX = """#!/bin/sh
for a in "$@"; do case $a in -output-directory=*) out=${a#-output-directory=};; esac; done
printf '! Undefined control sequence.\\nl.3 \\\\oops\\n' > "$out/tables.log"
exit 1
"""


def test_a_latex_error_is_one_sentence_and_keeps_the_previous_outputs(tmp_path, monkeypatch, capsys):
    results = make_results(tmp_path)
    run_stage("collect", results)
    run_stage("report", results)
    before = {p: p.read_bytes() for p in [results / "report.md", *sorted((results / "tables").iterdir())]}
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pdflatex").write_text(FAKE_PDFLATEX)
    (fake / "pdflatex").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    with pytest.raises(SystemExit) as exit_:
        run_stage("report", results)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "(Undefined control sequence.)" in err and str(results / "logs" / "tables.pdflatex.log") in err
    assert {p: p.read_bytes() for p in before} == before  # nothing replaced
    assert "oops" in (results / "logs" / "tables.pdflatex.log").read_text()


def test_without_pdflatex_the_stage_says_so_and_writes_the_rest(tmp_path, monkeypatch, capsys):
    results = make_results(tmp_path)
    run_stage("collect", results)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    run_stage("report", results)
    assert "pdflatex is not on the PATH" in capsys.readouterr().out
    assert (results / "tables" / "tables.tex").exists() and not (results / "tables" / "tables.pdf").exists()
    assert (results / "report.md").exists()


def test_a_chance_row_under_each_model_block_is_never_bold():
    """The Chance row: uniform guessing per task (x100), its mean as Avg; a reference like Dense, never bold."""
    from harp.report.tables import CHANCE, paper_table

    rows = [
        {"kind": "eval", "experiment": "main", "model": "m", "method": meth, "task": task, "category": "discriminative"}
        | {"score": score, "chance": chance, "pruning_ratio": 0.0, "kv_cache_reduction": 0.0, "tiny_model": False}
        for meth, task, score, chance in [
            ("dense", "piqa", 0.8, 0.5),
            ("dense", "arc_challenge", 0.6, 0.25),
            ("harp", "piqa", 0.7, 0.5),
            ("harp", "arc_challenge", 0.5, 0.25),
        ]
    ]
    frame = pd.DataFrame(rows).assign(fixture=False, limit=None, model_id="m")
    table = paper_table(frame, "discriminative")
    chance = table.frame[table.frame.Method == CHANCE].iloc[0]
    assert (chance["ARC-c"], chance["PIQA"], chance["Avg"]) == (25.0, 50.0, 37.5)
    assert table.frame.index[table.frame.Method == CHANCE][0] in table.reference


def test_the_headline_compares_harp_with_the_best_head_pruning_baseline_and_says_what_rescaling_buys():
    from harp.report.headline import headline, sentences, summary

    def ppl(experiment, method, score):
        return {"kind": "perplexity", "experiment": experiment, "model": "m", "method": method, "score": score}

    def acc(method, task, score, stderr):
        return {"kind": "eval", "experiment": "main", "model": "m", "method": method, "task": task}, {
            "score": score,
            "stderr": stderr,
            "chance": 0.25,
            "fixture": False,
            "tiny_model": False,
        }

    rows = [ppl("main", "harp", 60.0), ppl("main", "flap", 40.0), ppl("main", "mag_sp", 90.0)]
    rows += [ppl("no_rescale", "harp", 180.0), ppl("bottom_layers", "harp", 3000.0)]
    rows += [
        a | b for a, b in (acc("harp", "t1", 0.5, 0.03), acc("harp", "t2", 0.3, 0.04), acc("flap", "t1", 0.6, 0.03))
    ]
    rows += [a | b for a, b in (acc("flap", "t2", 0.4, 0.04),)]
    frame = pd.DataFrame(rows).assign(model_id="m")
    said = sentences(frame, "m")
    # the best head-pruning baseline by perplexity is FLAP (40 < 90); means 40.0 and 50.0, stderr sqrt(.03²+.04²)/2
    assert said[0] == (
        "At the same budget, HARP's held-out perplexity is 60.0, higher than the best head-pruning baseline's "
        "(FLAP, 40.0); mean task accuracy 40.0 ± 2.5 against 50.0 ± 2.5."
    )
    assert said[1] == (
        "Rescaling takes HARP's held-out perplexity from 180.0 (alpha = 1) to 60.0 with the searched alphas, and "
        "the same number of layers pruned at the bottom gives 3000.0."
    )
    table = summary(frame, "m")
    assert list(table.Method)[-3:] == ["no_rescale", "bottom_layers", "Chance"]
    assert "## m: at a glance" in headline(frame)
