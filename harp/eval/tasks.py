"""The paper's evaluation suite: 27 lm-eval tasks, what kind each is and which metric is its score.

Few-shot counts are configuration (`eval.tasks`: task -> shots), not code; this registry only says
how to read a task's lm-eval results (the primary metric key, as lm-eval names it, with its filter)
and which of the paper's tables (its category) it belongs to.
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
    is_group: bool = False  # an lm-eval group: metrics are its aggregate over subtasks


STANDARD = [
    SuiteTask("nq_open", GENERATION, "exact_match,remove_whitespace"),
    SuiteTask("triviaqa", GENERATION, "exact_match,remove_whitespace"),
    SuiteTask("gsm8k", GENERATION, "exact_match,strict-match"),
    SuiteTask("leaderboard_math_hard", GENERATION, "exact_match,none", is_group=True),
    SuiteTask("bbh_cot_fewshot", GENERATION, "exact_match,get-answer", is_group=True),
    SuiteTask("winogrande", DISCRIMINATIVE, "acc,none"),
    SuiteTask("arc_challenge", DISCRIMINATIVE, "acc_norm,none"),
    SuiteTask("boolq", DISCRIMINATIVE, "acc,none"),
    SuiteTask("openbookqa", DISCRIMINATIVE, "acc_norm,none"),
    SuiteTask("piqa", DISCRIMINATIVE, "acc_norm,none"),
    SuiteTask("mmlu", DISCRIMINATIVE, "acc,none", is_group=True),
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
