"""FLAP: fluctuation-based structured pruning with bias compensation (CASIA-IVA-Lab/FLAP, metric WIFV).

Channel j of o_proj / down_proj scores its weighted input fluctuation (WIFV): fluctuation(X_j) *
||W_:,j||^2, the fluctuation estimated as FLAP's code does (`ChannelStats.fluctuation`, a running
estimate that is not the variance; `method.statistics=exact` uses the exact variance); FLAP's code squares
the o_proj (attention) channel score, not the MLP one. As in its code, channel scores are standardised
within each layer and module (mean/std), then averaged per key/value group, so one global threshold ranks
all layers. Which of FLAP's structures: `target=attention` is the attention half of its AL-MM (a number of
heads over all layers), `attention+mlp` its AL-AM (heads against channels), `allocation=uniform` its UL-UM.
The calibration mean of the removed inputs is folded into the output bias (W[:, removed] @ mean), so the
layer's expected output is kept.
"""

from __future__ import annotations

import functools

import torch

from harp.pruning.baselines.common import apply_structured_plan, channel_scores, plan_structured
from harp.pruning.baselines.structures import ChannelStats
from harp.pruning.plan import Plan, PruneInputs


def wifv(weight: torch.Tensor, stats: ChannelStats, exact: bool = False) -> torch.Tensor:
    spread = stats.variance if exact else stats.fluctuation
    return spread * weight.double().pow(2).sum(0).cpu()


def fluctuation_rule(statistics: str):
    """WIFV with FLAP's running fluctuation (`reference`) or the exact variance (`exact`)."""
    return functools.partial(wifv, exact=statistics == "exact")


def make_plan(inp: PruneInputs) -> Plan:
    scores = channel_scores(fluctuation_rule(inp.method.statistics), standardised=True, attention_power=2)
    plan = plan_structured(inp, "flap", scores, standardise=False, compensate=True)
    plan.details["standardised"] = "channels, within each layer and module"
    plan.details["statistics"] = (
        "exact variance, one dense pass"
        if inp.method.statistics == "exact"
        else "FLAP's running fluctuation, one dense pass"
    )
    return plan


apply = apply_structured_plan
