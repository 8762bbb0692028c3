"""Which decoder layers a method prunes, and how per-layer values listed from the last layer pair with them.

Torch-free: the workflow planner checks a layer setting before any job starts with the same function
the stages use.
"""

from __future__ import annotations

from collections.abc import Sequence

from harp.errors import HarpError

DIAGNOSED = "diagnosed"  # the layers the diagnose stage's measurements rank best (harp.diagnostics)
POSITIONS = ("top", "middle", "bottom", DIAGNOSED)


def check_count(total: int, count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= total:
        raise HarpError(f"Cannot prune {count} layers of a {total}-layer model; choose 1..{total}.")


def pruned_layers(total: int, count: int, position: str = "top", ranking: Sequence[int] | None = None) -> list[int]:
    """Indices of `count` layers of a `total`-layer model, in increasing order: the top ones (the paper), the
    middle or the bottom ones (ablations), or the first `count` of `ranking` (every layer, best first) for
    `diagnosed`."""
    if position not in POSITIONS:
        raise HarpError(f"Unknown layer position {position!r}; choose one of {', '.join(POSITIONS)}.")
    check_count(total, count)
    if position == DIAGNOSED:
        if ranking is None or sorted(ranking) != list(range(total)):
            raise HarpError(
                f"layer_position={DIAGNOSED} needs a ranking of all {total} layers from the diagnose stage; "
                "run `python -m harp.cli.diagnose` for this model first."
            )
        return sorted(ranking[:count])
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
