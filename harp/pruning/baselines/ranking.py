"""How many units each layer loses, and which: one ranking or the same count per layer, and one of two count
rules (`method.counts`).

Allocation (`method.allocation`):
- global: one ranking over all layers (FLAP's adaptive allocation; scores standardised per layer when
  they must compete across layers or kinds), the least important first (`rank`);
- uniform: the same number of units in every layer, the lowest-scored within each layer (Wanda-sp and
  Mag-sp in FLAP's code, AMP), `select_per_layer`.

Counts (`method.counts`), with p = budget / weights of the pruned kinds (the ratio the reference codes take):
- reference: the count rule of the reference code. FLAP's code floors p x units per layer and kind (its
  UL-UM, Wanda-sp, Mag-sp: `floor_counts`) or over all layers (its AL-MM, each kind on its own: `floor_share`)
  and, ranking heads against channels (AL-AM), weighs a head as int(head weights / channel weights) channels
  and prunes every unit scored at or below the one where the kept weight is closest to (1 - p)
  (`flap_threshold`). AMP rounds p x heads (at most all but one) and adds the shortfall as that many channels
  (`amp_counts`). The removed weights then miss the budget by whatever the rule leaves.
- budget: the exact budget: removed weights within 1% of it, counted in exact weights per unit
  (`select`, `budget_counts`). Structures differ in size (a key/value group with its query heads is
  `2 * (n_rep + 1) * head_dim * hidden` weights, an MLP channel `3 * hidden`), so never a number of units.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from harp.errors import HarpError

TOLERANCE = 0.01
Key = tuple[str, int]  # (kind, layer)


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


def _prepared(scores: Mapping[Key, torch.Tensor], standardise: bool) -> dict[Key, torch.Tensor]:
    return {
        key: standardised_within(s.double().cpu()) if standardise else s.double().cpu() for key, s in scores.items()
    }


def _protected(kind: str, s: torch.Tensor) -> int:
    """The unit a layer never loses: the best channel of every MLP (an MLP keeps at least one channel)."""
    return int(torch.argmax(s)) if kind == "mlp" else -1


def rank(scores: Mapping[Key, torch.Tensor], costs: Mapping[Key, int], standardise: bool) -> list[Unit]:
    """All removable units, least important (lowest score) first; ties go to the lower layer/index.
    Protected units (`_protected`) are never listed."""
    entries = []
    for (kind, layer), s in _prepared(scores, standardise).items():
        protected = _protected(kind, s)
        entries += [(v, layer, kind, i) for i, v in enumerate(s.tolist()) if i != protected]
    entries.sort()
    return [Unit(kind, layer, i, costs[(kind, layer)]) for _, layer, kind, i in entries]


def select(ranked: list[Unit], target: int, strict: bool = True) -> list[Unit]:
    """Walk the ranking, taking each unit that still fits the budget (`method.counts=budget`).

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


def whole(sizes: Mapping[Key, int], costs: Mapping[Key, int]) -> int:
    """Weights of all units of the pruned kinds: p = budget / whole."""
    return sum(costs[key] * n for key, n in sizes.items())


def floor_share(target: int, units: int, weights: int) -> int:
    """floor(p x units) with p = target / weights, read at the budget's rounding: the integer budget may lie
    half a weight below p x weights, which must not drop a unit (exact integer arithmetic)."""
    return (2 * target + 1) * units // (2 * weights)


def floor_counts(sizes: Mapping[Key, int], costs: Mapping[Key, int], target: int) -> dict[Key, int]:
    """FLAP's code (UL-UM, Wanda-sp, Mag-sp): int(p x units) of each kind in every layer."""
    total = whole(sizes, costs)
    return {key: floor_share(target, n, total) for key, n in sizes.items()}


def amp_counts(sizes: Mapping[Key, int], costs: Mapping[Key, int], target: int) -> dict[Key, int]:
    """AMP's prune_model: round(p x heads), at most all but one; channels round(I((H/I)(p - h/H) + p)),
    i.e. p x I plus the heads' rounding shortfall counted as channels, at most all but one."""
    p = target / whole(sizes, costs)
    counts = {}
    for (kind, layer), n in sizes.items():
        if kind == "attention":
            counts[(kind, layer)] = min(round(p * n), n - 1)
        elif ("attention", layer) in sizes:
            heads = sizes[("attention", layer)]
            h = min(round(p * heads), heads - 1)
            counts[(kind, layer)] = min(round(n * ((heads / n) * (p - h / heads) + p)), n - 1)
        else:
            counts[(kind, layer)] = min(round(p * n), n - 1)
    return counts


