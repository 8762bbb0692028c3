"""Wanda-sp: |W| times the input activation norm, summed per structure (the structured Wanda).

Channel j of o_proj / down_proj scores sum_i |W_ij| * ||X_j||_2 over the calibration tokens (the
calibration stage's data: C4 for real models as Wanda uses, the embedded corpus for the tiny one). As FLAP's
code (prune_wanda_sp) gathers them, each layer's norms are measured on the layers below it already pruned
(`method.statistics=reference`, the same count in every layer); `exact` measures all of them on the dense
model in one pass.
"""

from __future__ import annotations

import torch

from harp.pruning.baselines.common import apply_structured_plan, channel_scores, plan_structured
from harp.pruning.baselines.structures import ChannelStats
from harp.pruning.plan import Plan, PruneInputs


def wanda(weight: torch.Tensor, stats: ChannelStats) -> torch.Tensor:
    return weight.double().abs().sum(0).cpu() * stats.norm


def make_plan(inp: PruneInputs) -> Plan:
    sequential = inp.method.statistics == "reference"
    return plan_structured(inp, "wanda_sp", channel_scores(wanda), sequential=sequential)


apply = apply_structured_plan
