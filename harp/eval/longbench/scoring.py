"""LongBench's scoring (THUDM/LongBench eval.py and metrics.py) as lm-eval `process_results` functions.

Per document LongBench takes the generated text as it is (it strips nothing), keeps only the first
non-empty line for trec, triviaqa and samsum (`lstrip("\\n").split("\\n")[0]`: a leading newline is
skipped, not an empty answer), scores it against every reference answer and keeps the best. The
pairwise metrics are lm-eval's copies of LongBench's, which are identical, except code similarity:
lm-eval's (v6) skips blank lines, LongBench's takes the first line after the leading newlines with no
backtick, "#" or "//", blank or not, so `code_sim_score` here is LongBench's. Scores stay on lm-eval's
0-1 scale (LongBench prints 100 x the mean).
"""

from __future__ import annotations

from collections.abc import Callable

from fuzzywuzzy import fuzz
from lm_eval.tasks.longbench import metrics as lb  # needs lm-eval[longbench]: jieba, fuzzywuzzy, rouge

Metric = Callable[..., float]


def code_sim_score(prediction: str, ground_truth: str, **kwargs) -> float:
    """LongBench's code edit similarity: the first line after leading newlines without a comment or code
    fence marker (an empty line qualifies), compared with `fuzz.ratio`."""
    lines = prediction.lstrip("\n").split("\n")
    line = next((ln for ln in lines if "`" not in ln and "#" not in ln and "//" not in ln), "")
    return fuzz.ratio(line, ground_truth) / 100


def first_line(prediction: str) -> str:
    """What LongBench scores for trec, triviaqa and samsum: the first line once leading newlines are gone."""
    return prediction.lstrip("\n").split("\n")[0]


def _scorer(metric: Metric, name: str, cut: Callable[[str], str] | None = None):
    """A `process_results(doc, results)` scoring the one generation as LongBench does, under `score` (the
    key every suite task reports) and the metric's own `name`."""

    def process_results(doc: dict, results: list[str]) -> dict[str, float]:
        prediction = cut(results[0]) if cut else results[0]
        score = max([0.0] + [metric(prediction, gt, all_classes=doc["all_classes"]) for gt in doc["answers"]])
        return {"score": float(score), name: float(score)}

    return process_results


qa_f1 = _scorer(lb.qa_f1_score, "qa_f1_score")
qa_f1_first_line = _scorer(lb.qa_f1_score, "qa_f1_score", first_line)
rouge = _scorer(lb.rouge_score, "rouge_score")
rouge_first_line = _scorer(lb.rouge_score, "rouge_score", first_line)
classification_first_line = _scorer(lb.classification_score, "classification_score", first_line)
count = _scorer(lb.count_score, "count_score")
retrieval = _scorer(lb.retrieval_score, "retrieval_score")
code_sim = _scorer(code_sim_score, "code_sim_score")
