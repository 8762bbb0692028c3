"""Convert the real rows of the suite's BIG-bench tasks once: `python -m harp.cli.task_data eval=<suite>`.

Reads each task's task.json from BIG-bench's PyPI archive (`eval.bigbench_archive`, default
`data/bigbench/bigbench-1.0.0.tar.gz`, sha256-checked; `make data` fetches it) and writes `<eval.data_dir>/bigbench/`:
`<task>.jsonl` (the rows of the hub dataset `hails/bigbench`, as its builder makes them) and a provenance record
per task (the evaluate stage points lm-eval's own task definitions at the rows). The folder is written whole or
not at all, and can be moved with its results; a suite without BIG-bench tasks has nothing to convert.
"""

from __future__ import annotations

from harp import artifacts
from harp.cli._app import stage
from harp.config import Config
from harp.data import bigbench
from harp.eval.tasks import selected, suite_task
from harp.io import atomic_dir


def bigbench_folders(cfg: Config) -> list[str]:
    """BIG-bench task folders of the configured tasks."""
    return [row.bigbench for row in map(suite_task, selected(cfg.eval.tasks, None)) if row.bigbench]


@stage("task_data")
def main(cfg: Config, tracker) -> None:
    folders = bigbench_folders(cfg)
    if not folders:
        print(f"eval={cfg.eval.suite} has no BIG-bench task: nothing to convert.")
        return
    archive = bigbench.archive_path(cfg.eval.bigbench_archive)  # missing or damaged: one sentence, nothing written
    target = artifacts.bigbench_rows(cfg.eval.data_dir).resolve()
    with atomic_dir(target) as tmp:
        records = bigbench.build_tasks(folders, tmp, archive)
    for task, record in records.items():
        print(f"{task}: {record['rows']} rows, chance {record['chance']:.3f} -> {target}")


if __name__ == "__main__":
    main()
