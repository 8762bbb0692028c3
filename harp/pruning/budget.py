"""The parameter budget every budgeted method removes, in decoder linear weights.

One notion for all methods: `method.ratio` of the model's decoder linear weights when set, else what
HARP's plan removed (the reference), so a baseline is compared with HARP at the same size.
"""

from __future__ import annotations

from torch import nn

from harp.errors import HarpError
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import Plan


def target_removed(model: nn.Module, ratio: float | None, reference: Plan | None) -> int:
    """Weights to remove from `model`: `ratio` of its decoder linear weights, or what `reference` removed."""
    before = decoder_linear_params(model)
    if ratio is not None:
        if not 0.0 <= ratio < 1.0:
            raise HarpError(f"method.ratio is {ratio}; it must lie in [0, 1).")
        return round(ratio * before)
    if reference is None:
        raise HarpError("No reference budget: run `prune method=harp` first, or set method.ratio.")
    if reference.params_before != before:
        raise HarpError(
            f"HARP's plan counts {reference.params_before} decoder linear weights but this model has "
            f"{before}: the reference plan belongs to a different model."
        )
    return reference.params_before - reference.params_after
