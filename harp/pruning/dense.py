"""The unpruned reference: a plan that removes nothing, so every table has its Dense row."""

from __future__ import annotations

from torch import nn

from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import Plan, PruneInputs, build_plan


def make_plan(inp: PruneInputs) -> Plan:
    return build_plan("dense", inp.source, inp.model, decoder_linear_params(inp.model), layers=[])


def apply(model: nn.Module, plan: Plan) -> None:
    """Nothing to remove."""
