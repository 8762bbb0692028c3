"""Matched budgets: choose the least important structures until the removed parameter count matches the
budget (`harp.pruning.budget`) within 1%, with one of two allocations across layers:

- global: one ranking over all layers (FLAP's adaptive allocation; scores standardised per layer when
  they must compete across layers or kinds), walked until the budget is spent (`rank`, `select`);
- uniform: the same number of units removed in every layer, the lowest-scored within each layer (Wanda-sp
  and Mag-sp in FLAP's scripts, AMP); a remainder that does not divide evenly goes to evenly spaced
  layers, recorded in the plan (`select_uniform`).

Structures differ in size (a key/value group with its query heads is `2 * (n_rep + 1) * head_dim *
hidden` weights, an MLP channel `3 * hidden`, a whole attention block all of q/k/v/o), so the
budget is counted in exact weights, never in a number of structures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from harp.errors import HarpError

TOLERANCE = 0.01


@dataclass(frozen=True)
class Unit:
    kind: str  # "attention" (a key/value group), "mlp" (a channel) or "block" (a whole attention block)
    layer: int
    index: int
    cost: int  # decoder linear weights its removal frees


def standardised_within(s: torch.Tensor) -> torch.Tensor:
    """(s - mean) / std within one layer, so layers with different scales compete fairly (FLAP)."""
    if s.numel() < 2 or s.std() == 0:
        return torch.zeros_like(s)
    return (s - s.mean()) / s.std()


def rank(
    scores: Mapping[tuple[str, int], torch.Tensor], costs: Mapping[tuple[str, int], int], standardise: bool
) -> list[Unit]:
    """All removable units, least important (lowest score) first; ties go to the lower layer/index.

    Protected, hence never listed: the best channel of every MLP (an MLP keeps at least one channel).
    """
    entries = []
    for (kind, layer), s in scores.items():
        s = s.double().cpu()
        if standardise:
            s = standardised_within(s)
        protected = int(torch.argmax(s)) if kind == "mlp" else -1
        entries += [(v, layer, kind, i) for i, v in enumerate(s.tolist()) if i != protected]
    entries.sort()
    return [Unit(kind, layer, i, costs[(kind, layer)]) for _, layer, kind, i in entries]


def select(ranked: list[Unit], target: int, strict: bool = True) -> list[Unit]:
    """Walk the ranking, taking each unit that still fits the budget.

    `strict`: a unit fits while the removed count stays within 1% above `target`, so a large unit
    near the end is skipped and smaller ones further down fill the rest; missing the budget by
    more than 1% (units too coarse) raises. Not strict: a unit is taken whenever it brings the count
    closer to `target`, and the caller records the gap. Equal-size units go strictly in rank order.
    """
    upper = target + TOLERANCE * target
    chosen, removed = [], 0
    for unit in ranked:
        if removed >= target:
            break
        fits = removed + unit.cost <= upper if strict else unit.cost < 2 * (target - removed)
        if fits:
            chosen.append(unit)
            removed += unit.cost
    if strict and abs(removed - target) > TOLERANCE * max(target, 1):
        raise HarpError(
            f"Cannot match the budget of {target:,} weights within 1%: the closest is {removed:,}; "
            "use finer structures (method.target=attention+mlp) or another budget."
        )
    return chosen


def spread(count: int, layers: list[int]) -> dict[int, int]:
    """`count` units over `layers` as evenly as possible: each gets the same share, and the remainder one
    more in evenly spaced layers (deterministic, independent of the scores)."""
    base, extra = divmod(count, len(layers))
    more = {layers[(2 * i + 1) * len(layers) // (2 * extra)] for i in range(extra)}
    return {layer: base + (layer in more) for layer in layers}


def _lowest(scores: torch.Tensor, k: int, kind: str) -> list[int]:
    """Indices of the `k` lowest scores (ties to the lower index); an MLP keeps its best channel."""
    order = sorted(range(scores.numel()), key=lambda i: (scores[i].item(), i))
    if kind == "mlp":
        order.remove(int(torch.argmax(scores.double())))
    if k > len(order):
        raise HarpError(f"The budget asks for {k} {kind} units in one layer, which has only {len(order)} removable.")
    return order[:k]


def select_uniform(
    scores: Mapping[tuple[str, int], torch.Tensor], costs: Mapping[tuple[str, int], int], target: int
) -> tuple[list[Unit], dict]:
    """The same number of units of each kind in every layer, the lowest-scored within each layer.

    One kind: the budget in units, `spread` over the layers. Attention and MLP together (AMP, FLAP's
    UL-UM): the same fraction p of key/value groups and of channels per layer, with p set by the budget;
    groups are rounded and capped at all but one per layer (AMP), and channels fill the rest exactly.
    Returns the units and the per-layer counts for the plan.
    """
    layers = {kind: sorted(layer for k, layer in scores if k == kind) for kind, _ in scores}
    counts: dict[str, dict[int, int]] = {}
    if len(layers) == 1:
        ((kind, where),) = layers.items()
        counts[kind] = spread(round(target / costs[(kind, where[0])]), where)
    else:
        groups, channels = layers["attention"], layers["mlp"]
        whole = sum(costs[("attention", i)] * scores[("attention", i)].numel() for i in groups) + sum(
            costs[("mlp", i)] * scores[("mlp", i)].numel() for i in channels
        )
        p = target / whole
        counts["attention"] = {
            i: min(round(p * scores[("attention", i)].numel()), scores[("attention", i)].numel() - 1) for i in groups
        }
        rest = target - sum(n * costs[("attention", i)] for i, n in counts["attention"].items())
        counts["mlp"] = spread(max(round(rest / costs[("mlp", channels[0])]), 0), channels)
    chosen = [
        Unit(kind, layer, index, costs[(kind, layer)])
        for kind, per_layer in counts.items()
        for layer, k in per_layer.items()
        for index in _lowest(scores[(kind, layer)].double().cpu(), k, kind)
    ]
    removed = sum(u.cost for u in chosen)
    if abs(removed - target) > TOLERANCE * max(target, 1):
        raise HarpError(
            f"Cannot match the budget of {target:,} weights within 1% with the same count in every layer: the "
            f"closest is {removed:,}; use method.allocation=global or finer structures (method.target=attention+mlp)."
        )
    return chosen, {kind: {str(layer): k for layer, k in per_layer.items()} for kind, per_layer in counts.items()}
