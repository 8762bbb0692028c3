"""The paper's figures from the collected results (matplotlib, object API: no display needed).

Each function takes the tidy frame of `harp.report.collect` and returns a `Figure`, or None when the
results it needs are absent; `write_figures` saves every figure as PDF (for the paper) and PNG.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harp import methods
from harp.artifacts import MAIN
from harp.eval.tasks import label as task_label
from harp.io import atomic_path
from harp.report import premise
from harp.report.tables import CATEGORIES, bool_column, category_means, flags, method_order

NO_RESCALE = "no_rescale"  # the ablation experiment that fixes alpha = 1
FIG1_MODEL = "llama3_1_8b"  # the paper's Figure 1 (left) model


def _panels(n: int, width: float = 4.2, height: float = 3.2, cols: int | None = None) -> tuple[Figure, list]:
    cols = cols or min(n, 2)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _title(ax, model: str, rows: pd.DataFrame, what: str = "") -> None:
    """Panel title with the fixture/capped/tiny flags, so a PNG is never mistaken for paper numbers."""
    warn = flags(rows[rows.model == model])
    ax.set_title(
        f"{model}{what}" + (f" [{', '.join(warn)}]" if warn else ""), fontsize=9, color="firebrick" if warn else "black"
    )


def _task_order(rows: pd.DataFrame, tasks) -> list[str]:
    """Tasks grouped as in the tables (generation, discriminative, LongBench), then by name."""
    category = rows.drop_duplicates("task").set_index("task")["category"]
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(tasks, key=lambda t: (rank.get(category.get(t), len(rank)), t))


def figure1_model(models) -> str:
    """Figure 1 (left)'s model: Llama-3.1-8B as in the paper when it was run, else the first model by name (the
    demo's only one)."""
    return FIG1_MODEL if FIG1_MODEL in set(models) else sorted(set(models))[0]


def layers(results: pd.DataFrame) -> Figure | None:
    """Figure 0: Theorem 1's premise per layer (token similarity, attention entropy, pass-through error), the
    layers HARP prunes shaded."""
    models = premise.diagnosed_models(results)
    if not models:
        return None
    fig, axes = _panels(len(models), width=5.0)
    for ax, model in zip(axes, models):
        d = premise.per_layer(results, model)
        for measure, style in zip(premise.LABELS, ("o-", "s-", "^-")):
            ax.plot(d.index, d[measure], style, markersize=3, label=premise.LABELS[measure])
        pruned = premise.harp_layers(results, model)
        for i, layer in enumerate(pruned):
            ax.axvspan(
                layer - 0.5, layer + 0.5, color="gray", alpha=0.25, lw=0, label="pruned by HARP" if not i else None
            )
        ax.set_ylim(min(0.0, float(d[list(premise.LABELS)].min().min())) - 0.05, 1.05)
        ax.set_xlim(-0.5, d.index.max() + 0.5)
        ax.set_xlabel("layer (0-based)")
        ax.set_ylabel("value")
        _title(ax, model, results[results.model == model], ": Theorem 1's premise per layer")
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes), key=lambda h: len(h[0]))
    fig.legend(handles, labels, fontsize=7, ncols=2, loc="outside lower center")
    return fig


def methods_by_category(results: pd.DataFrame) -> Figure | None:
    """Figure 1 (left): the methods compared on one model, the average score of each task category."""
    ev = results[(results.kind == "eval") & (results.experiment == MAIN)]
    if ev.empty:
        return None
    model = figure1_model(ev.model)
    ev = ev[ev.model == model]
    means = category_means(ev, "method").reindex(method_order(ev.method))
    fig = Figure(figsize=(max(4.2, 1.1 + 0.35 * means.size), 3.4), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(means.columns))
    width = 0.8 / len(means)
    for i, (method, row) in enumerate(means.iterrows()):
        ax.bar(x - 0.4 + (i + 0.5) * width, row.to_numpy(), width, label=methods.label(method))
    ax.set_xticks(x, list(means.columns))
    ax.set_ylabel("average score (x100)")
    _title(ax, model, ev, ": methods per task category")
    fig.legend(fontsize=7, ncols=min(4, len(means)), loc="outside lower center")
    return fig


