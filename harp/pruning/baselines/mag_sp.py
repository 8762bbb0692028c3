"""Mag-sp: structured magnitude pruning; a unit's importance is the L2 norm of its output-projection
columns (o_proj, summed over a key/value group's channels; down_proj for an MLP channel), from the weights
alone, no calibration data. FLAP's reference code prunes it uniformly (the same count in every layer).
"""

from __future__ import annotations

import torch

from harp.pruning.baselines.common import apply_structured_plan, channel_scores, plan_structured
from harp.pruning.baselines.structures import ChannelStats
from harp.pruning.plan import Plan, PruneInputs


def magnitude(weight: torch.Tensor, stats: ChannelStats) -> torch.Tensor:
    return weight.double().norm(dim=0).cpu()


def make_plan(inp: PruneInputs) -> Plan:
    return plan_structured(inp, "mag_sp", channel_scores(magnitude), calibrated=False)


apply = apply_structured_plan
