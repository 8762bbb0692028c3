"""Run suite tasks through lm-eval on an already loaded (and pruned) model, one task at a time.

lm-eval does everything task-specific (prompts, few-shot sampling, filters, metrics); this module only
builds one `HFLM` around the in-memory model, points lm-eval at the fixture or installed task YAMLs,
sets each task's few-shot count and context window, and reads back the task's metrics.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from lm_eval.models.huggingface import HFLM

from harp.data import bigbench
from harp.errors import HarpError
from harp.eval import fixtures, longbench
from harp.eval.tasks import GENERATION, LONGBENCH, SuiteTask, suite_task


class WindowedHFLM(HFLM):
    """HFLM with a prompt window, and LongBench's middle truncation for generation prompts.

    Prompts are cut to `window` tokens and the task's own `max_gen_toks` are generated on top of
    them (stock HFLM takes the new tokens out of `max_length`, which rejects tasks asking for more
    new tokens than the window, e.g. bbh's 1024 on a 512-token model). With `middle_truncate` set
    (the LongBench tasks), a longer prompt keeps its first and last halves exactly as LongBench's
    `pred.py` cuts it (`longbench.truncate_middle`), and is not cut again: re-encoding the two halves
    may give a token more at the seam, which LongBench keeps; stock HFLM would cut the instruction
    (and BOS) off the left.
    """

    def __init__(self, *args, window: int, **kwargs):
        super().__init__(*args, max_length=window, **kwargs)
        self.window = window
        self.middle_truncate: int | None = None

    def tok_batch_encode(self, strings, padding_side="left", left_truncate_len=None, truncation=False):
        if self.middle_truncate:
            strings = [longbench.truncate_middle(self.tokenizer, s, self.middle_truncate) for s in strings]
            left_truncate_len = None
        return super().tok_batch_encode(strings, padding_side, left_truncate_len, truncation)

    def generate_until(self, requests, disable_tqdm: bool = False):
        new = max((r.args[1].get("max_gen_toks", self.max_gen_toks) for r in requests), default=0)
        self._max_length = self.window + new
        try:
            return super().generate_until(requests, disable_tqdm)
        finally:
            self._max_length = self.window


def task_manager(
    tasks: list[str], fixtures_root: str | Path | None, bigbench_root: str | Path | None, yamls: str | Path
):
    """A TaskManager indexing only what `tasks` need: BIG-bench's converted rows or the fixtures (their task
    YAMLs written now into `yamls`, pointing at the rows where they are now), or the installed task folders.

    Indexing all of lm-eval's ~15k task names takes about 10 s; the few folders we need take well under one.
    """
    from lm_eval.tasks import TaskManager

    dirs = set()
    for name in tasks:
        task = suite_task(name)
        if task.bigbench:
            dirs.add(bigbench.write_task_yamls(bigbench_root, [task.bigbench], Path(yamls) / "bigbench"))
        elif fixtures_root is not None:
            dirs.add(fixtures.fixture_task_yamls(fixtures_root, [name], Path(yamls) / "fixtures"))
        else:
            dirs.add(fixtures.definition_path(task.definition).parent)
    return TaskManager(include_defaults=False, include_path=sorted(map(str, dirs)))


def _load(tm, name: str, spec: str | dict, fixture: bool):
    """The task or group object of `name` (built from `spec`: its name, or an inline config), its data loaded;
    a dataset that cannot be had is one sentence."""
    try:
        loaded = tm.load([spec])
    except (OSError, ConnectionError) as err:  # what datasets/hub raise for "not there"; the message names it
        if fixture:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise HarpError(
            f"The real dataset of task {name} could not be loaded ({first[:200]}); run once online to "
            "cache it, or set eval.fixtures=true for the offline fixtures."
        ) from None
    return loaded["groups"][name] if name in loaded["groups"] else loaded["tasks"][name]


def _cap_generation(obj, cap: int, default: int) -> None:
    """Lower every generation task's `max_gen_toks` to `cap`, in the task config, so the requests (and
    lm-eval's response cache, keyed on them) carry the capped value."""
    for task in obj.get_all_tasks() if hasattr(obj, "get_all_tasks") else [obj]:
        if task.config.output_type == "generate_until":
            new = min(task.config.generation_kwargs.get("max_gen_toks", default), cap)
            task.set_config("generation_kwargs", {"max_gen_toks": new}, update=True)


def chance(obj, limit: int | None) -> float:
    """The expected score of guessing uniformly among each scored document's choices, over the documents
    scored (`limit` per subtask, as lm-eval takes them); 0 for generation tasks, whose answers are open."""
    leaves = obj.get_all_tasks() if hasattr(obj, "get_all_tasks") else [obj]
    guesses = []
    for leaf in leaves:
        docs = list(leaf.eval_docs)[: limit or None]
        if leaf.config.output_type == "multiple_choice":
            guesses += [1.0 / len(leaf.doc_to_choice(doc)) for doc in docs]
        else:
            guesses += [0.0] * len(docs)
    return sum(guesses) / len(guesses) if guesses else 0.0


