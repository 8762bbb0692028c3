"""Offline fixtures: a small local dataset for each suite task, run through the task's own definition.

For every task of `harp.eval.tasks` we write JSON-lines files with exactly the fields and splits its task
definition reads (documents from the row's builder, `harp.eval.fixture_docs`); at evaluation, a task YAML written
beside the run (never kept with the data) `include`s that definition and only repoints the data (`dataset_path:
json`, `data_files`). Prompts, filters
and metrics therefore stay the definition's: lm-eval's installed YAML, or for the LongBench tasks ours
(harp/eval/longbench, LongBench's raw row schema). A group keeps the subtasks its row lists.
Everything is deterministic: a fixed seed per task, and text that ships with the interpreter.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from harp.errors import HarpError
from harp.eval.fixture_docs import Builder, sentences
from harp.eval.task_yaml import write_repointed
from harp.eval.tasks import SUITE, with_fixtures

N_EVAL = 8  # documents scored per (sub)task
N_SHOTS = 26  # few-shot pool (the most a row asks for is 25)


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def definition_path(definition: str | Path) -> Path:
    """A row's definition file: lm-eval's installed YAML (a relative path) or ours (absolute)."""
    return lm_eval_tasks_dir() / definition


# ---------------------------------------------------------------- writing data and task YAMLs
def _definition(definition: str | Path) -> tuple[Path, str, list[str], str]:
    """A task definition's file, task name, the splits it reads and the split it scores."""
    from lm_eval.tasks._yaml_loader import load_yaml

    installed = definition_path(definition)
    cfg = load_yaml(installed, resolve_func=False)
    splits = {cfg.get(k) for k in ("training_split", "validation_split", "test_split", "fewshot_split")} - {None}
    return installed, cfg["task"], sorted(splits), cfg.get("test_split") or cfg.get("validation_split")


def _data_file(root: Path, name: str, split: str) -> Path:
    return root / "data" / name / f"{split}.jsonl"


def _write_task(root: Path, definition: str | Path, build: Builder) -> None:
    """Data files for every split the defined task reads."""
    _, name, splits, eval_split = _definition(definition)
    rng = random.Random(f"harp-fixture-{name}")
    sents = sentences()
    for split in splits:
        path = _data_file(root, name, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = N_EVAL if split == eval_split else N_SHOTS
        path.write_text("".join(json.dumps(build(rng, sents)) + "\n" for _ in range(n)))


def write_fixtures(root: str | Path) -> list[str]:
    """Write the fixture data of every suite task under `root/data/`; returns the task names."""
    root = Path(root)
    rows = with_fixtures()
    for task in rows:
        for definition, build in task.subtasks or ((task.definition, task.fixture),):
            _write_task(root, definition, build)
    return sorted(t.name for t in rows)


def _task_yaml(root: Path, definition: str | Path, out_dir: Path) -> str:
    """`out_dir/<name>.yaml`: the installed definition repointed at its fixture data under `root`."""
    installed, name, splits, _ = _definition(definition)
    files = {split: _data_file(root, name, split) for split in splits}
    if missing := [str(f) for f in files.values() if not f.is_file()]:
        raise HarpError(
            f"No offline fixtures for {name} ({missing[0]} is missing): run `python -m harp.cli.fixtures` first "
            "(snakemake does it)."
        )
    write_repointed(out_dir, name, installed, files)
    return name


def fixture_task_yamls(root: str | Path, tasks: list[str], out_dir: str | Path) -> Path:
    """The task (and group) YAMLs of `tasks` in `out_dir`, pointing at the fixture data under `root` as it is now:
    written where they are used, at evaluation time, so a results folder can move and nothing under it is ever
    loaded as a task definition. A missing fixture file is one sentence."""
    root, out_dir = Path(root).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in tasks:
        task = SUITE[name]
        if not task.is_group:
            _task_yaml(root, task.definition, out_dir)
            continue
        subtasks = [_task_yaml(root, definition, out_dir) for definition, _ in task.subtasks]
        group = {"include": str(definition_path(task.definition)), "group": task.name, "task": subtasks}
        (out_dir / f"_{task.name}.yaml").write_text(yaml.safe_dump(group, sort_keys=False))
    return out_dir
