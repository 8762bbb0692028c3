"""HARP + FLAP-MLP: the authors' released variant and the paper's HARP row. HARP's attention pruning, then
FLAP MLP-channel pruning with bias compensation, ranked globally by standardised WIFV measured on the
HARP-pruned model (as the release does), with FLAP's running fluctuation estimate (`method.statistics`).
The channels fill the budget that HARP leaves: the release's per-model ratios (`model.flap_mlp_ratio`) are
exactly that gap for the published alphas (L/N of the attention weights in all); searched alphas leave
another gap, which is filled instead. `method.mlp_ratio` forces a fixed fraction of the MLP weights (e.g.
the release's constant).
"""

from __future__ import annotations

from torch import nn

from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from harp.pruning.baselines.common import channel_scores, prune_by_scores
from harp.pruning.baselines.flap import fluctuation_rule
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
    """HARP with its alphas, then FLAP MLP channels: the gap between HARP's removal and the budget (the
    paper's HARP row), or a fixed `method.mlp_ratio` of the MLP weights (the release's constants)."""
    if inp.alphas is None:
        raise HarpError("harp_flap needs HARP's alphas: run the search stage first.")
    m, model = inp.method, inp.model
    before = decoder_linear_params(model)
    apply_harp(model, inp.alphas)
    harp_removed = before - decoder_linear_params(model)
    if m.mlp_ratio is not None:
        mlp_target, rule = round(m.mlp_ratio * mlp_weights(model)), f"a fixed {m.mlp_ratio:g} of the MLP weights"
    elif inp.target_removed is None:
        raise HarpError("harp_flap fills a parameter budget with MLP channels, and none was given.")
    else:
        mlp_target, rule = inp.target_removed - harp_removed, "the gap between HARP's removal and the budget"
    details = {
        "layer_position": m.layer_position,
        "rescale": m.rescale,
        "mlp_ratio": m.mlp_ratio,
        "mlp_rule": rule,
        "budget_target": inp.target_removed,
        "harp_removed": harp_removed,
    }
    tensors: dict = {}
    if mlp_target > 0:
        stats = collect_stats(model, inp.calibration, m.batch_size)
        scores = channel_scores(fluctuation_rule(m.statistics), standardised=True)(model, stats, ("mlp",))
        result = prune_by_scores(
            model, scores, mlp_target, standardise=False, stats_for_compensation=stats, strict=False
        )
        details |= result["details"] | {"statistics": m.statistics}
        tensors = result["tensors"]
    else:
        details |= {
            "removed_groups": {},
            "removed_channels": {},
            "budget": {
                "target_removed": inp.target_removed,
                "removed": harp_removed,
                "note": "HARP alone removes at least the budget: no MLP channel was pruned",
            },
        }
    layers = sorted(set(inp.alphas) | {int(k) for k in details["removed_channels"]})
    return build_plan(
        "harp_flap", inp.source, model, before, layers, alphas=inp.alphas, details=details, tensors=tensors
    )


def apply(model: nn.Module, plan: Plan) -> None:
    apply_harp(model, plan.alphas)
    apply_structure(model, plan.details, plan.tensors)
