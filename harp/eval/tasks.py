"""The paper's evaluation suite: 27 lm-eval tasks, what kind each is and which metric is its score.

Few-shot counts are configuration (`eval.tasks`: task -> shots), not code; this registry only says
how to read a task's lm-eval results (the primary metric key, as lm-eval names it, with its filter)
and which of the paper's tables (its category) it belongs to.

Which metric: the release dumps lm-eval's whole results and the paper names no metric key, so where a
task reports more than one candidate we keep lm-eval's usual reading as the score and record the other
as `alternative_metric` (every result JSON also has all metrics):
- arc_challenge, openbookqa, piqa: `acc_norm` (length-normalised; the Open LLM Leaderboard's reading of
  25-shot ARC, whose shot count the release uses), `acc` the alternative.
- gsm8k: `strict-match` (the "#### <number>" answer format the few-shot examples teach),
  `flexible-extract` (last number in the output) the alternative.
- nq_open, triviaqa: `exact_match` after lm-eval's only filter, `remove_whitespace`.
- leaderboard_math_hard: `exact_match` averaged over the 7 subtasks weighted by size, which is the
  release's own get_result_math_hard.py; bbh_cot_fewshot likewise (the `get-answer` filter); mmlu: `acc`
  weighted by size (lm-eval's group aggregates).
- LongBench: `score`, LongBench's own metric of each dataset (harp/eval/longbench), on a 0-1 scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from harp.errors import HarpError

GENERATION, DISCRIMINATIVE, LONGBENCH = "generation", "discriminative", "longbench"


@dataclass(frozen=True)
class SuiteTask:
    name: str  # lm-eval task or group name
    category: str  # generation | discriminative | longbench: the paper's table it belongs to
    primary_metric: str  # lm-eval results key "<metric>,<filter>"
    alternative_metric: str | None = None  # the other reading where the paper does not say which it used


STANDARD = [
    SuiteTask("nq_open", GENERATION, "exact_match,remove_whitespace"),
    SuiteTask("triviaqa", GENERATION, "exact_match,remove_whitespace"),
    SuiteTask("gsm8k", GENERATION, "exact_match,strict-match", alternative_metric="exact_match,flexible-extract"),
    SuiteTask("leaderboard_math_hard", GENERATION, "exact_match,none"),
    SuiteTask("bbh_cot_fewshot", GENERATION, "exact_match,get-answer"),
    SuiteTask("winogrande", DISCRIMINATIVE, "acc,none"),
    SuiteTask("arc_challenge", DISCRIMINATIVE, "acc_norm,none", alternative_metric="acc,none"),
    SuiteTask("boolq", DISCRIMINATIVE, "acc,none"),
    SuiteTask("openbookqa", DISCRIMINATIVE, "acc_norm,none", alternative_metric="acc,none"),
    SuiteTask("piqa", DISCRIMINATIVE, "acc_norm,none", alternative_metric="acc,none"),
    SuiteTask("mmlu", DISCRIMINATIVE, "acc,none"),
]
LONGBENCH_NAMES = [
    "narrativeqa",
    "qasper",
    "multifieldqa_en",
    "hotpotqa",
    "2wikimqa",
    "musique",
    "gov_report",
    "qmsum",
    "multi_news",
    "trec",
    "triviaqa",
    "samsum",
    "passage_count",
    "passage_retrieval_en",
    "lcc",
    "repobench-p",
]
LONGBENCH_TASKS = [SuiteTask(f"longbench_{n}", LONGBENCH, "score,none") for n in LONGBENCH_NAMES]

SUITE: dict[str, SuiteTask] = {t.name: t for t in STANDARD + LONGBENCH_TASKS}


def suite_task(name: str) -> SuiteTask:
    try:
        return SUITE[name]
    except KeyError:
        raise HarpError(f"Unknown evaluation task {name!r}; the suite has: {', '.join(SUITE)}.") from None


def selected(tasks: dict[str, int], select: list[str] | None) -> dict[str, int]:
    """The configured tasks (task -> shots), narrowed to `select` when given; every name is checked."""
    for name in tasks:
        suite_task(name)
    if select is None:
        return dict(tasks)
    missing = [s for s in select if s not in tasks]
    if missing:
        raise HarpError(f"eval.select names {', '.join(missing)}, not among the configured eval.tasks.")
    return {name: tasks[name] for name in select}