def _read(res: dict, task: SuiteTask) -> dict:
    """Metrics, their stderr, sample counts and versions of suite task (or group) `task` from lm-eval's results."""
    name, primary, alternative = task.name, task.primary_metric, task.alternative_metric
    row = res["results"][name]
    metrics = {k: v for k, v in row.items() if "," in k and "_stderr," not in k and isinstance(v, (int, float))}
    stderr = {}
    for k in metrics:
        metric, _, filt = k.partition(",")
        value = row.get(f"{metric}_stderr,{filt}")
        stderr[k] = value if isinstance(value, (int, float)) else None
    for key in filter(None, (primary, alternative)):
        if key not in metrics:
            raise HarpError(f"lm-eval reported no {key} for {name} (it reported {', '.join(metrics) or 'nothing'}).")
    leaves = res.get("group_subtasks", {}).get(name) or [name]
    n_samples = sum(res["n-samples"][t]["effective"] for t in leaves)
    shots = {res["n-shot"][t] for t in leaves if t in res["n-shot"]}
    return {
        "metrics": metrics,
        "stderr": stderr,
        "primary_metric": primary,
        "score": metrics[primary],
        "alternative_metric": alternative,
        "alternative_score": metrics[alternative] if alternative else None,
        "n_samples": n_samples,
        "num_fewshot": max(shots) if shots else None,
        "task_versions": {t: res["versions"].get(t) for t in dict.fromkeys([name, *leaves])},
    }


def _samples(res: dict) -> list[dict]:
    """lm-eval's per-document log of each (sub)task: the prompt, the target, what the model generated (raw and
    filtered) and the document's metrics."""
    rows = []
    for task, samples in res.get("samples", {}).items():
        for s in samples:
            rows.append(
                {
                    "task": task,
                    "doc_id": s.get("doc_id"),
                    "filter": s.get("filter"),  # one row per filter the task defines (gsm8k: strict and flexible)
                    "prompt": s["arguments"][0][0] if s.get("arguments") else None,
                    "target": s.get("target"),
                    "response": s.get("resps"),
                    "filtered": s.get("filtered_resps"),
                    **{m: s[m] for m in s.get("metrics", []) if m in s},
                }
            )
    return rows


def evaluate_tasks(
    model,
    tokenizer,
    tasks: dict[str, int],
    *,
    window: int,
    longbench_window: int,
    batch_size: str = "1",
    limit: int | None = None,
    fixtures_root: str | Path | None = None,
    cache: str | Path | None = None,
    max_gen_toks: int | None = None,
    longbench_data: str | Path | None = None,
    seeds: dict[str, int] | None = None,
    bigbench_root: str | Path | None = None,
) -> Iterator[tuple[str, dict]]:
    """Evaluate `model` on `tasks` (name -> few-shot count), yielding `(name, result)` as each task finishes.

    `fixtures_root`: the offline fixtures written by `harp.cli.fixtures` (None: the real datasets).
    `cache`: file prefix of lm-eval's response cache; a rerun after an interruption skips the
    model calls already answered. `max_gen_toks`: cap on new tokens (None: each task's own).
    `longbench_data`: the folder of LongBench's raw `<name>.jsonl` (None: our YAMLs' own, data/longbench).
    `seeds`: `simple_evaluate`'s seed arguments (`random_seed`, `fewshot_random_seed`, ...); None: lm-eval's defaults.
    `bigbench_root`: the BIG-bench rows written by `harp.cli.task_data` (the BIG-bench tasks read them always).
    """
    import lm_eval

    lm = WindowedHFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, window=window)
    with tempfile.TemporaryDirectory(prefix="harp-tasks-") as yamls:
        tm = task_manager(list(tasks), fixtures_root, bigbench_root, yamls)
        for name, shots in tasks.items():
            task = suite_task(name)
            start = time.perf_counter()
            is_longbench = task.category == LONGBENCH
            lm.window = lm._max_length = longbench_window if is_longbench else window
            lm.middle_truncate = longbench_window if is_longbench else None
            fixture = fixtures_root is not None and not task.bigbench
            generates = task.category in (GENERATION, LONGBENCH)
            spec = longbench.real_task(name, longbench_data) if is_longbench and not fixture else name
            obj = _load(tm, name, spec, fixture)
            if is_longbench:
                longbench.configure(obj, tokenizer)
            if max_gen_toks:
                _cap_generation(obj, max_gen_toks, lm.max_gen_toks)
            res = lm_eval.simple_evaluate(
                model=lm,
                tasks=[obj],
                num_fewshot=shots,
                limit=limit,
                task_manager=tm,
                use_cache=str(cache) if cache else None,
                log_samples=generates,  # why a generation scores what it does: kept beside its result
                **(seeds or {}),
                bootstrap_iters=1000,
                verbosity="WARNING",
            )
            seconds = round(time.perf_counter() - start, 2)
            samples = _samples(res) if generates else None
            yield name, _read(res, task) | {"chance": chance(obj, limit), "seconds": seconds, "samples": samples}
