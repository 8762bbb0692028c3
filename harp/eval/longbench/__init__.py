"""LongBench (v1, its 16 English tasks) run exactly as LongBench runs them, through task definitions of our own.

THUDM/LongBench's pred.py fills `config/dataset2prompt.json` with a raw row (`template.format(**row)`), cuts
a prompt longer than 4096 tokens in the middle, generates `config/dataset2maxlen.json` new tokens greedily
with no chat template, and eval.py scores the text; the HARP release ran that code. The YAMLs beside this
module hold those templates and lengths, `scoring.py` the scoring, this module what a YAML cannot say.

lm-eval 0.4.13's own `longbench_*` tasks differ in ways that move scores: one newline instead of two before
the input (triviaqa, samsum), a dropped trailing space (passage_count, passage_retrieval_en) or final newline
(lcc, repobench-p), and a stop at the first "\\n", so a generation starting with a newline scores as empty
(trec, triviaqa, samsum). Their data, `Xnhyacinth/LongBench`, is built by NVIDIA/kvpress's
create_huggingface_dataset.py, which folds LongBench's instructions into `context`/`question` and moves the
final "Answer:"-style cue into an `answer_prefix` column (kvpress's evaluate.py reads it); lm-eval wraps
those rows in the full template again. So we read LongBench's raw rows instead: the JSON lines of
`data.zip` in the THUDM/LongBench dataset (fields input, context, answers, length, dataset, language,
all_classes, _id), the rows the release loaded with `load_dataset("THUDM/LongBench", name)` through a
loading script that `datasets` >= 4 no longer runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from harp.errors import HarpError

TASK_DIR = Path(__file__).parent
PREFIX = "longbench_"  # suite task name = PREFIX + LongBench's dataset name
DATA_URL = "https://huggingface.co/datasets/THUDM/LongBench/resolve/main/data.zip"
DEFAULT_DATA = "data/longbench"  # relative to the working directory; also the task YAMLs' own dataset_path


def task_yaml(task: str) -> Path:
    """Our definition of suite task `task` (e.g. longbench_narrativeqa)."""
    return TASK_DIR / f"{task.removeprefix(PREFIX)}.yaml"


def max_new_tokens(task: str) -> int:
    """LongBench's cap on new tokens of a dataset (`max_gen_toks` in its YAML, LongBench's own value)."""
    found = re.search(r"max_gen_toks: (\d+)", task_yaml(task).read_text())
    return int(found[1]) if found else 0


def check_data(data_dir: str | Path | None, tasks: Iterable[str]) -> Path:
    """The LongBench data folder (None: DEFAULT_DATA), after checking it holds the raw rows of every task in `tasks`."""
    data_dir = Path(data_dir or DEFAULT_DATA).resolve()
    missing = [f for f in (f"{t.removeprefix(PREFIX)}.jsonl" for t in tasks) if not (data_dir / f).is_file()]
    if missing:
        raise HarpError(
            f"LongBench's data files {', '.join(missing)} are not in {data_dir}: download {DATA_URL} and unzip "
            f"its .jsonl files there (unzip -j data.zip '*.jsonl' -d {data_dir}), or point eval.longbench_data "
            "at them, or set eval.fixtures=true for the offline fixtures."
        )
    return data_dir


def real_task(task: str, data_dir: str | Path | None = None) -> dict:
    """The config of `task` reading LongBench's rows from `data_dir` (None: DEFAULT_DATA), for lm-eval's
    `TaskManager.load`."""
    from lm_eval.tasks._yaml_loader import load_yaml

    data_dir = check_data(data_dir, [task])
    return load_yaml(task_yaml(task), resolve_func=True) | {"dataset_path": str(data_dir)}


def configure(task, tokenizer) -> None:
    """Stop samsum at the newline token as well as at EOS (pred.py's `eos_token_id`); the id is the tokenizer's,
    so its YAML only asks for it (`metadata.stop_at_newline_token`). A merged token such as "\\n\\n" does not
    stop it, as in LongBench; the scorer keeps the first line anyway."""
    if task.config.metadata.get("stop_at_newline_token"):
        newline = tokenizer.encode("\n", add_special_tokens=False)[-1]
        stops = [i for i in (tokenizer.eos_token_id, newline) if i is not None]
        task.set_config("generation_kwargs", {"eos_token_id": stops}, update=True)


def truncate_middle(tokenizer, prompt: str, max_length: int) -> str:
    """pred.py's cut of a prompt longer than `max_length` tokens, counted as the model gets them (with BOS
    where the tokenizer adds one): its first and last `max_length // 2` tokens, decoded back to text without
    special tokens, so the instruction at the start and the question at the end both survive."""
    ids = tokenizer(prompt)["input_ids"]
    if len(ids) <= max_length:
        return prompt
    half = max_length // 2
    return tokenizer.decode(ids[:half], skip_special_tokens=True) + tokenizer.decode(
        ids[-half:], skip_special_tokens=True
    )
