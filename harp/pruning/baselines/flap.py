"""FLAP: fluctuation-based structured pruning with bias compensation (CASIA-IVA-Lab/FLAP, its AL-AM default).

Channel j of o_proj / down_proj scores its weighted input fluctuation (WIFV): Var_tokens(X_j) *
||W_:,j||^2; FLAP's code squares the o_proj (attention) channel score, not the MLP one. As in its
release, channel scores are standardised within each layer and module (mean/std), then averaged per
key/value group, so one global threshold ranks all layers (and attention against MLP); the calibration
mean of the removed inputs is folded into the output bias (W[:, removed] @ mean), so the layer's
expected output is kept.
"""

from __future__ import annotations

import torch

from harp.pruning.baselines.common import apply_structured_plan, channel_scores, plan_structured
from harp.pruning.baselines.structures import ChannelStats
from harp.pruning.plan import Plan, PruneInputs


def wifv(weight: torch.Tensor, stats: ChannelStats) -> torch.Tensor:
    return stats.variance * weight.double().pow(2).sum(0).cpu()


def make_plan(inp: PruneInputs) -> Plan:
    scores = channel_scores(wifv, standardised=True, attention_power=2)
    plan = plan_structured(inp, "flap", scores, standardise=False, compensate=True)
    plan.details["standardised"] = "channels, within each layer and module"
    return plan


apply = apply_structured_plan