def spread(count: int, layers: list[int]) -> dict[int, int]:
    """`count` units over `layers` as evenly as possible: each gets the same share, and the remainder one
    more in evenly spaced layers (deterministic, independent of the scores)."""
    base, extra = divmod(count, len(layers))
    more = {layers[(2 * i + 1) * len(layers) // (2 * extra)] for i in range(extra)}
    return {layer: base + (layer in more) for layer in layers}


def budget_counts(sizes: Mapping[Key, int], costs: Mapping[Key, int], target: int) -> dict[Key, int]:
    """The exact budget, the same count in every layer. One kind: the budget in units, `spread` over the
    layers. Attention and MLP together: groups round(p x groups), at most all but one per layer, and
    channels fill the rest of the budget exactly (`spread`)."""
    layers: dict[str, list[int]] = {}
    for kind, layer in sorted(sizes):
        layers.setdefault(kind, []).append(layer)
    if len(layers) == 1:
        ((kind, where),) = layers.items()
        return {(kind, i): k for i, k in spread(round(target / costs[(kind, where[0])]), where).items()}
    p = target / whole(sizes, costs)
    counts = {
        ("attention", i): min(round(p * sizes[("attention", i)]), sizes[("attention", i)] - 1)
        for i in layers["attention"]
    }
    rest = target - sum(n * costs[key] for key, n in counts.items())
    channels = layers["mlp"]
    fill = spread(max(round(rest / costs[("mlp", channels[0])]), 0), channels)
    return counts | {("mlp", i): k for i, k in fill.items()}


def lowest(scores: torch.Tensor, k: int, kind: str) -> list[int]:
    """Indices of the `k` lowest scores (ties to the lower index); an MLP keeps its best channel."""
    order = sorted(range(scores.numel()), key=lambda i: (scores[i].item(), i))
    if kind == "mlp":
        order.remove(int(torch.argmax(scores.double())))
    if k > len(order):
        raise HarpError(f"The budget asks for {k} {kind} units in one layer, which has only {len(order)} removable.")
    return order[:k]


def select_per_layer(
    scores: Mapping[Key, torch.Tensor], costs: Mapping[Key, int], counts: Mapping[Key, int]
) -> list[Unit]:
    """The `counts[(kind, layer)]` lowest-scored units of each kind in each layer."""
    return [
        Unit(kind, layer, index, costs[(kind, layer)])
        for (kind, layer), s in scores.items()
        for index in lowest(s.double().cpu(), counts[(kind, layer)], kind)
    ]


def check_budget(chosen: list[Unit], target: int, hint: str) -> None:
    """`method.counts=budget`: the removed weights within 1% of `target`, else one sentence with `hint`."""
    removed = sum(u.cost for u in chosen)
    if abs(removed - target) > TOLERANCE * max(target, 1):
        raise HarpError(f"Cannot match the budget of {target:,} weights within 1% {hint}: the closest is {removed:,}.")


def flap_threshold(
    scores: Mapping[Key, torch.Tensor], costs: Mapping[Key, int], target: int, standardise: bool
) -> list[Unit]:
    """FLAP's AL-AM count: walk all units from the most important down, a key/value group weighing
    int(group weights / channel weights) channels (FLAP stores that ratio as an integer), find the unit
    where the walked weight is closest to (1 - p) of the total, and prune every unit scored at or below it
    (that unit included). Protected units are kept."""
    prepared = _prepared(scores, standardise)
    entries = []
    for (kind, layer), s in prepared.items():
        weight = 1 if kind == "mlp" else costs[(kind, layer)] // costs[("mlp", layer)]
        entries += [(-v, layer, kind, i, weight) for i, v in enumerate(s.tolist())]
    entries.sort()
    walked = torch.tensor([e[4] for e in entries], dtype=torch.float64).cumsum(0)
    p = target / whole({key: s.numel() for key, s in prepared.items()}, costs)
    at = int(torch.argmin((walked - walked[-1] * (1 - p)).abs()))
    threshold = -entries[at][0]
    return [
        Unit(kind, layer, i, costs[(kind, layer)])
        for (kind, layer), s in prepared.items()
        for i in range(s.numel())
        if s[i] <= threshold and i != _protected(kind, s)
    ]


def reference_global(
    scores: Mapping[Key, torch.Tensor], costs: Mapping[Key, int], target: int, standardise: bool
) -> list[Unit]:
    """FLAP's global counts: one kind, the floor(p x units) lowest over all layers (AL-MM); attention and MLP
    together, `flap_threshold` (AL-AM)."""
    if len({kind for kind, _ in scores}) > 1:
        return flap_threshold(scores, costs, target, standardise)
    sizes = {key: s.numel() for key, s in scores.items()}
    return rank(scores, costs, standardise)[: floor_share(target, sum(sizes.values()), whole(sizes, costs))]
