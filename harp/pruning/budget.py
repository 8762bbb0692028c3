"""The parameter budget every budgeted method removes, in decoder linear weights: one notion for all methods.

- `attention_fraction` (the paper's comparison): a fraction of all attention (q/k/v/o) weights, by default
  L/N, the share of layers HARP prunes. With the published alphas, HARP plus the release's FLAP-MLP ratio
  removes exactly this (L/N of 335.5M on Llama-3.1-8B), so every method is compared at HARP's size.
- `ratio`: a fraction of all decoder linear weights.
- `match_harp`: whatever HARP's plan removed (the reference plan), e.g. to compare with pure HARP.
"""

from __future__ import annotations

from torch import nn

from harp.config import BudgetConfig
from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from harp.pruning.params import attention_weights, decoder_linear_params
from harp.pruning.plan import Plan


def target_removed(model: nn.Module, budget: BudgetConfig, pruned_layers: int, reference: Plan | None = None) -> int:
    """Weights to remove from the dense `model`; `pruned_layers` is HARP's L (the paper's fraction L/N)."""
    if budget.kind == "attention_fraction":
        fraction = budget.value if budget.value is not None else pruned_layers / len(decoder_layers(model))
        return round(fraction * attention_weights(model))
    if budget.kind == "ratio":
        return round(budget.value * decoder_linear_params(model))
    if reference is None:
        raise HarpError("budget.kind=match_harp needs HARP's plan: run `prune method=harp` first.")
    before = decoder_linear_params(model)
    if reference.params_before != before:
        raise HarpError(
            f"HARP's plan counts {reference.params_before} decoder linear weights but this model has {before}: "
            "the reference plan belongs to a different model."
        )
    return reference.params_before - reference.params_after


def in_words(budget: BudgetConfig, pruned_layers: int, num_layers: int) -> str:
    """The budget in words, for plans and logs."""
    if budget.kind == "attention_fraction":
        if budget.value is None:
            return f"{pruned_layers}/{num_layers} of the attention weights (L/N)"
        return f"{budget.value:g} of the attention weights"
    if budget.kind == "ratio":
        return f"{budget.value:g} of the decoder linear weights"
    return "what HARP's plan removed"
