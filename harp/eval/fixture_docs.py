"""Fixture documents, one builder per document shape: each returns one row with exactly the fields a task
definition of that shape reads (`harp.eval.tasks` says which task uses which builder).

Items are built from the tiny model's held-out corpus wherever the format allows (the true next word or
continuation among continuations of other sentences, a word blanked out of a sentence, the lead
sentence as the summary, a sentence of the context as the cloze question), so a trained model can score
above chance and pruning moves the numbers (the tiny model does on the blank-filling and the summary and code
documents; where a prompt breaks the sentence, "Question: ...\nAnswer:", it stays near chance).
Arithmetic and logic documents use generated problems. Everything is deterministic: the caller seeds `rng`,
and the text ships with the interpreter.
"""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Callable
from functools import lru_cache

Builder = Callable[[random.Random, list[str]], dict]


# ---------------------------------------------------------------- text from the held-out corpus
@lru_cache(maxsize=1)
def sentences() -> list[str]:
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
    sents = sentences()
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
def cloze_question(rng, sents):
    prefix, word, _ = _cloze(rng, rng.choice(sents))
    return {"question": prefix, "answer": [word]}


def trivia_question(rng, sents):
    prefix, word, _ = _cloze(rng, rng.choice(sents))
    return {
        "question": prefix,
        "question_id": f"q{rng.randrange(10**6)}",
        "answer": {"aliases": [word], "normalized_aliases": [word.lower()], "value": word},
    }


def word_problem(rng, sents):
    a, b, c = rng.randint(2, 20), rng.randint(2, 20), rng.randint(2, 5)
    total = (a + b) * c
    return {
        "question": f"A box holds {a} red and {b} blue pens. How many pens are in {c} boxes?",
        "answer": f"One box holds {a} + {b} = {a + b} pens.\n"
        f"{c} boxes hold {a + b} * {c} = {total} pens.\n#### {total}",
    }


def math_problem(rng, sents):
    a, b = rng.randint(2, 30), rng.randint(2, 30)
    return {
        "problem": f"Compute ${a} \\cdot {b}$.",
        "solution": f"We have ${a} \\cdot {b} = \\boxed{{{a * b}}}$.",
        "level": "Level 5",
        "type": "Algebra",
    }


def boolean_expression(rng, sents):
    expr = " ".join(
        rng.choice(["True", "False", "not True", "not False"]) if i % 2 == 0 else rng.choice(["and", "or"])
        for i in range(2 * rng.randint(2, 3) - 1)
    )
    return {"input": f"{expr} is", "target": str(eval(expr))}  # noqa: S307  (our own True/False/and/or/not)


def arithmetic(rng, sents):
    a, b, c, d = (rng.randint(-9, 9) for _ in range(4))
    return {"input": f"(({a} + {b}) * ({c} - {d})) =", "target": str((a + b) * (c - d))}


def blank_choice(rng, sents):
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


def lettered_choice(rng, sents):
    prefix, opts, gold = _choices(rng, sents, 4)
    labels = list("ABCD")
    return {
        "id": f"q{rng.randrange(10**6)}",
        "question": prefix,
        "question_stem": prefix,
        "choices": {"text": opts, "label": labels},
        "answerKey": labels[gold],
    }


def passage_question(rng, sents):
    passage, other = rng.sample(sents, 2)
    label = rng.randint(0, 1)
    prefix, _, _ = _cloze(rng, passage if label else other)
    return {"passage": passage, "question": f'does the passage contain the words "{prefix}"', "label": label}


def two_solutions(rng, sents):
    prefix, opts, gold = _choices(rng, sents, 2)
    return {"goal": prefix, "sol1": opts[0], "sol2": opts[1], "label": gold}


def subject_choice(rng, sents):
    prefix, opts, gold = _choices(rng, sents, 4)
    return {
        "question": f'Which words continue this sentence? "{prefix} ..."',
        "subject": "fixture",
        "choices": opts,
        "answer": gold,
    }


def _long_row(context: str, question: str, answers: list[str], **extra) -> dict:
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


def long_qa(rng, sents):
    paras = _paragraphs(rng, 3)
    target = rng.choice(re.split(r"(?<=[.!?])\s+", rng.choice(paras)))
    prefix, word, _ = _cloze(rng, target if len(target.split()) >= 4 else rng.choice(sents))
    return _long_row("\n\n".join(paras), f'Which word comes after "{prefix}"?', [word])


def long_summary(rng, sents):
    paras = _paragraphs(rng, 3)
    return _long_row("\n\n".join(paras), "", [re.split(r"(?<=[.!?])\s+", paras[0])[0]])


QUESTION_TYPES = ["Description", "Entity", "Abbreviation", "Human being", "Location", "Numeric value"]


def long_classification(rng, sents):
    shots = "\n".join(
        f"Question: {_cloze(rng, rng.choice(sents))[0]}?\nType: {rng.choice(QUESTION_TYPES)}" for _ in range(8)
    )
    return _long_row(
        shots,
        f"Question: {_cloze(rng, rng.choice(sents))[0]}?\nType:",
        [rng.choice(QUESTION_TYPES)],
        all_classes=QUESTION_TYPES,
    )


def long_count(rng, sents):
    unique = rng.sample(sents, rng.randint(2, 5))
    paras = unique + rng.sample(unique, rng.randint(0, len(unique)))
    rng.shuffle(paras)
    return _long_row("\n\n".join(f"Paragraph {i + 1}: {p}" for i, p in enumerate(paras)), "", [str(len(unique))])


def long_retrieval(rng, sents):
    paras = _paragraphs(rng, 5)
    k = rng.randrange(len(paras))
    return _long_row(
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


def long_code(rng, sents, with_question: bool = False):
    lines = _code_lines()
    while True:
        end = rng.randrange(40, len(lines))
        if lines[end].strip() and not lines[end].strip().startswith("#"):
            break
    context = "\n".join(lines[end - 40 : end - 8 if with_question else end]) + "\n"
    question = "\n".join(lines[end - 8 : end]) + "\n" if with_question else ""
    return _long_row(context, question, [lines[end]])


def long_code_question(rng, sents):
    return long_code(rng, sents, with_question=True)
