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
from harp.pruning.plan import Plan, PruneInputs, build_plan


def mlp_weights(model: nn.Module) -> int:
    return sum(
        getattr(layer.mlp, p).weight.numel()
        for layer in decoder_layers(model)
        for p in ("gate_proj", "up_proj", "down_proj")
    )


def make_plan(inp: PruneInputs) -> Plan:
    if inp.alphas is None:
        raise HarpError("harp_flap needs HARP's alphas: run the search stage first.")
    m, model = inp.method, inp.model
    ratio = m.mlp_ratio
    if ratio is None or not 0.0 <= ratio < 1.0:
        raise HarpError(f"The MLP-channel ratio of harp_flap is {ratio}; it must lie in [0, 1).")
    before = decoder_linear_params(model)
    apply_harp(model, inp.alphas)
    stats = collect_stats(model, inp.calibration, m.batch_size)
    scores = channel_scores(wifv, standardised=True)(model, stats, ("mlp",))
    result = prune_by_scores(
        model, scores, round(ratio * mlp_weights(model)), standardise=False, stats_for_compensation=stats, strict=False
    )
    details = result["details"] | {"mlp_ratio": ratio, "layer_position": m.layer_position, "rescale": m.rescale}
    layers = sorted(set(inp.alphas) | {int(k) for k in details["removed_channels"]})
    return build_plan(
        "harp_flap", inp.source, model, before, layers, alphas=inp.alphas, details=details, tensors=result["tensors"]
    )


def apply(model: nn.Module, plan: Plan) -> None:
    apply_harp(model, plan.alphas)
    apply_structure(model, plan.details, plan.tensors)
