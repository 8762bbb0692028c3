"""HARP + FLAP-MLP: the authors' released variant: HARP's attention pruning, then FLAP MLP-channel
pruning with bias compensation at a small ratio (`method.mlp_ratio`, default the model's
`flap_mlp_ratio`), read as the fraction of MLP channels removed, ranked globally by standardised
WIFV measured on the HARP-pruned model.
"""
from __future__ import annotations

from torch import nn

from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from harp.pruning.baselines.common import channel_scores, prune_by_scores
from harp.pruning.baselines.flap import wifv
from harp.pruning.baselines.structures import apply_structure, collect_stats
from harp.pruning.harp import apply_harp
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import Plan, describe, register_applier
from harp.pruning.registry import PruneInputs, register_planner


def mlp_weights(model: nn.Module) -> int:
    return sum(getattr(layer.mlp, p).weight.numel() for layer in decoder_layers(model)
               for p in ("gate_proj", "up_proj", "down_proj"))


@register_planner("harp_flap")
def plan_harp_flap(inp: PruneInputs) -> Plan:
    if inp.alphas is None:
        raise HarpError("harp_flap needs HARP's alphas: run the search stage first.")
    m, model = inp.cfg.method, inp.model
    ratio = m.mlp_ratio if m.mlp_ratio is not None else inp.cfg.model.flap_mlp_ratio
    if not 0.0 <= ratio < 1.0:
        raise HarpError(f"The MLP-channel ratio of harp_flap is {ratio}; it must lie in [0, 1).")
    before = decoder_linear_params(model)
    apply_harp(model, inp.alphas)
    stats = collect_stats(model, inp.calibration, int(m.options.get("batch_size", 8)))
    scores = channel_scores(wifv, standardised=True)(model, stats, ("mlp",))
    result = prune_by_scores(model, scores, round(ratio * mlp_weights(model)), standardise=False,
                             stats_for_compensation=stats, strict=False)
    details = result["details"] | {"mlp_ratio": ratio, "layer_position": m.layer_position, "rescale": m.rescale}
    layers = sorted(set(inp.alphas) | {int(k) for k in details["removed_channels"]})
    return describe("harp_flap", inp.cfg.model.source, model, before, layers, alphas=inp.alphas,
                    details=details, tensors=result["tensors"])


@register_applier("harp_flap")
def apply_harp_flap(model: nn.Module, plan: Plan) -> None:
    apply_harp(model, plan.alphas)
    apply_structure(model, plan.details, plan.tensors)
