"""The report's opening: for each model evaluated on real data, held-out perplexity and task accuracy (± stderr)
per method at one budget, and two sentences computed from those numbers (HARP against the best head-pruning
baseline, and what rescaling buys). Whatever the numbers say is what the sentences say."""

from __future__ import annotations

import math

import pandas as pd

from harp import methods
from harp.artifacts import MAIN
from harp.report.tables import bool_column, method_order, model_label, short_name

# the ablations the sentences read: HARP's layers without rescaling, and the same count of layers at the bottom
NO_RESCALE, BOTTOM = "no_rescale", "bottom_layers"


def _head_pruning() -> list[str]:
    """The baselines that remove attention heads (and channels): the structured methods with a count rule."""
    return [m.name for m in methods.METHODS.values() if issubclass(m.config, methods.StructuredConfig)]


def _mean_with_stderr(rows: pd.DataFrame) -> tuple[float, float]:
    """Mean score over tasks and its stderr (the tasks' stderrs combined as independent)."""
    n = len(rows)
    err = rows["stderr"].astype(float)
    return float(rows.score.mean()), (math.sqrt(float((err**2).sum())) / n if err.notna().all() else math.nan)


def summary(results: pd.DataFrame, model: str) -> pd.DataFrame:
    """One row per method (then the two ablations): held-out perplexity, each task's accuracy and their mean."""
    mine = results[results.model == model]
    ppl = mine[mine.kind == "perplexity"].set_index(["experiment", "method"]).score
    evals = mine[(mine.kind == "eval") & (mine.experiment == MAIN)]
    rows = []
    for method in method_order(mine[mine.experiment == MAIN].method.dropna()):
        own = evals[evals.method == method]
        row = {"Method": methods.label(method), "Held-out ppl": ppl.get((MAIN, method), math.nan)}
        for task in own.itertuples():
            row[short_name(task.task)] = f"{100 * task.score:.1f} ± {100 * task.stderr:.1f}"
        if len(own):
            mean, err = _mean_with_stderr(own)
            row["Mean acc"] = f"{100 * mean:.1f} ± {100 * err:.1f}"
        rows.append(row)
    for experiment in (NO_RESCALE, BOTTOM):
        if (experiment, methods.SEARCHED) in ppl.index:
            rows.append({"Method": experiment, "Held-out ppl": ppl[(experiment, methods.SEARCHED)]})
    chance = evals.groupby("task").chance.first()
    if chance.notna().any():
        rows.append({"Method": "Chance"} | {short_name(t): f"{100 * c:.1f}" for t, c in chance.items()})
    return pd.DataFrame(rows)


def sentences(results: pd.DataFrame, model: str) -> list[str]:
    """HARP against the best head-pruning baseline by held-out perplexity, and what rescaling buys."""
    mine = results[results.model == model]
    ppl = mine[mine.kind == "perplexity"].set_index(["experiment", "method"]).score
    evals = mine[(mine.kind == "eval") & (mine.experiment == MAIN)]
    harp = methods.SEARCHED
    out = []
    baselines = {m: ppl[(MAIN, m)] for m in _head_pruning() if (MAIN, m) in ppl.index}
    if (MAIN, harp) in ppl.index and baselines:
        best = min(baselines, key=baselines.get)
        acc = {m: _mean_with_stderr(evals[evals.method == m]) for m in (harp, best) if (evals.method == m).any()}
        said = (
            f"; mean task accuracy {100 * acc[harp][0]:.1f} ± {100 * acc[harp][1]:.1f} against "
            f"{100 * acc[best][0]:.1f} ± {100 * acc[best][1]:.1f}"
            if len(acc) == 2
            else ""
        )
        verdict = "lower" if ppl[(MAIN, harp)] < baselines[best] else "higher"
        out.append(
            f"At the same budget, HARP's held-out perplexity is {ppl[(MAIN, harp)]:.1f}, {verdict} than the best "
            f"head-pruning baseline's ({methods.label(best)}, {baselines[best]:.1f}){said}."
        )
    if (MAIN, harp) in ppl.index and (NO_RESCALE, harp) in ppl.index:
        bottom = (
            f", and the same number of layers pruned at the bottom gives {ppl[(BOTTOM, harp)]:.1f}"
            if (BOTTOM, harp) in ppl.index
            else ""
        )
        out.append(
            f"Rescaling takes HARP's held-out perplexity from {ppl[(NO_RESCALE, harp)]:.1f} (alpha = 1) to "
            f"{ppl[(MAIN, harp)]:.1f} with the searched alphas{bottom}."
        )
    return out


def headline(results: pd.DataFrame) -> list[str]:
    """Markdown lines: a section per model evaluated on real data (not fixtures, not the tiny model)."""
    lines = []
    evals = results[results.kind == "eval"]
    real = evals[~bool_column(evals, "fixture") & ~bool_column(evals, "tiny_model")]
    for model in sorted(set(real.model)):
        rows = results[results.model == model]
        lines += [f"## {model_label(rows, model)}: at a glance", ""]
        table = summary(results, model)
        shown = table.astype(object).where(table.notna(), None)  # a blank, not "nan", where a row has no number
        lines += [shown.to_markdown(index=False, floatfmt=".1f", missingval=""), ""]
        lines += [" ".join(sentences(results, model)), ""]
        lines += [
            "Accuracy in % (lm-eval's acc ± its stderr); Mean acc: over the tasks shown; held-out perplexity on the "
            "model's held-out text; Chance: uniform guessing among each document's choices.",
            "",
        ]
    return lines
