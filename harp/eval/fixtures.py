"""Offline fixtures: a small local dataset for each of the 27 tasks, run through the task's own definition.

For every suite task we write JSON-lines files with exactly the fields and splits its task definition
reads, and a task YAML that `include`s that definition and only repoints the data (`dataset_path: json`,
`data_files`). Prompts, filters and metrics therefore stay the definition's: lm-eval's installed YAML,
or for the 16 LongBench tasks ours (harp/eval/longbench, LongBench's raw row schema). Groups
(mmlu, bbh_cot_fewshot, leaderboard_math_hard) keep two representative subtasks.

Items are built from the tiny model's held-out corpus wherever the format allows (the true next word or
continuation among continuations of other sentences, a word blanked out of a sentence, the lead
sentence as the summary, a sentence of the context as the cloze question), so a trained model can score
above chance and pruning moves the numbers (the tiny model does on winogrande and the summary and code
tasks; where lm-eval's prompt breaks the sentence, "Question: ...\nAnswer:", it stays near chance).
Arithmetic and logic tasks use generated problems.
Everything is deterministic: a fixed seed per task, and text that ships with the interpreter.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import yaml

from harp.errors import HarpError
from harp.eval import longbench
from harp.eval.tasks import LONGBENCH_NAMES, SUITE

N_EVAL = 8  # documents scored per (sub)task
N_SHOTS = 26  # few-shot pool (arc_challenge asks for 25)
TASKS_DIR = "tasks"  # generated YAMLs, under the fixture root

# Each suite task's definition: lm-eval's installed YAML (relative to lm_eval/tasks), or for LongBench our
# own (an absolute path); a group: its YAML and the subtasks kept.
GROUPS = {
    "mmlu": (
        "mmlu/default/_mmlu.yaml",
        ["mmlu/default/mmlu_astronomy.yaml", "mmlu/default/mmlu_computer_security.yaml"],
    ),
    "bbh_cot_fewshot": (
        "bbh/cot_fewshot/_bbh_cot_fewshot.yaml",
        ["bbh/cot_fewshot/boolean_expressions.yaml", "bbh/cot_fewshot/multistep_arithmetic_two.yaml"],
    ),
    "leaderboard_math_hard": (
        "leaderboard/math/_leaderboard_math.yaml",
        ["leaderboard/math/math_algebra.yaml", "leaderboard/math/math_prealgebra.yaml"],
    ),
}
SINGLE = {
    "nq_open": "nq_open/nq_open.yaml",
    "triviaqa": "triviaqa/default.yaml",
    "gsm8k": "gsm8k/gsm8k.yaml",
    "winogrande": "winogrande/default.yaml",
    "arc_challenge": "arc/arc_challenge.yaml",
    "boolq": "super_glue/boolq/default.yaml",
    "openbookqa": "openbookqa/openbookqa.yaml",
    "piqa": "piqa/piqa.yaml",
} | {f"longbench_{n}": longbench.task_yaml(n) for n in LONGBENCH_NAMES}


def lm_eval_tasks_dir() -> Path:
    import lm_eval.tasks

    return Path(lm_eval.tasks.__file__).parent


# ---------------------------------------------------------------- text from the held-out corpus
@lru_cache(maxsize=1)
def _sentences() -> list[str]:
    """Held-out sentences of 8-30 plain words: the raw material of the corpus-based items."""
    from harp.data.corpus import corpus_splits

    out = []
    for doc in corpus_splits().heldout:
        for para in re.split(r"\n\s*\n", doc):  # paragraphs are hard-wrapped: rejoin their lines
            for s in re.split(r"(?<=[.!?])\s+", " ".join(para.split())):
                if 8 <= len(s.split()) <= 30 and s.isascii() and s[0].isalpha():
                    out.append(s)
    return out


def _paragraphs(rng: random.Random, k: int) -> list[str]:
    """`k` held-out paragraphs of 2-4 consecutive sentences."""
    sents = _sentences()
    out = []
    for _ in range(k):
        i = rng.randrange(len(sents) - 4)
        out.append(" ".join(sents[i : i + rng.randint(2, 4)]))
    return out


def _cloze(rng: random.Random, sentence: str) -> tuple[str, str, str]:
    """(prefix, next word, rest of the sentence from that word) at a cut in the sentence's second half."""
    words = sentence.split()
    k = rng.randint(len(words) // 2, len(words) - 2)
    return " ".join(words[:k]), words[k].strip(".,;:()'\"`"), " ".join(words[k:])


def _distractors(rng: random.Random, sents: list[str], n: int, length: int, avoid: str) -> list[str]:
    """Endings of other sentences with as many words as the true one, so that no option wins on length or
    on ending a sentence alone."""
    out: list[str] = []
    while len(out) < n:
        words = rng.choice(sents).split()
        if len(words) < length + 2:
            continue
        cand = " ".join(words[-length:])
        if cand != avoid and cand not in out:
            out.append(cand)
    return out


def _choices(rng: random.Random, sents: list[str], k: int) -> tuple[str, list[str], int]:
    """A cloze prefix with k continuations, the true one at a random index."""
    prefix, _, true = _cloze(rng, rng.choice(sents))
    opts = _distractors(rng, sents, k - 1, len(true.split()), true)
    gold = rng.randrange(k)
    opts.insert(gold, true)
    return prefix, opts, gold


# ---------------------------------------------------------------- one builder per document shape
def _nq(rng, sents):
    prefix, word, _ = _cloze(rng, rng.choice(sents))
    return {"question": prefix, "answer": [word]}


def _triviaqa(rng, sents):
    prefix, word, _ = _cloze(rng, rng.choice(sents))
    return {
        "question": prefix,
        "question_id": f"q{rng.randrange(10**6)}",
        "answer": {"aliases": [word], "normalized_aliases": [word.lower()], "value": word},
    }


def _gsm8k(rng, sents):
    a, b, c = rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 5)
    total = (a + b) * c
    return {
        "question": f"A box holds {a} red and {b} blue pens. How many pens are in {c} boxes?",
        "answer": f"One box holds {a} + {b} = {a + b} pens.\n"
        f"{c} boxes hold {a + b} * {c} = {total} pens.\n#### {total}",
    }


