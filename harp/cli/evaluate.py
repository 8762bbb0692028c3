"""Evaluate a model with its pruning plan on lm-eval tasks: `python -m harp.cli.evaluate method=harp`.

Writes one result per task into `<experiment>/<model>/<method>/eval/`, as each finishes (so an interrupted
run keeps the finished tasks, and lm-eval's response cache resumes the interrupted one).
"""

from __future__ import annotations

import json
import platform
import tempfile
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from harp import artifacts
from harp.cli._app import checked_plan, load_for, log, save_config, stage
from harp.config import Config
from harp.data import bigbench
from harp.errors import HarpError
from harp.eval import longbench
from harp.eval.fixtures import fixture_task_yamls
from harp.eval.tasks import LONGBENCH, job_group, selected, suite_task
from harp.io import atomic_path, write_json
from harp.provenance import plan_hash
from harp.pruning.plan import apply_plan
from harp.records import finite


def versions() -> dict[str, str]:
    return {"python": platform.python_version()} | {
        p: version(p) for p in ("lm_eval", "transformers", "torch", "datasets")
    }


@stage("evaluate")
def main(cfg: Config, tracker) -> None:
    e = cfg.eval
    tasks = selected(e.tasks, e.select)
    if not tasks:
        raise HarpError(f"No tasks to evaluate: eval.tasks of suite {e.suite!r} is empty.")
    fixtures_root = Path(e.fixtures_dir) if e.fixtures else None
    bigbench_root = artifacts.bigbench_rows(e.data_dir)
    rows = [suite_task(t) for t in tasks]
    # missing data fails before the model loads
    if folders := [r.bigbench for r in rows if r.bigbench]:
        bigbench.check_rows(bigbench_root, folders)
    if fixtures_root is not None and (fixtured := [r.name for r in rows if not r.bigbench]):
        with tempfile.TemporaryDirectory() as yamls:  # every fixture file is there (the YAMLs are rewritten later)
            fixture_task_yamls(fixtures_root, fixtured, yamls)
    elif fixtures_root is None and (lb_tasks := [r.name for r in rows if r.category == LONGBENCH]):
        longbench.check_data(e.longbench_data, lb_tasks)
    plan_dir = cfg.method_dir
    plan = checked_plan(cfg)
    model, tokenizer = load_for(cfg)
    apply_plan(model, plan)
    out_dir, phash = artifacts.eval_dir(plan_dir), plan_hash(plan_dir)
    data = "fixture" if e.fixtures else "real"
    key = f"{phash}-{data}-w{cfg.model.max_length}-lb{e.longbench_max_length}-g{e.max_gen_toks}"
    seeds = asdict(e.seeds)
    from harp.eval.lm_eval_driver import evaluate_tasks  # lm-eval imports take seconds: after the checks

    for name, result in evaluate_tasks(
        model,
        tokenizer,
        tasks,
        window=cfg.model.max_length,
        longbench_window=e.longbench_max_length,
        batch_size=e.batch_size,
        limit=e.limit,
        fixtures_root=fixtures_root,
        max_gen_toks=e.max_gen_toks,
        cache=out_dir / ".cache" / key if e.cache else None,
        longbench_data=e.longbench_data,
        seeds=seeds,
        bigbench_root=bigbench_root,
    ):
        samples = result.pop("samples")
        finite(
            result["score"],
            f"The {name} score of {cfg.model.name}/{cfg.method.name}",
            "the model or its plan is damaged (rerun the prune stage)",
        )
        record = {
            "model": cfg.model.name,
            "method": cfg.method.name,
            "task": name,
            "category": suite_task(name).category,
            **result,
            "limit": e.limit,
            "fixture": e.fixtures and not suite_task(name).bigbench,  # BIG-bench's local rows are the real data
            "tiny_model": cfg.model.toy,
            "plan_hash": phash,
            "max_gen_toks": e.max_gen_toks,
            "seeds": seeds,
            "versions": versions(),
            "experiment": cfg.experiment,
        }
        if samples:
            with atomic_path(artifacts.eval_samples(plan_dir, name)) as tmp:
                tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in samples))
        write_json(artifacts.eval_result(plan_dir, name), record)
        log(tracker, {f"eval/{name}": result["score"]})
        print(
            f"{cfg.model.name}/{cfg.method.name} {name}: {result['primary_metric']} = {result['score']:.4f} "
            f"({result['n_samples']} samples{', fixture' if e.fixtures else ''}, {result['seconds']:.1f} s)"
        )
    save_config(cfg, out_dir, f"evaluate_{job_group(e.tasks, e.select)}")  # a method's shards run at once


if __name__ == "__main__":
    main()
