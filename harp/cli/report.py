"""Tables, figures and the report page from the collected results: `python -m harp.cli.report`.

Reads the collected results (the collect stage) and writes LaTeX tables, the document that inputs them
(and its PDF when pdflatex is on the PATH), figures (PDF and PNG) and the report page under `<results_dir>`
(`harp.artifacts` names them), and `notebooks/results.ipynb` executed on them (`<results_dir>/results.ipynb`, where
nbclient and a python3 kernel are installed). A LaTeX error stops the stage before anything is replaced, so the previous
tables, figures and page stay as they were; pdflatex's log is kept under `<results_dir>/logs/`.
"""

from __future__ import annotations

from pathlib import Path

from harp import artifacts
from harp.cli._app import stage
from harp.config import Config
from harp.io import atomic_dir
from harp.report.collect import check_current, load_results
from harp.report.figures import write_figures
from harp.report.latex import build_pdf, document, overflows
from harp.report.notebook import execute_notebook
from harp.report.page import render, summary, write_page
from harp.report.tables import build_tables, shared_notes, write_tables


@stage("report", per_model=False)
def main(cfg: Config, tracker) -> None:
    results_dir = Path(cfg.results_dir)
    source = artifacts.all_results(results_dir)
    results = load_results(source)
    check_current(results, source, results_dir)
    tables = build_tables(results)
    log = artifacts.latex_log(results_dir)
    tables_dir, figures_dir = artifacts.tables_dir(results_dir), artifacts.figures_dir(results_dir)
    # whole folders, swapped in only when everything is built: no stale table survives, no failure loses one
    with atomic_dir(tables_dir) as tables_tmp, atomic_dir(figures_dir) as figures_tmp:
        write_tables(tables, tables_tmp)
        tex = artifacts.tables_document(tables_tmp)
        tex.write_text(document([t.name for t in tables], shared_notes(results)))
        pdf = build_pdf(tex, log)
        figures = [figures_dir / p.name for p in write_figures(results, figures_tmp)]
        t = cfg.tracking
        page = render(results, tables, figures, results_dir, Path(t.dir), t.project, t.entity, pdf is not None)
    write_page(summary(results, tables), artifacts.summary(results_dir))
    write_page(page, artifacts.report(results_dir))
    if not execute_notebook(results_dir, artifacts.notebook(results_dir)):
        print("nbclient or a python3 kernel is not installed: the executed notebook is skipped")
    pdf_path = artifacts.tables_pdf(tables_dir)
    if pdf is None:
        print(f"pdflatex is not on the PATH: {pdf_path} skipped (its .tex needs the booktabs and graphicx packages)")
    elif problems := overflows(log.read_text(errors="replace")):
        print(f"warning: {pdf_path} has {len(problems)} overflow(s), e.g. {problems[0]}; see {log}")
    if tracker is not None:
        import wandb

        tracker.log({f"figures/{p.stem}": wandb.Image(str(p)) for p in figures})
    pdf_note = f" ({pdf_path})" if pdf else ""
    print(f"{len(tables)} tables{pdf_note}, {len(figures)} figures -> {artifacts.report(results_dir)}")


if __name__ == "__main__":
    main()
