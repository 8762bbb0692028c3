"""The report page (markdown): the tables rendered, the figures embedded, and where every number came from."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd

from harp import artifacts
from harp.io import atomic_path
from harp.report import premise
from harp.report.figures import FIGURES
from harp.report.headline import headline
from harp.report.tables import Table, bool_column, caveats, flags, shared_notes, to_markdown

LIBRARIES = ("harp", "torch", "transformers", "lm_eval", "datasets", "pandas", "matplotlib", "wandb")


def git_commit(repo: Path = Path(".")) -> str:
    """The checkout's commit, `-dirty` when it has uncommitted changes; "unknown" outside git."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _models(results: pd.DataFrame) -> pd.DataFrame:
    """One line per model: hub id (or tiny), real or fixture data, sample cap, methods and experiments run."""
    lines = []
    for model, rows in results.groupby("model"):
        evals = rows[rows.kind == "eval"]
        ids = rows.model_id.dropna()
        data = (
            (
                "fixture"
                if evals.fixture.astype(bool).all()
                else "real"
                if not evals.fixture.astype(bool).any()
                else "mixed real/fixture"
            )
            if len(evals)
            else "--"
        )
        limits = evals.limit.dropna()
        lines.append(
            {
                "model": model,
                "model id": ids.iloc[0] if len(ids) else "--",
                "tiny": "yes" if bool_column(rows, "tiny_model").any() else "no",
                "data": data,
                "limit": int(limits.max()) if len(limits) else "none (complete)" if len(evals) else "--",
                "methods": ", ".join(sorted(set(rows.method.dropna()))),
                "experiments": ", ".join(sorted(set(rows.experiment.dropna()))),
            }
        )
    return pd.DataFrame(lines)


def _eval_versions(results: pd.DataFrame) -> list[str]:
    """The library versions the evaluation stages recorded (one line per distinct set)."""
    sets = results.loc[results.kind == "eval", "versions"].dropna().unique()
    return [", ".join(f"{k} {v}" for k, v in json.loads(s).items()) for s in sets if json.loads(s)]


def wandb_runs(wandb_dir: Path, out_dir: Path, entity: str | None, project: str) -> list[str]:
    """Markdown lines for each wandb run directory: a link to the online run when it can be built."""
    lines = []
    for run_dir in sorted(wandb_dir.glob("**/*run-*-*")):
        if not run_dir.is_dir():
            continue
        run_id = run_dir.name.rsplit("-", 1)[-1]
        online = not run_dir.name.startswith("offline-")
        link = f" ([online](https://wandb.ai/{entity}/{project}/runs/{run_id}))" if online and entity else ""
        try:
            shown = f"[{run_dir.name}]({run_dir.relative_to(out_dir)})"
        except ValueError:  # tracking.dir outside the results directory
            shown = f"`{run_dir}`"
        lines.append(f"- {shown}{link}" + ("" if online else " (offline: upload with `wandb sync <dir>`)"))
    return lines


def render(
    results: pd.DataFrame,
    tables: list[Table],
    figures: list[Path],
    out_dir: Path,
    wandb_dir: Path,
    wandb_project: str = "harp",
    wandb_entity: str | None = None,
    pdf_built: bool = False,
) -> str:
    """The page's markdown; paths are written relative to `out_dir` (where the page lies)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    source = artifacts.all_results(out_dir).relative_to(out_dir)
    lines = ["# HARP: results", "", f"Generated {stamp} from [{source}]({source}).", ""]
    warnings = [f"- **{m}** [{', '.join(flags(r))}]: {caveats(r)}" for m, r in results.groupby("model") if flags(r)]
    if warnings:
        banner = (
            "> **Not paper numbers.** Some results come from fixture data, capped evaluations or the tiny "
            "model; they test the pipeline only:"
        )
        lines += [banner, ">"] + [f"> {w}" for w in warnings] + [""]
    lines += headline(results)
    lines += [
        "## Provenance",
        "",
        _models(results).to_markdown(index=False),
        "",
        f"- git commit: `{git_commit()}`",
        "- libraries (report stage): " + ", ".join(f"{k} {v}" for k, v in library_versions().items()),
    ]
    lines += [f"- libraries (evaluation): {v}" for v in _eval_versions(results)] + [""]
    if said := premise.sentences(results):  # the diagnose stage's measurements, one sentence per model
        lines += ["## Theorem 1's premise in the pruned layers", "", *(f"- {s}" for s in said), ""]
    lines += ["## Tables", ""]
    tables_dir = artifacts.tables_dir(out_dir)
    doc, pdf = artifacts.tables_document(tables_dir), artifacts.tables_pdf(tables_dir)
    lines += [
        f"Every table in one LaTeX document: [{doc.relative_to(out_dir)}]({doc.relative_to(out_dir)})"
        + (f", compiled: [{pdf.relative_to(out_dir)}]({pdf.relative_to(out_dir)})" if pdf_built else "")
        + ". The first tables have the paper's layout (one per task category); the others are extras.",
        "",
        f"Notes to every table: {shared_notes(results)}",
        "",
    ]
    for table in tables:
        tex = artifacts.table_file(tables_dir, table.name).relative_to(out_dir)
        lines += [f"### {table.name}", "", to_markdown(table), "", f"LaTeX: [{tex}]({tex})", ""]
    lines += ["## Figures", ""]
    for png in figures:
        rel = png.relative_to(out_dir)
        caption = FIGURES[png.stem].__doc__.splitlines()[0] if png.stem in FIGURES else png.stem
        lines += [
            f"### {png.stem}",
            "",
            caption,
            "",
            f"![{png.stem}]({rel})",
            "",
            f"PDF: [{rel.with_suffix('.pdf')}]({rel.with_suffix('.pdf')})",
            "",
        ]
    runs = wandb_runs(wandb_dir, out_dir, wandb_entity, wandb_project)
    lines += ["## wandb runs", "", f"Project `{wandb_project}`, grouped by model, job type = stage.", ""]
    lines += runs or ["No wandb runs under " + f"`{wandb_dir}` (tracking disabled)."]
    return "\n".join(lines) + "\n"


def summary(results: pd.DataFrame, tables: list[Table]) -> str:
    """What a finished run prints in the terminal: the opening of each model evaluated on real data, else (the tiny
    model, fixtures) the first table."""
    lines = headline(results)
    if not lines and tables:
        lines = [f"## {tables[0].name} (pipeline check, not paper numbers)", "", to_markdown(tables[0]), ""]
    return "\n".join(lines) + "\n"


def write_page(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
