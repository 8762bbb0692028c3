"""Tables, figures and the report page from the collected results: `python -m harp.cli.report`.

Reads `<results_dir>/all_results.csv` (the collect stage) and writes `tables/*.tex`,
`figures/*.{pdf,png}` and `report.md` under `<results_dir>`.
"""
from __future__ import annotations

from pathlib import Path

from harp.cli._app import stage
from harp.config import Config
from harp.io import atomic_dir
from harp.report.collect import load_results
from harp.report.figures import write_figures
from harp.report.page import render, write_page
from harp.report.tables import build_tables, write_tables


@stage("report", per_model=False)
def main(cfg: Config, run) -> None:
    results_dir = Path(cfg.results_dir)
    results = load_results(results_dir / "all_results.csv")
    tables = build_tables(results)
    with atomic_dir(results_dir / "tables") as tmp:  # whole directories: no stale table survives a rerun
        write_tables(tables, tmp)
    with atomic_dir(results_dir / "figures") as tmp:
        figures = [results_dir / "figures" / p.name for p in write_figures(results, tmp)]
    t = cfg.tracking
    write_page(render(results, tables, figures, results_dir, Path(t.dir), t.project, t.entity),
               results_dir / "report.md")
    if run is not None:
        import wandb

        run.log({f"figures/{p.stem}": wandb.Image(str(p)) for p in figures})
    print(f"{len(tables)} tables, {len(figures)} figures -> {results_dir / 'report.md'}")


if __name__ == "__main__":
    main()
