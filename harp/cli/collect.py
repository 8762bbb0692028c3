"""Collect every result file under `results/` into one tidy table: `python -m harp.cli.collect`.

Writes the collected table (CSV) into `<results_dir>` (columns documented in harp/report/collect.py).
"""

from __future__ import annotations

from pathlib import Path

from harp import artifacts
from harp.cli._app import log, stage
from harp.config import Config
from harp.errors import HarpError
from harp.report.collect import collect, write_results


@stage("collect", per_model=False)
def main(cfg: Config, tracker) -> None:
    results_dir = Path(cfg.results_dir)
    frame = collect(results_dir)
    if frame.empty:
        raise HarpError(f"No result files under {results_dir}; run the pipeline first (snakemake).")
    out = artifacts.all_results(results_dir)
    write_results(frame, out)
    counts = frame.kind.value_counts().to_dict()
    log(tracker, {f"rows/{kind}": n for kind, n in counts.items()})
    print(f"collected {len(frame)} rows ({', '.join(f'{n} {k}' for k, n in counts.items())}) -> {out}")


if __name__ == "__main__":
    main()
