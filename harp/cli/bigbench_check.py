"""How much signal a model has on BIG-bench tasks, and what each document costs: the measurement behind the demo's
choice of tasks and documents per task.

    python -m harp.cli.bigbench_check --model results/models/smollm2 [--tasks phrase_relatedness --limit 100]

Builds the tasks' rows from BIG-bench's archive (harp.data.bigbench) into --data unless they are there, runs
lm-eval's own `bigbench_<task>_multiple_choice` definitions on them (0-shot, one task at a time) and prints each
task's acc ± stderr beside chance (uniform guessing) and majority (always the most frequent correct answer: the
bar a label-biased model clears without skill), the documents scored and the seconds per document on this machine.
--out also writes each document's 0/1 score in order.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harp.data import bigbench
from harp.errors import HarpError
from harp.eval.tasks import ROWS
from harp.io import write_json


def check(model: str, tasks: list[str], limit: int | None, data_dir: Path, batch_size: str, threads: int) -> dict:
    """Each task's scores and cost (see the module docstring)."""
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    torch.set_num_threads(threads)
    missing = [t for t in tasks if not bigbench.data_file(data_dir, t).is_file()]
    if missing:
        bigbench.build_tasks(missing, data_dir)
    lm = HFLM(pretrained=model, batch_size=batch_size, device="cpu")
    yamls = bigbench.write_task_yamls(data_dir, tasks, data_dir / "tasks")
    manager = TaskManager(include_defaults=False, include_path=str(yamls))
    out = {}
    for task in tasks:
        name = bigbench.lm_eval_name(task)
        wall, cpu = time.perf_counter(), time.process_time()
        res = lm_eval.simple_evaluate(
            model=lm, tasks=[name], num_fewshot=0, limit=limit, task_manager=manager, log_samples=True
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        scores, docs = res["results"][name], res["n-samples"][name]["effective"]
        rows = bigbench.read_rows(data_dir, task)
        out[task] = row = {
            "lm_eval_task": name,
            "acc": scores["acc,none"],
            "acc_stderr": scores["acc_stderr,none"],
            "chance": bigbench.chance(rows, limit),
            "majority": bigbench.majority(rows, limit),
            "docs": docs,
            "s_per_doc_wall": wall / docs,
            "s_per_doc_cpu": cpu / docs,
            "correct": [int(d["acc"]) for d in sorted(res["samples"][name], key=lambda d: d["doc_id"])],
        }
        print(
            f"{task:24s} acc {row['acc']:.3f} ± {row['acc_stderr']:.3f}  chance {row['chance']:.3f}  "
            f"majority {row['majority']:.3f}  docs {docs:4d}  {row['s_per_doc_wall']:.2f} s/doc",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> None:
    default_tasks = [row.bigbench for row in ROWS if row.bigbench]
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--model", required=True, help="a transformers model folder, e.g. results/models/smollm2")
    p.add_argument("--tasks", nargs="+", default=default_tasks, help=f"task folders (default: {default_tasks})")
    p.add_argument("--data", default="results/data/bigbench_check", help="folder for the rows and task YAMLs")
    p.add_argument("--limit", type=int, default=None, help="the first documents of each task (default: all)")
    p.add_argument("--batch-size", default="32")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default=None, help="also write the results (and each document's score) as JSON here")
    a = p.parse_args(argv)
    try:
        result = check(a.model, a.tasks, a.limit, Path(a.data).resolve(), a.batch_size, a.threads)
    except HarpError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if a.out:
        write_json(a.out, {"model": a.model, "limit": a.limit, "threads": a.threads, "tasks": result})


if __name__ == "__main__":
    main()
