"""AMP (Attention heads and MLP Pruning): importance by projecting calibration inputs onto weights.

A head's importance is the mean L1 norm of its contribution through o_proj (W_o[:, head] @ x_head),
summed over the query heads of a key/value group; an MLP neuron's is the mean |activation| at the
down_proj input; both measured once on the dense model. As in its paper and code
(c2d-usp/Efficient-LLMs-with-AMP), every layer loses the same number of heads and of neurons
(`method.allocation=uniform`), counted by its rule (`ranking.amp_counts`: round(p x heads), at most all but
one, and the heads' rounding shortfall added as that many neurons); `global` ranks them together after
standardisation. Its
recovery fine-tuning (LoRA) is not run: this is AMP without it, and the tables say so.
"""

from __future__ import annotations

from torch import nn

from harp.models.adapters import decoder_layers
from harp.pruning.baselines.common import Scores, apply_structured_plan, has_dense_attention, per_group, plan_structured
from harp.pruning.baselines.ranking import amp_counts
from harp.pruning.baselines.structures import LayerStats
from harp.pruning.plan import Plan, PruneInputs


def amp_scores(model: nn.Module, stats: list[LayerStats], kinds: tuple[str, ...]) -> Scores:
    out: Scores = {}
    for i, layer in enumerate(decoder_layers(model)):
        if "attention" in kinds and has_dense_attention(layer):
            out[("attention", i)] = per_group(stats[i].head_l1 / stats[i].attn_in.count, layer.self_attn)
        if "mlp" in kinds:
            out[("mlp", i)] = stats[i].mlp_in.mean_abs
    return out


def make_plan(inp: PruneInputs) -> Plan:
    return plan_structured(inp, "amp", amp_scores, uniform_rule=amp_counts, head_contrib=True)


apply = apply_structured_plan
