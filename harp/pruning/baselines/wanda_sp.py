"""Wanda-sp: |W| times the input activation norm, summed per structure (the structured Wanda).

Channel j of o_proj / down_proj scores sum_i |W_ij| * ||X_j||_2 over the calibration tokens (the
calibration stage's data: C4 for real models as Wanda uses, the embedded corpus for the tiny one).
"""
from __future__ import annotations

import torch

from harp.pruning.baselines.common import apply_structured_plan, channel_scores, plan_structured
from harp.pruning.baselines.structures import ChannelStats
from harp.pruning.plan import register_applier
from harp.pruning.registry import PruneInputs, register_planner


def wanda(weight: torch.Tensor, stats: ChannelStats) -> torch.Tensor:
    return weight.double().abs().sum(0).cpu() * stats.norm


@register_planner("wanda_sp")
def plan_wanda_sp(inp: PruneInputs):
    return plan_structured(inp, "wanda_sp", channel_scores(wanda))


register_applier("wanda_sp")(apply_structured_plan)