def _math(rng, sents):
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    return {
        "problem": f"Compute ${a} \\cdot {b}$.",
        "solution": f"We have ${a} \\cdot {b} = \\boxed{{{a * b}}}$.",
        "level": "Level 5",
        "type": "Algebra",
    }


def _boolean_expression(rng, sents):
    expr = " ".join(
        rng.choice(["True", "False", "not True", "not False"]) if i % 2 == 0 else rng.choice(["and", "or"])
        for i in range(2 * rng.randint(2, 3) - 1)
    )
    return {"input": f"{expr} is", "target": str(eval(expr))}  # noqa: S307  (our own True/False/and/or/not)


def _arithmetic(rng, sents):
    a, b, c, d = (rng.randint(-9, 9) for _ in range(4))
    return {"input": f"(({a} + {b}) * ({c} - {d})) =", "target": str((a + b) * (c - d))}


def _winogrande(rng, sents):
    s = rng.choice(sents)
    words = s.split()
    spots = [i for i, w in enumerate(words[2:], 2) if w.isalpha() and len(w) >= 4 and i < len(words) - 2]
    i = rng.choice(spots or [len(words) // 2])
    other = rng.choice([w for w in rng.choice(sents).split() if w.isalpha() and w != words[i]] or ["thing"])
    answer = rng.choice(["1", "2"])
    opts = [words[i], other] if answer == "1" else [other, words[i]]
    return {
        "sentence": " ".join(words[:i] + ["_"] + words[i + 1 :]),
        "option1": opts[0],
        "option2": opts[1],
        "answer": answer,
    }


def _arc(rng, sents):
    prefix, opts, gold = _choices(rng, sents, 4)
    labels = list("ABCD")
    return {
        "id": f"q{rng.randrange(10**6)}",
        "question": prefix,
        "question_stem": prefix,
        "choices": {"text": opts, "label": labels},
        "answerKey": labels[gold],
    }


def _boolq(rng, sents):
    passage, other = rng.sample(sents, 2)
    label = rng.randint(0, 1)
    prefix, _, _ = _cloze(rng, passage if label else other)
    return {"passage": passage, "question": f'does the passage contain the words "{prefix}"', "label": label}


def _piqa(rng, sents):
    prefix, opts, gold = _choices(rng, sents, 2)
    return {"goal": prefix, "sol1": opts[0], "sol2": opts[1], "label": gold}


def _mmlu(rng, sents):
    prefix, opts, gold = _choices(rng, sents, 4)
    return {
        "question": f'Which words continue this sentence? "{prefix} ..."',
        "subject": "fixture",
        "choices": opts,
        "answer": gold,
    }


def _longbench(context: str, question: str, answers: list[str], **extra) -> dict:
    """A row in LongBench's raw schema (data.zip's JSON lines), the question in `input`."""
    return {
        "context": context,
        "input": question,
        "answers": answers,
        "length": len(context.split()),
        "dataset": "fixture",
        "language": "en",
        "all_classes": None,
        "_id": "fixture",
    } | extra


def _lb_qa(rng, sents):
    paras = _paragraphs(rng, 3)
    target = rng.choice(re.split(r"(?<=[.!?])\s+", rng.choice(paras)))
    prefix, word, _ = _cloze(rng, target if len(target.split()) >= 4 else rng.choice(sents))
    return _longbench("\n\n".join(paras), f'Which word comes after "{prefix}"?', [word])


def _lb_summary(rng, sents):
    paras = _paragraphs(rng, 3)
    return _longbench("\n\n".join(paras), "", [re.split(r"(?<=[.!?])\s+", paras[0])[0]])


TREC_CLASSES = ["Description", "Entity", "Abbreviation", "Human being", "Location", "Numeric value"]


def _lb_trec(rng, sents):
    shots = "\n".join(
        f"Question: {_cloze(rng, rng.choice(sents))[0]}?\nType: {rng.choice(TREC_CLASSES)}" for _ in range(8)
    )
    return _longbench(
        shots,
        f"Question: {_cloze(rng, rng.choice(sents))[0]}?\nType:",
        [rng.choice(TREC_CLASSES)],
        all_classes=TREC_CLASSES,
    )


def _lb_count(rng, sents):
    unique = rng.sample(sents, rng.randint(2, 5))
    paras = unique + rng.sample(unique, rng.randint(0, len(unique)))
    rng.shuffle(paras)
    return _longbench("\n\n".join(f"Paragraph {i + 1}: {p}" for i, p in enumerate(paras)), "", [str(len(unique))])


def _lb_retrieval(rng, sents):
    paras = _paragraphs(rng, 5)
    k = rng.randrange(len(paras))
    return _longbench(
        "\n\n".join(f"Paragraph {i + 1}: {p}" for i, p in enumerate(paras)),
        re.split(r"(?<=[.!?])\s+", paras[k])[0],
        [f"Paragraph {k + 1}"],
    )


def _code_lines() -> list[str]:
    """Source lines of a few small stdlib modules: offline code for the code-completion tasks."""
    import colorsys  # noqa: E401
    import fnmatch
    import shlex
    import textwrap

    return [ln for m in (textwrap, shlex, fnmatch, colorsys) for ln in inspect.getsource(m).splitlines()]


def _lb_code(rng, sents, with_question: bool = False):
    lines = _code_lines()
    while True:
        end = rng.randrange(40, len(lines))
        if lines[end].strip() and not lines[end].strip().startswith("#"):
            break
    context = "\n".join(lines[end - 40 : end - 8 if with_question else end]) + "\n"
    question = "\n".join(lines[end - 8 : end]) + "\n" if with_question else ""
    return _longbench(context, question, [lines[end]])


Builder = Callable[[random.Random, list[str]], dict]
BUILDERS: dict[str, Builder] = {
    "nq_open": _nq,
    "triviaqa": _triviaqa,
    "gsm8k": _gsm8k,
    "winogrande": _winogrande,
    "arc_challenge": _arc,
    "boolq": _boolq,
    "openbookqa": _arc,
    "piqa": _piqa,
    "mmlu_astronomy": _mmlu,
    "mmlu_computer_security": _mmlu,
    "bbh_cot_fewshot_boolean_expressions": _boolean_expression,
    "bbh_cot_fewshot_multistep_arithmetic_two": _arithmetic,
    "leaderboard_math_algebra_hard": _math,
    "leaderboard_math_prealgebra_hard": _math,
    **{
        f"longbench_{n}": _lb_qa
        for n in ["narrativeqa", "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "musique", "triviaqa"]
    },
    **{f"longbench_{n}": _lb_summary for n in ["gov_report", "qmsum", "multi_news", "samsum"]},
    "longbench_trec": _lb_trec,
    "longbench_passage_count": _lb_count,
    "longbench_passage_retrieval_en": _lb_retrieval,
    "longbench_lcc": _lb_code,
    "longbench_repobench-p": lambda rng, sents: _lb_code(rng, sents, with_question=True),
}


# ---------------------------------------------------------------- writing data and task YAMLs
def _installed(rel: str | Path) -> tuple[Path, dict]:
    from lm_eval.tasks._yaml_loader import load_yaml

    path = lm_eval_tasks_dir() / rel
    return path, load_yaml(path, resolve_func=False)


def _write_task(root: Path, final: Path, installed: Path, cfg: dict) -> str:
    """Data files for every split the installed task reads, and a YAML repointing it at their `final` place."""
    name = cfg["task"]
    rng = random.Random(f"harp-fixture-{name}")
    sents = _sentences()
    splits = {cfg.get(k) for k in ("training_split", "validation_split", "test_split", "fewshot_split")} - {None}
    eval_split = cfg.get("test_split") or cfg.get("validation_split")
    files = {}
    for split in sorted(splits):
        n = N_EVAL if split == eval_split else N_SHOTS
        path = root / "data" / name / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(BUILDERS[name](rng, sents)) + "\n" for _ in range(n)))
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


def write_fixtures(root: str | Path, final: str | Path | None = None) -> list[str]:
    """Write the fixtures of all 27 suite tasks under `root` (data/ and tasks/); returns the task names.

    `final`: where `root` will be moved to (the YAMLs name their data files by absolute path).
    """
    root = Path(root).resolve()
    final = Path(final).resolve() if final else root
    (root / TASKS_DIR).mkdir(parents=True, exist_ok=True)
    for rel in SINGLE.values():
        _write_task(root, final, *_installed(rel))
    for group, (group_rel, subtask_rels) in GROUPS.items():
        subtasks = [_write_task(root, final, *_installed(rel)) for rel in subtask_rels]
        group_yaml = {"include": str(lm_eval_tasks_dir() / group_rel), "group": group, "task": subtasks}
        (root / TASKS_DIR / f"_{group}.yaml").write_text(yaml.safe_dump(group_yaml, sort_keys=False))
    assert set(SINGLE) | set(GROUPS) == set(SUITE)
    return sorted(SUITE)


def fixture_tasks_dir(root: str | Path, tasks: list[str]) -> Path:
    """The generated task YAMLs under `root`, after checking every requested task has its fixture."""
    tasks_dir = Path(root) / TASKS_DIR
    missing = [t for t in tasks if not (tasks_dir / (f"_{t}.yaml" if t in GROUPS else f"{t}.yaml")).exists()]
    if missing:
        raise HarpError(
            f"No offline fixtures for {', '.join(missing)} under {tasks_dir}: "
            "run `python -m harp.cli.fixtures` first (snakemake does it)."
        )
    return tasks_dir
