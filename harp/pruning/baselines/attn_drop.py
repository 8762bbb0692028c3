"""Attention-layer drop ("What Matters in Transformers? Not All Attention is Needed").

A whole attention block is redundant when its residual output is nearly its input: importance is
1 - mean cosine(X, X + branch(X)) over calibration tokens; the least important blocks are removed,
at any depth. Whole blocks are coarse, so
the budget is met as closely as whole blocks allow and the gap is recorded in `details["budget"]`.
"""

from __future__ import annotations

import torch
from torch import nn

from harp.models.adapters import decoder_layers
from harp.pruning.baselines.common import Scores, apply_structured_plan, has_dense_attention, plan_structured
from harp.pruning.baselines.structures import LayerStats
from harp.pruning.plan import Plan, PruneInputs


def block_scores(model: nn.Module, stats: list[LayerStats], kinds: tuple[str, ...]) -> Scores:
    return {
        ("block", i): torch.tensor([1.0 - stats[i].cosine / stats[i].tokens], dtype=torch.float64)
        for i, layer in enumerate(decoder_layers(model))
        if has_dense_attention(layer)
    }


def make_plan(inp: PruneInputs) -> Plan:
    return plan_structured(inp, "attn_drop", block_scores, kinds=("block",), strict=False, block_similarity=True)


apply = apply_structured_plan
