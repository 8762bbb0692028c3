"""Theorem 1's premise in the report: the diagnose stage's per-layer measurements, the layers HARP prunes, one table
per model and one sentence per model computed from the numbers (Figure 0 is `harp.report.figures.layers`)."""

from __future__ import annotations

import pandas as pd

from harp import methods
from harp.artifacts import MAIN
from harp.report.tables import Table, caveats, layer_span, model_label

# the measurements as the figure, the table and the sentence name them
LABELS = {
    "token_similarity": "token similarity Sim(H)",
    "attention_entropy": "attention entropy (1 = uniform)",
    "passthrough_error": "pass-through error",
}
SHORT = {
    "token_similarity": "Sim(H)",
    "attention_entropy": "Entropy",
    "passthrough_error": "PT error",
    "passthrough_alpha": "alpha*",
}
DEFINITIONS = (
    "Sim(H): mean cosine similarity between distinct token representations at the layer's input, averaged over "
    "the calibration sequences; Entropy: each causal attention row's entropy over the log of the positions it sees, "
    "averaged over heads and query positions (1 = uniform); PT error: relative error ||A - alpha* P|| / ||A|| of "
    "replacing the attention output A by the value pass-through P with the least-squares alpha*."
)


def per_layer(results: pd.DataFrame, model: str) -> pd.DataFrame:
    """The main run's measurements of `model`: one row per layer (index), one column per measurement."""
    rows = results[(results.kind == "diagnostic") & (results.experiment == MAIN) & (results.model == model)]
    table = rows.pivot_table(index="layer", columns="metric", values="score", aggfunc="first")
    table.index = table.index.astype(int)
    return table.sort_index()


def diagnosed_models(results: pd.DataFrame) -> list[str]:
    return sorted(set(results.model[(results.kind == "diagnostic") & (results.experiment == MAIN)]))


def harp_layers(results: pd.DataFrame, model: str, experiment: str = MAIN) -> list[int]:
    """The layers HARP pruned in `experiment` (its alpha rows), empty when it has not run."""
    rows = results[
        (results.kind == "alpha")
        & (results.experiment == experiment)
        & (results.model == model)
        & (results.method == methods.SEARCHED)
    ]
    return sorted(int(layer) for layer in rows.layer.dropna())


def sentence(results: pd.DataFrame, model: str) -> str:
    """Does `model` meet Theorem 1's premise in the layers HARP prunes? Their mean similarity and entropy against
    the other layers' (and the pass-through error, what the premise is meant to keep small)."""
    d, name = per_layer(results, model), model_label(results[results.model == model], model)  # the tiny model says so
    pruned = [layer for layer in harp_layers(results, model) if layer in d.index]
    if not pruned or len(pruned) == len(d):
        return (
            f"{name}: HARP's pruned layers are not in the results, so the premise cannot be compared; Sim(H) "
            f"ranges {d.token_similarity.min():.2f}-{d.token_similarity.max():.2f} over the layers."
        )
    inside, outside = d.loc[pruned].mean(), d.drop(index=pruned).mean()
    similar = inside.token_similarity > outside.token_similarity
    uniform = inside.attention_entropy > outside.attention_entropy
    verdict = (
        "it meets the premise there: tokens more alike and attention closer to uniform than elsewhere"
        if similar and uniform
        else "it meets the premise only in part: tokens more alike but attention less uniform than elsewhere"
        if similar
        else "it meets the premise only in part: attention closer to uniform but tokens less alike than elsewhere"
        if uniform
        else "it does not meet the premise there: tokens less alike and attention less uniform than elsewhere"
    )
    return (
        f"{name}: in the {len(pruned)} layers HARP prunes ({layer_span(pruned)}) Sim(H) averages "
        f"{inside.token_similarity:.2f} against {outside.token_similarity:.2f} in the other layers, attention "
        f"entropy {inside.attention_entropy:.2f} against {outside.attention_entropy:.2f}, and the pass-through error "
        f"{inside.passthrough_error:.2f} against {outside.passthrough_error:.2f}; {verdict}."
    )


def sentences(results: pd.DataFrame) -> list[str]:
    """One sentence per diagnosed model (the report page lists them)."""
    return [sentence(results, m) for m in diagnosed_models(results)]


def diagnostics_table(results: pd.DataFrame, model: str) -> Table | None:
    """One row per layer: the three measurements, alpha*, and whether HARP prunes the layer."""
    d = per_layer(results, model)
    if d.empty:
        return None
    pruned = set(harp_layers(results, model))
    frame = d.reindex(columns=list(SHORT)).rename(columns=SHORT).round(2)
    frame.insert(0, "Layer", d.index.to_numpy())
    frame["HARP"] = ["pruned" if layer in pruned else "" for layer in d.index]
    rows = results[(results.kind == "diagnostic") & (results.experiment == MAIN) & (results.model == model)]
    sources = ", ".join(f"{t}, {int(n)} tokens" for t, n in sorted(set(zip(rows.task, rows.n_samples))))
    caption = (
        f"{model_label(results[results.model == model], model)}: Theorem 1's premise per layer (0-based), on the "
        f"calibration set of HARP's search ({sources}), rounded to two decimals. {DEFINITIONS} "
        f"{sentence(results, model)} {caveats(rows)}"
    )
    return Table(f"{model}_layers", caption.strip(), frame.reset_index(drop=True), precision=2)
