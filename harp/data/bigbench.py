"""BIG-bench JSON tasks as the rows of the hub dataset `hails/bigbench`, built offline from BIG-bench's PyPI archive.

lm-eval's `bigbench_<task>_multiple_choice` tasks read `hails/bigbench`, config `<task>_zero_shot`, split
`default`, fields `inputs`, `targets`, `multiple_choice_targets`, `multiple_choice_scores`. Those rows were made
by the HF `bigbench` dataset script from BIG-bench's task.json files (json_task.JsonTask with its
default_format_fn, bbseqio's HUGGINGFACE rows); the hub cannot be reached here, but the same task.json files ship
in the `bigbench==1.0.0` sdist on PyPI. So we read a task's task.json straight from that archive and apply the
builder's rule (`hf_rows`); at evaluation, lm-eval's own task definition is pointed at the rows
(`write_task_yaml`): prompt, choices, target and metric stay lm-eval's.

The builder's rule, for the `default` split (every example, in file order, no shuffling):
- duplicate examples (equal `json.dumps`) dropped, the first kept;
- with `target_scores` and `append_choices_to_input` (default true; any truthy value, the string "false" too):
  input += choice_prefix + choice_prefix.join(numpy RandomState(42).permutation(sorted(choices)));
- target, if absent: the first choice with the highest score; a single target becomes a list;
- inputs = (task_prefix + example_input_prefix + input + example_output_prefix).strip(), prefixes defaulting to
  "", "\\nQ: ", "\\nA: " (choice_prefix "\\n  choice: "); targets and choices stripped, in the file's order;
  scores as int32.
Tasks split into subtasks (a task.json without examples) are refused: their rows mix subtasks.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harp.errors import HarpError
from harp.eval.task_yaml import write_repointed
from harp.io import atomic_path, write_json

VERSION = "1.0.0"
ARCHIVE_NAME = f"bigbench-{VERSION}.tar.gz"
ARCHIVE_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"  # PyPI's published digest
ARCHIVE_URL = (
    "https://files.pythonhosted.org/packages/95/f8/c019b3579df548a04cac12342cfcb878e50ddf6cfcd7fddba8cfc721c157/"
    + ARCHIVE_NAME
)
DEFAULT_ARCHIVE = Path("data/bigbench") / ARCHIVE_NAME  # relative to the working directory
SEED = 42  # JsonTask's random_seed, which seeds the choice order appended to inputs
SPLIT = "default"  # the split lm-eval's bigbench templates evaluate (`test_split: default`)


@dataclass(frozen=True)
class BigBenchTask:
    """One BIG-bench multiple-choice task as a row of the evaluation table."""

    name: str  # BIG-bench's task folder
    label: str  # short name for tables and figures
    limit: int | None  # documents scored (the first ones of the default split); None: all
    chance: float  # uniform guessing over each scored document's choices (`chance(rows, limit)`)

    @property
    def lm_eval_name(self) -> str:
        return lm_eval_name(self.name)


def lm_eval_name(task: str) -> str:
    """lm-eval's name of BIG-bench task `task`, multiple-choice variant (the name our YAMLs keep)."""
    return f"bigbench_{task}_multiple_choice"


def lm_eval_yaml(task: str) -> Path:
    """lm-eval's own definition of BIG-bench task `task` (multiple-choice variant)."""
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent / "bigbench" / "multiple_choice" / f"{task}.yaml"


# ---------------------------------------------------------------- the archive
def archive_path(path: str | Path | None = None) -> Path:
    """The BIG-bench archive (None: DEFAULT_ARCHIVE), after checking it is there and is PyPI's file."""
    path = Path(path or DEFAULT_ARCHIVE).resolve()
    if not path.is_file():
        raise HarpError(
            f"BIG-bench's archive {path} is missing: fetch it with `make data` (PyPI's bigbench=={VERSION} sdist, "
            "358 MB; `pip download` cannot, it fails on the package's dependencies)."
        )
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    if digest.hexdigest() != ARCHIVE_SHA256:
        raise HarpError(
            f"{path} has sha256 {digest.hexdigest()}, not that of PyPI's bigbench=={VERSION} ({ARCHIVE_SHA256}); "
            f"delete it and download {ARCHIVE_URL} again."
        )
    return path


def download(path: str | Path | None = None) -> Path:
    """Fetch PyPI's bigbench sdist once (only its task.json files are read; the package is not installed), check
    its sha256 and move it into place: `make data` calls this."""
    import urllib.request

    path = Path(path or DEFAULT_ARCHIVE)
    if path.is_file():
        return archive_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        urllib.request.urlretrieve(ARCHIVE_URL, tmp)
        archive_path(tmp)  # a damaged download never takes the archive's name
    return path


def member_name(task: str) -> str:
    return f"bigbench-{VERSION}/bigbench/benchmark_tasks/{task}/task.json"


def read_task_jsons(archive: Path, tasks: Iterable[str]) -> dict[str, dict]:
    """The task.json of each task, read from the archive in one pass (stopping once all are found)."""
    wanted = {member_name(t): t for t in tasks}
    found: dict[str, dict] = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name in wanted:
                found[wanted[member.name]] = json.load(tar.extractfile(member))
                if len(found) == len(wanted):
                    break
    missing = [t for t in wanted.values() if t not in found]
    if missing:
        raise HarpError(f"BIG-bench's archive {archive} has no JSON task {', '.join(missing)} (no {member_name('*')}).")
    return found


# ---------------------------------------------------------------- the builder's rows
def _score(task: str, value: float) -> int:
    if value != int(value):
        raise HarpError(f"BIG-bench task {task} scores a choice {value}, which the hub's int32 scores cannot hold.")
    return int(value)


