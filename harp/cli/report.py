"""Tables, figures and the report page from the collected results: `python -m harp.cli.report`.

Reads the collected results (the collect stage) and writes LaTeX tables, figures (PDF and PNG) and the
report page under `<results_dir>` (`harp.artifacts` names them).
"""

from __future__ import annotations

from pathlib import Path

from harp import artifacts
from harp.cli._app import stage
from harp.config import Config
from harp.io import atomic_dir
from harp.report.collect import load_results
from harp.report.figures import write_figures
from harp.report.page import render, write_page
from harp.report.tables import build_tables, write_tables


@stage("report", per_model=False)
def main(cfg: Config, tracker) -> None:
    results_dir = Path(cfg.results_dir)
    results = load_results(artifacts.all_results(results_dir))
    tables = build_tables(results)
    with atomic_dir(artifacts.tables_dir(results_dir)) as tmp:  # whole directories: no stale table survives a rerun
        write_tables(tables, tmp)
    with atomic_dir(artifacts.figures_dir(results_dir)) as tmp:
        figures = [artifacts.figures_dir(results_dir) / p.name for p in write_figures(results, tmp)]
    t = cfg.tracking
    page = artifacts.report(results_dir)
    write_page(render(results, tables, figures, results_dir, Path(t.dir), t.project, t.entity), page)
    if tracker is not None:
        import wandb

        tracker.log({f"figures/{p.stem}": wandb.Image(str(p)) for p in figures})
    print(f"{len(tables)} tables, {len(figures)} figures -> {page}")


if __name__ == "__main__":
    main()
