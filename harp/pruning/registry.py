"""Method registry: name -> planner that prunes a loaded model and returns its `Plan`.

A planner receives what the method's config says it `needs` (calibration ids, the searched
alphas, HARP's plan as the budget reference), so the prune stage has no per-method if-chains.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from harp.config import Config
from harp.errors import HarpError
from harp.pruning.harp import apply_harp
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import Plan, describe


@dataclass
class PruneInputs:
    model: nn.Module
    tokenizer: object
    cfg: Config
    calibration: torch.Tensor | None = None
    alphas: dict[int, float] | None = None  # HARP's searched alphas
    reference: Plan | None = None  # HARP's plan: the parameter budget baselines match


Planner = Callable[[PruneInputs], Plan]
PLANNERS: dict[str, Planner] = {}


def register_planner(name: str):
    def wrap(fn: Planner) -> Planner:
        PLANNERS[name] = fn
        return fn
    return wrap


def get_planner(name: str) -> Planner:
    if name not in PLANNERS:
        raise HarpError(f"Unknown pruning method {name!r}; known: {', '.join(sorted(PLANNERS))}.")
    return PLANNERS[name]


@register_planner("dense")
def plan_dense(inp: PruneInputs) -> Plan:
    n = decoder_linear_params(inp.model)
    return describe("dense", inp.cfg.model.source, inp.model, n, layers=[])


@register_planner("harp")
def plan_harp(inp: PruneInputs) -> Plan:
    if inp.alphas is None:
        raise HarpError("HARP needs alphas: run the search stage first.")
    before = decoder_linear_params(inp.model)
    apply_harp(inp.model, inp.alphas)
    m = inp.cfg.method
    return describe("harp", inp.cfg.model.source, inp.model, before, layers=list(inp.alphas), alphas=inp.alphas,
                    details={"layer_position": m.layer_position, "rescale": m.rescale})
