"""wanda_qk: Wanda (unstructured, per output row) on the query/key weights, the baseline of `attn_mask`.

Weight (i, j) scores |W_ij| * ||X_j||_2, X the calibration hidden states entering the attention (the
very inputs `attn_mask` optimises on, the same sequences), and each row keeps its top (1 - s), as
Wanda's default comparison group does. Binarisation, budget and plan are `attn_mask`'s
(`harp.pruning.qk_masks`), so the two differ only in the score: the linear objective ||XW|| against
the softmax attention matrix.
"""

from __future__ import annotations

from torch import nn

from harp.config import MaskConfig
from harp.pruning import qk_masks
from harp.pruning.plan import Plan, PruneInputs
from harp.pruning.qk_masks import AttentionInputs, Scores


def wanda_scores(model: nn.Module, inputs: dict[int, AttentionInputs], settings: MaskConfig) -> Scores:
    score = {}
    for layer, x in inputs.items():
        attn = qk_masks.attention_of(model, layer)
        norm = x.hidden.reshape(-1, x.hidden.shape[-1]).norm(dim=0)  # ||X_j|| over every calibration token
        for proj in qk_masks.PROJECTIONS:
            weight = getattr(attn, proj).weight.detach().float()
            score[(layer, proj)] = weight.abs() * norm.to(weight.device)[None, :]
    return Scores(score, {}, {})


def make_plan(inp: PruneInputs) -> Plan:
    return qk_masks.plan_masks(inp, "wanda_qk", wanda_scores)


apply = qk_masks.apply_masks
