"""Offline fixtures: a small local dataset for each suite task, run through the task's own definition.

For every task of `harp.eval.tasks` we write JSON-lines files with exactly the fields and splits its task
definition reads (documents from the row's builder, `harp.eval.fixture_docs`), and a task YAML that
`include`s that definition and only repoints the data (`dataset_path: json`, `data_files`). Prompts, filters
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
from harp.eval.tasks import SUITE, SuiteTask, with_fixtures

N_EVAL = 8  # documents scored per (sub)task
N_SHOTS = 26  # few-shot pool (the most a row asks for is 25)
TASKS_DIR = "tasks"  # generated YAMLs, under the fixture root


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


def definition_path(definition: str | Path) -> Path:
    """A row's definition file: lm-eval's installed YAML (a relative path) or ours (absolute)."""
    return lm_eval_tasks_dir() / definition


# ---------------------------------------------------------------- writing data and task YAMLs
def _write_task(root: Path, final: Path, definition: str | Path, build: Builder) -> str:
    """Data files for every split the defined task reads, and a YAML repointing it at their `final` place."""
    from lm_eval.tasks._yaml_loader import load_yaml

    installed = definition_path(definition)
    cfg = load_yaml(installed, resolve_func=False)
    name = cfg["task"]
    rng = random.Random(f"harp-fixture-{name}")
    sents = sentences()
    splits = {cfg.get(k) for k in ("training_split", "validation_split", "test_split", "fewshot_split")} - {None}
    eval_split = cfg.get("test_split") or cfg.get("validation_split")
    files = {}
    for split in sorted(splits):
        n = N_EVAL if split == eval_split else N_SHOTS
        path = root / "data" / name / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(build(rng, sents)) + "\n" for _ in range(n)))
        files[split] = str(final / path.relative_to(root))
    task_yaml = {
        "include": str(installed),
        "task": name,
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": files},
    }
    (root / TASKS_DIR / f"{name}.yaml").write_text(yaml.safe_dump(task_yaml, sort_keys=False))
    return name


def _write_row(root: Path, final: Path, task: SuiteTask) -> None:
    if not task.is_group:
        _write_task(root, final, task.definition, task.fixture)
        return
    subtasks = [_write_task(root, final, definition, build) for definition, build in task.subtasks]
    group_yaml = {"include": str(definition_path(task.definition)), "group": task.name, "task": subtasks}
    (root / TASKS_DIR / f"_{task.name}.yaml").write_text(yaml.safe_dump(group_yaml, sort_keys=False))


def write_fixtures(root: str | Path, final: str | Path | None = None) -> list[str]:
    """Write the fixtures of every suite task under `root` (data/ and tasks/); returns the task names.

    `final`: where `root` will be moved to (the YAMLs name their data files by absolute path).
    """
    root = Path(root).resolve()
    final = Path(final).resolve() if final else root
    (root / TASKS_DIR).mkdir(parents=True, exist_ok=True)
    rows = with_fixtures()
    for task in rows:
        _write_row(root, final, task)
    return sorted(t.name for t in rows)


def fixture_tasks_dir(root: str | Path, tasks: list[str]) -> Path:
    """The generated task YAMLs under `root`, after checking every requested task has its fixture."""
    tasks_dir = Path(root) / TASKS_DIR
    missing = [t for t in tasks if not (tasks_dir / (f"_{t}.yaml" if SUITE[t].is_group else f"{t}.yaml")).exists()]
    if missing:
        raise HarpError(
            f"No offline fixtures for {', '.join(missing)} under {tasks_dir}: "
            "run `python -m harp.cli.fixtures` first (snakemake does it)."
        )
    return tasks_dir
