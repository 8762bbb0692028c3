"""An lm-eval task definition repointed at local rows: the one shape of every task YAML harp writes.

lm-eval's own definition is `include`d (its prompt, metric and filters unchanged); only where the rows come from
changes, to JSON files as they lie now. Written at evaluation time into a temporary folder, never kept beside the
data, so a data folder can move and nothing under results/ is ever loaded as a task definition.
"""

from __future__ import annotations

from pathlib import Path

import yaml


def write_repointed(out_dir: str | Path, task: str, include: str | Path, data_files: dict[str, Path]) -> Path:
    """`out_dir/<task>.yaml`: the definition `include` reading its splits from `data_files` (split -> JSON lines)."""
    config = {
        "include": str(include),
        "task": task,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(f) for split, f in data_files.items()}},
    }
    path = Path(out_dir) / f"{task}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