def hf_rows(task_json: dict) -> list[dict]:
    """The `default` split of `hails/bigbench` for one task.json (see the module docstring for the rule)."""
    name = task_json.get("name", "?")
    if "examples" not in task_json:
        raise HarpError(f"BIG-bench task {name} is split into subtasks, which this converter does not build.")
    input_prefix = task_json.get("example_input_prefix", "\nQ: ")
    output_prefix = task_json.get("example_output_prefix", "\nA: ")
    choice_prefix = task_json.get("choice_prefix", "\n  choice: ")
    append_choices = task_json.get("append_choices_to_input", True)
    task_prefix = str(task_json.get("task_prefix", ""))
    seen: set[str] = set()
    rows = []
    for example in task_json["examples"]:
        key = json.dumps(example)
        if key in seen:
            continue
        seen.add(key)
        text, scores = example["input"], example.get("target_scores", {})
        target = example.get("target")
        if scores:
            if append_choices:
                order = np.random.RandomState(seed=SEED).permutation(sorted(scores))
                text += choice_prefix + choice_prefix.join(str(c) for c in order)
            if target is None:
                target = next(c for c, s in scores.items() if s == max(scores.values()))
        targets = target if isinstance(target, list) else [target]
        rows.append(
            {
                "idx": len(rows),
                "inputs": (task_prefix + input_prefix + text + output_prefix).strip(),
                "targets": [t.strip() for t in targets],
                "multiple_choice_targets": [c.strip() for c in scores],
                "multiple_choice_scores": [_score(name, s) for s in scores.values()],
            }
        )
    return rows


def scored_docs(rows: Sequence[dict], limit: int | None = None) -> list[dict]:
    """The documents lm-eval scores: rows with choices (its `filter_multiple_choice`), the first `limit`."""
    docs = [r for r in rows if r["multiple_choice_targets"]][:limit]
    if not docs:
        raise HarpError("No multiple-choice documents to score.")
    return docs


def chance(rows: Sequence[dict], limit: int | None = None) -> float:
    """Expected `acc` of uniform guessing: the mean of 1/len(choices) over the scored documents."""
    docs = scored_docs(rows, limit)
    return sum(1 / len(r["multiple_choice_targets"]) for r in docs) / len(docs)


def majority(rows: Sequence[dict], limit: int | None = None) -> float:
    """`acc` of always giving the most frequent correct answer of the scored documents: the bar a model biased
    towards one label clears without skill."""
    docs = scored_docs(rows, limit)
    return Counter(r["targets"][0] for r in docs).most_common(1)[0][1] / len(docs)


# ---------------------------------------------------------------- files lm-eval reads
def data_file(data_dir: str | Path, task: str) -> Path:
    return Path(data_dir).resolve() / f"{task}.jsonl"


def write_task_yaml(task: str, data_dir: str | Path, out_dir: str | Path) -> Path:
    """`out_dir/<lm-eval name>.yaml`: lm-eval's definition of `task` (`include`d) repointed at the rows under
    `data_dir`. Written where it is used, at evaluation time, never kept with the rows: the rows' folder can move,
    and nothing under results/ is ever loaded as a task definition."""
    return write_repointed(out_dir, lm_eval_name(task), lm_eval_yaml(task), {SPLIT: data_file(data_dir, task)})


def build_tasks(tasks: Sequence[str], data_dir: str | Path, archive: str | Path | None = None) -> dict[str, dict]:
    """Write, for each task, `<data_dir>/<task>.jsonl` (its hub rows) and `<task>.provenance.json`; returns the
    provenance records by task.

    One pass over the archive serves all `tasks`, so build them together where you can.
    """
    missing_defs = [t for t in tasks if not lm_eval_yaml(t).is_file()]
    if missing_defs:
        raise HarpError(f"lm-eval has no multiple-choice BIG-bench task {', '.join(missing_defs)}.")
    archive = archive_path(archive)
    records = {}
    for task, task_json in read_task_jsons(archive, tasks).items():
        rows = hf_rows(task_json)
        with atomic_path(data_file(data_dir, task)) as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        records[task] = {
            "task": task,
            "lm_eval_task": lm_eval_name(task),
            "source": f"bigbench=={VERSION} (PyPI sdist) {member_name(task)}",
            "archive_sha256": ARCHIVE_SHA256,
            "split": SPLIT,
            "rows": len(rows),
            "multiple_choice_rows": sum(bool(r["multiple_choice_targets"]) for r in rows),
            "chance": chance(rows),
        }
        write_json(Path(data_dir).resolve() / f"{task}.provenance.json", records[task])
    return records


def check_rows(data_dir: str | Path | None, tasks: Sequence[str]) -> Path:
    """`data_dir`, after checking every task's rows are there."""
    missing = [t for t in tasks if not data_file(data_dir or ".", t).is_file()]
    if data_dir is None or missing:
        raise HarpError(
            f"No BIG-bench rows for {', '.join(missing or tasks)} under {data_dir}: run "
            "`python -m harp.cli.task_data` first (snakemake does it)."
        )
    return Path(data_dir)


def write_task_yamls(data_dir: str | Path | None, tasks: Sequence[str], out_dir: str | Path) -> Path:
    """The task YAMLs of `tasks` in `out_dir` (see `write_task_yaml`), after checking their rows are there."""
    rows = check_rows(data_dir, tasks)
    for task in tasks:
        write_task_yaml(task, rows, out_dir)
    return Path(out_dir)


def read_rows(data_dir: str | Path, task: str) -> list[dict]:
    """The rows `build_tasks` wrote for `task`."""
    path = data_file(data_dir, task)
    if not path.is_file():
        raise HarpError(f"No BIG-bench rows for {task} at {path}; build them first (harp.data.bigbench.build_tasks).")
    return [json.loads(line) for line in path.read_text().splitlines()]
