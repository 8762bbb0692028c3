"""Which decoder layers a method prunes, and how per-layer values listed from the last layer pair with them.

Torch-free: the workflow planner checks a layer setting before any job starts with the same function
the stages use.
"""

from __future__ import annotations

from collections.abc import Sequence

from harp.errors import HarpError

POSITIONS = ("top", "middle", "bottom")


def pruned_layers(total: int, count: int, position: str = "top") -> list[int]:
    """Indices of `count` consecutive layers of a `total`-layer model: the top ones (the paper), the middle
    or the bottom ones (ablations), in increasing order."""
    if position not in POSITIONS:
        raise HarpError(f"Unknown layer position {position!r}; choose one of {', '.join(POSITIONS)}.")
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= total:
        raise HarpError(f"Cannot prune {count} layers of a {total}-layer model; choose 1..{total}.")
    start = {"top": total - count, "middle": (total - count) // 2, "bottom": 0}[position]
    return list(range(start, start + count))


def from_last(layers: Sequence[int], values: Sequence[float], what: str = "alphas") -> dict[int, float]:
    """Pair values listed from the last pruned layer down (index 0 = last layer, as the published alphas
    are) with their layers."""
    if len(values) != len(layers):
        raise HarpError(
            f"{len(values)} {what} were given for {len(layers)} pruned layers; give one per layer, "
            "the last layer first."
        )
    return {layer: float(v) for layer, v in zip(sorted(layers, reverse=True), values)}