def rescaling(results: pd.DataFrame) -> Figure | None:
    """Figure 1 (right): HARP with the searched alphas against HARP without rescaling, per benchmark."""
    ev = results[(results.kind == "eval") & (results.method == methods.SEARCHED)]
    with_rs = ev[ev.experiment == MAIN]
    without = ev[ev.experiment == NO_RESCALE]
    models = sorted(set(with_rs.model) & set(without.model))
    if not models:
        return None
    fig, axes = _panels(len(models), width=max(4.2, 0.55 * ev.task.nunique()), cols=1)
    for ax, model in zip(axes, models):
        a = with_rs[with_rs.model == model].set_index("task")["score"] * 100
        b = without[without.model == model].set_index("task")["score"] * 100
        tasks = _task_order(ev, set(a.index) & set(b.index))
        x = np.arange(len(tasks))
        ax.bar(x - 0.2, a[tasks], 0.4, label="HARP (searched alpha)")
        ax.bar(x + 0.2, b[tasks], 0.4, label="without rescaling (alpha = 1)")
        ax.set_xticks(x, [task_label(t) for t in tasks], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("score (x100)")
        ax.set_ylim(0, 1.35 * max(a[tasks].max(), b[tasks].max(), 1.0))  # room for the legend
        _title(ax, model, ev)
        ax.legend(fontsize=7, ncols=2, loc="upper center")
    return fig


def alphas(results: pd.DataFrame) -> Figure | None:
    """Figure 2: alpha of each pruned layer per model, with the published alphas as reference markers."""
    rows = results[(results.kind == "alpha") & (results.experiment == MAIN)]
    if rows.empty:
        return None
    models = sorted(set(rows.model))
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        r = rows[rows.model == model].sort_values("layer")
        ax.plot(r.layer, r.alpha, "o-", label="searched")
        if r.published_alpha.notna().any():
            ax.plot(r.layer, r.published_alpha, "x", markersize=9, color="black", label="published")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xticks(r.layer.astype(int))
        ax.set_xlabel("pruned layer (0-based)")
        ax.set_ylabel("alpha")
        _title(ax, model, rows)
        ax.legend(fontsize=7)
    return fig


def speed(results: pd.DataFrame) -> Figure | None:
    """Figure 3: median runtime against sequence length, original vs pruned, relative speedup on a second axis.

    The speedup is recomputed from the medians, (t_original / t_pruned - 1) x 100 %, so the figure does not
    depend on how the benchmark defined its own `speedup` column.
    """
    rows = results[(results.kind == "speed") & (results.experiment == MAIN)]
    if rows.empty:
        return None
    keys = sorted(set(zip(rows.model, rows.method, rows.phase)))
    fig, axes = _panels(len(keys))
    for ax, (model, method, phase) in zip(axes, keys):
        r = rows[(rows.model == model) & (rows.method == method) & (rows.phase == phase)]
        t = r.pivot_table(index="seq_len", columns="variant", values="median_s", aggfunc="median")
        low = r.pivot_table(index="seq_len", columns="variant", values="min_s", aggfunc="min")
        high = r.pivot_table(index="seq_len", columns="variant", values="max_s", aggfunc="max")
        for variant in ("original", "pruned"):
            if variant in t:  # the median of the repeats, bars from the fastest to the slowest
                spread = [t[variant] - low[variant], high[variant] - t[variant]]
                ax.errorbar(t.index, t[variant], yerr=spread, fmt="o-", capsize=2, label=variant)
        bound = r[r.variant == "pruned"].groupby("seq_len").bound.median()
        if "original" in t and not bound.empty:  # the pruned time the FLOP bound allows: t_original / (1 + bound)
            ax.plot(bound.index, t.original[bound.index] / (1 + bound), ":", color="black", label="FLOP bound")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sequence length")
        ax.set_ylabel("median time (s)")
        ax.set_title(f"{model} / {method}: {phase} ({r.device.iloc[0]}, {r.dtype.iloc[0]})", fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
        if {"original", "pruned"} <= set(t.columns):
            twin = ax.twinx()
            gain = (t.original / t.pruned - 1) * 100
            twin.plot(t.index, gain, "s--", color="gray")
            top = max(gain.max(), 100 * bound.max()) if not bound.empty else gain.max()
            twin.set_ylim(min(0.0, 1.2 * gain.min()), max(1.0, 1.2 * top))
            twin.set_ylabel("speedup (%)", color="gray")
    if bool_column(rows, "random_weights").any():
        fig.suptitle("random weights: timings only", fontsize=8, color="firebrick")
    return fig


def search_trace(results: pd.DataFrame) -> Figure | None:
    """Calibration perplexity over the alpha grid for each searched layer (the greedy search's trace)."""
    rows = results[(results.kind == "search") & (results.experiment == MAIN)]
    if rows.empty:
        return None
    models = sorted(set(rows.model))
    fig, axes = _panels(len(models))
    for ax, model in zip(axes, models):
        r = rows[rows.model == model]
        for (step, layer), curve in r.groupby(["step", "layer"]):
            curve = curve.sort_values("alpha")
            (line,) = ax.plot(curve.alpha, curve.score, ".-", label=f"layer {int(layer)} (step {int(step)})")
            best = curve.loc[curve.score.idxmin()]
            ax.plot(best.alpha, best.score, "*", markersize=11, color=line.get_color())
        if r.score.max() > 10 * r.score.min():  # alpha = 0 in a top layer can cost orders of magnitude
            ax.set_yscale("log")
        ax.set_xlabel("alpha")
        ax.set_ylabel("calibration perplexity")
        _title(ax, model, rows, ": greedy search (star = chosen)")
        ax.legend(fontsize=6)
    return fig


FIGURES: dict[str, Callable[[pd.DataFrame], Figure | None]] = {
    "fig0_layers": layers,
    "fig1_methods": methods_by_category,
    "fig1_rescaling": rescaling,
    "fig2_alphas": alphas,
    "fig3_speed": speed,
    "search_trace": search_trace,
}


def write_figures(results: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Save each figure whose results exist as `<name>.pdf` and `<name>.png`; returns the PNG paths."""
    written = []
    for name, draw in FIGURES.items():
        fig = draw(results)
        if fig is None:
            continue
        for suffix in (".pdf", ".png"):
            with atomic_path(Path(out_dir) / f"{name}{suffix}") as tmp:
                fig.savefig(tmp, format=suffix[1:], dpi=150)
        written.append(Path(out_dir) / f"{name}.png")
    return written
