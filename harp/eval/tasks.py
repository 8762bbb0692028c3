"""The one table of evaluation tasks: a row per task says all the project knows of it.

A row gives the lm-eval task (or group) name, the paper's table it belongs to (its category), the metric
read as its score, its few-shot count (the release's), its column label, where its definition lives and how
its offline fixture documents are built. Evaluation, fixtures, tables and configs all read this table;
adding a task is adding a row (a suite lists the names it runs in `conf/eval/<suite>.yaml`).

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
Groups (mmlu, bbh_cot_fewshot, leaderboard_math_hard) keep two representative subtasks in their fixtures.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from harp import artifacts
from harp.data import bigbench
from harp.errors import HarpError
from harp.eval import fixture_docs as docs
from harp.eval import longbench

GENERATION, DISCRIMINATIVE, LONGBENCH, BIGBENCH = "generation", "discriminative", "longbench", "bigbench"
EXACT = "exact_match,remove_whitespace"  # exact match after lm-eval's only filter of the open QA tasks


@dataclass(frozen=True)
class Work:
    """The size of one evaluation of a task, for a suite's GPU-hour estimate (`harp.estimate`), not a measurement:
    its documents (the dataset's published size), the tokens the model reads per document over all its requests
    (few-shot prompt, once per answer choice: typical lengths, assumed) and the tokens it generates per document
    (typical for the standard tasks; LongBench: its cap, an upper bound)."""

    documents: int
    read: int
    generated: int = 0


@dataclass(frozen=True)
class SuiteTask:
    name: str  # lm-eval task or group name
    category: str  # generation | discriminative | longbench: the paper's table it belongs to
    primary_metric: str  # lm-eval results key "<metric>,<filter>"
    shots: int  # few-shot examples (the release's counts)
    label: str  # column label in tables and figures (the paper's, LongBench's own abbreviations)
    # its definition: lm-eval's installed YAML (relative to lm_eval/tasks) or ours (an absolute path)
    definition: str | Path
    fixture: docs.Builder | None = None  # builds one offline fixture document (a single task)
    subtasks: tuple[tuple[str, docs.Builder], ...] = ()  # a group: the subtasks its fixtures keep, with builders
    alternative_metric: str | None = None  # the other reading where the paper does not say which it used
    # BIG-bench's task folder: real rows converted once from BIG-bench's PyPI archive (harp.data.bigbench), read
    # by lm-eval's own definition; no fixture, these rows are the real data
    bigbench: str | None = None
    work: Work | None = None  # its size, for the GPU-hour estimate (the paper's tasks)

    @property
    def is_group(self) -> bool:
        return bool(self.subtasks)


def _bigbench(folder: str, label: str) -> SuiteTask:
    """lm-eval's `bigbench_<folder>_multiple_choice`, zero-shot, scored by `acc` as lm-eval's template does."""
    return SuiteTask(
        bigbench.lm_eval_name(folder),
        BIGBENCH,
        "acc,none",
        0,
        label,
        f"bigbench/multiple_choice/{folder}.yaml",
        bigbench=folder,
    )


def _longbench(dataset: str, label: str, fixture: docs.Builder, documents: int = 200) -> SuiteTask:
    """A LongBench v1 dataset (200 documents in most), its prompt cut to `eval.longbench_max_length` (4,096 tokens in
    the paper: the estimate's read size, most prompts are longer) and its own cap on new tokens."""
    name = longbench.PREFIX + dataset
    work = Work(documents, 4096, longbench.max_new_tokens(name))
    return SuiteTask(name, LONGBENCH, "score,none", 0, label, longbench.task_yaml(name), fixture, work=work)


ROWS = [
    SuiteTask(
        "nq_open",
        GENERATION,
        EXACT,
        5,
        "NQ",
        "nq_open/nq_open.yaml",
        docs.cloze_question,
        work=Work(3610, 120, 10),
    ),
    SuiteTask(
        "triviaqa",
        GENERATION,
        EXACT,
        5,
        "TQA",
        "triviaqa/default.yaml",
        docs.trivia_question,
        work=Work(17944, 180, 10),
    ),
    SuiteTask(
        "gsm8k",
        GENERATION,
        "exact_match,strict-match",
        5,
        "GSM8K",
        "gsm8k/gsm8k.yaml",
        docs.word_problem,
        alternative_metric="exact_match,flexible-extract",
        work=Work(1319, 830, 150),
    ),
    SuiteTask(
        "leaderboard_math_hard",
        GENERATION,
        "exact_match,none",
        4,
        "MATH",
        "leaderboard/math/_leaderboard_math.yaml",
        subtasks=(
            ("leaderboard/math/math_algebra.yaml", docs.math_problem),
            ("leaderboard/math/math_prealgebra.yaml", docs.math_problem),
        ),
        work=Work(1324, 900, 350),
    ),
    SuiteTask(
        "bbh_cot_fewshot",
        GENERATION,
        "exact_match,get-answer",
        3,
        "BBH",
        "bbh/cot_fewshot/_bbh_cot_fewshot.yaml",
        subtasks=(
            ("bbh/cot_fewshot/boolean_expressions.yaml", docs.boolean_expression),
            ("bbh/cot_fewshot/multistep_arithmetic_two.yaml", docs.arithmetic),
        ),
        work=Work(6511, 1100, 180),
    ),
    SuiteTask(
        "winogrande",
        DISCRIMINATIVE,
        "acc,none",
        5,
        "WinoG",
        "winogrande/default.yaml",
        docs.blank_choice,
        work=Work(1267, 340),
    ),
    SuiteTask(
        "arc_challenge",
        DISCRIMINATIVE,
        "acc_norm,none",
        25,
        "ARC-c",
        "arc/arc_challenge.yaml",
        docs.lettered_choice,
        alternative_metric="acc,none",
        work=Work(1172, 4100),
    ),
    SuiteTask(
        "boolq",
        DISCRIMINATIVE,
        "acc,none",
        0,
        "BoolQ",
        "super_glue/boolq/default.yaml",
        docs.passage_question,
        work=Work(3270, 300),
    ),
    SuiteTask(
        "openbookqa",
        DISCRIMINATIVE,
        "acc_norm,none",
        0,
        "OBQA",
        "openbookqa/openbookqa.yaml",
        docs.lettered_choice,
        alternative_metric="acc,none",
        work=Work(500, 100),
    ),
    SuiteTask(
        "piqa",
        DISCRIMINATIVE,
        "acc_norm,none",
        0,
        "PIQA",
        "piqa/piqa.yaml",
        docs.two_solutions,
        alternative_metric="acc,none",
        work=Work(1838, 80),
    ),
    SuiteTask(
        "mmlu",
        DISCRIMINATIVE,
        "acc,none",
        5,
        "MMLU",
        "mmlu/default/_mmlu.yaml",
        subtasks=(
            ("mmlu/default/mmlu_astronomy.yaml", docs.subject_choice),
            ("mmlu/default/mmlu_computer_security.yaml", docs.subject_choice),
        ),
        work=Work(14042, 2200),
    ),
    # LongBench v1's 16 English tasks, in the paper's (and LongBench's) order
    _longbench("narrativeqa", "NrtvQA", docs.long_qa),
    _longbench("qasper", "Qasper", docs.long_qa),
    _longbench("multifieldqa_en", "MF-en", docs.long_qa, 150),
    _longbench("hotpotqa", "HotpotQA", docs.long_qa),
    _longbench("2wikimqa", "2WikiMQA", docs.long_qa),
    _longbench("musique", "Musique", docs.long_qa),
    _longbench("gov_report", "GovReport", docs.long_summary),
    _longbench("qmsum", "QMSum", docs.long_summary),
    _longbench("multi_news", "MultiNews", docs.long_summary),
    _longbench("trec", "TREC", docs.long_classification),
    _longbench("triviaqa", "TriviaQA", docs.long_qa),
    _longbench("samsum", "SAMSum", docs.long_summary),
    _longbench("passage_count", "PCount", docs.long_count),
    _longbench("passage_retrieval_en", "PRe", docs.long_retrieval),
    _longbench("lcc", "Lcc", docs.long_code, 500),
    _longbench("repobench-p", "RB-P", docs.long_code_question, 500),
    # BIG-bench multiple choice, zero-shot through lm-eval's own templates: where dense SmolLM2-135M scores furthest
    # above chance of the tasks measured (`python -m harp.cli.bigbench_check`, all documents; README): acc
    # 0.370 / 0.618 / 0.243 against chance 0.250 / 0.242 / 0.143
    _bigbench("phrase_relatedness", "PhraseRel"),
    _bigbench("similarities_abstraction", "SimAbs"),
    _bigbench("general_knowledge", "GenKnow"),
]
SUITE: dict[str, SuiteTask] = {t.name: t for t in ROWS}


def suite_task(name: str) -> SuiteTask:
    try:
        return SUITE[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(SUITE), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise HarpError(f"Unknown evaluation task {name!r}; the suite has: {', '.join(SUITE)}.{hint}") from None


def with_fixtures() -> list[SuiteTask]:
    """The rows that have offline fixtures (every row but the BIG-bench ones, whose local rows are real)."""
    return [t for t in ROWS if t.fixture or t.subtasks]


def label(name: str) -> str:
    """A task's column label (its name when it is not in the table)."""
    return SUITE[name].label if name in SUITE else name


def selected(tasks: list[str], select: list[str] | None) -> dict[str, int]:
    """The configured tasks (task -> few-shot count), narrowed to `select` when given; every name is checked."""
    shots = {name: suite_task(name).shots for name in tasks}
    if select is None:
        return shots
    missing = [s for s in select if s not in shots]
    if missing:
        close = difflib.get_close_matches(missing[0], list(shots), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise HarpError(f"eval.select names {', '.join(missing)}, not among the configured eval.tasks.{hint}")
    return {name: shots[name] for name in select}


def job_group(tasks: list[str], select: list[str] | None) -> str:
    """The name of the evaluation job of `select` among `tasks` (its task, its category, or `all`): what its
    log, config record, lock and wandb run are named by."""
    names = list(selected(tasks, select))
    return artifacts.eval_job(names, [suite_task(t).category for t in names])
