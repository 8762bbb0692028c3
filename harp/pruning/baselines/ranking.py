"""Matched budgets: rank structures globally and pick the least important until the removed
parameter count matches the budget (`harp.pruning.budget`) within 1%.

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
            "use finer structures (method.target=attention+mlp) or set method.ratio."
        )
    return chosen
