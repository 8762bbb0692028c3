"""The one planner flow every baseline shares: statistics -> scores -> ranking -> budget -> removal.

A method module supplies only its scoring rule (`Scores` per (kind, layer)); this module turns it
into a plan whose `details` list the removed groups/channels per layer and whose `tensors` hold FLAP's
compensation biases, and applies it with `apply_structure`, the same code that re-applies plans.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from harp.pruning.baselines.ranking import Unit, rank, select, select_uniform, standardised_within
from harp.pruning.baselines.structures import (
    ChannelStats,
    LayerStats,
    apply_structure,
    attention_bias_name,
    collect_stats,
    head_rows,
    mlp_bias_name,
    num_groups,
)
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import Plan, PruneInputs, build_plan

Scores = dict[tuple[str, int], torch.Tensor]  # (kind, layer) -> one score per unit, higher = more important


def has_dense_attention(layer: nn.Module) -> bool:
    return all(hasattr(layer.self_attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj"))


def per_group(values: torch.Tensor, attn: nn.Module, reduce: str = "sum") -> torch.Tensor:
    """Sum (or average) per-channel or per-query-head values over each key/value group."""
    grouped = values.reshape(num_groups(attn), -1)
    return grouped.mean(-1) if reduce == "mean" else grouped.sum(-1)


def channel_scores(
    rule: Callable[[torch.Tensor, ChannelStats], torch.Tensor], standardised: bool = False, attention_power: int = 1
):
    """Scores from a per-input-channel rule on o_proj and down_proj, summed per group for attention.

    `standardised` (FLAP): channel scores are standardised within each layer and module, then
    averaged per group, so every layer and module shares one global scale. `attention_power`: FLAP
    squares its o_proj channel scores before standardising (its code does; its MLP scores are not).
    """

    def scores(model: nn.Module, stats: list[LayerStats], kinds: tuple[str, ...]) -> Scores:
        norm = standardised_within if standardised else (lambda s: s)
        out: Scores = {}
        for i, layer in enumerate(decoder_layers(model)):
            if "attention" in kinds and has_dense_attention(layer):
                attn = layer.self_attn
                channel = norm(rule(attn.o_proj.weight.detach(), stats[i].attn_in) ** attention_power)
                out[("attention", i)] = per_group(channel, attn, "mean" if standardised else "sum")
            if "mlp" in kinds:
                out[("mlp", i)] = norm(rule(layer.mlp.down_proj.weight.detach(), stats[i].mlp_in))
        return out

    return scores


def unit_costs(model: nn.Module) -> dict[tuple[str, int], int]:
    """Exact decoder linear weights freed by one unit of each (kind, layer)."""
    costs = {}
    for i, layer in enumerate(decoder_layers(model)):
        if has_dense_attention(layer):
            attn = layer.self_attn
            block = sum(getattr(attn, p).weight.numel() for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
            costs[("block", i)] = block
            costs[("attention", i)] = block // num_groups(attn)
        mlp = layer.mlp
        costs[("mlp", i)] = (
            sum(getattr(mlp, p).weight.numel() for p in ("gate_proj", "up_proj", "down_proj"))
            // mlp.down_proj.in_features
        )
    return costs


def _compensation(linear: nn.Linear, removed_cols: torch.Tensor, stats: ChannelStats) -> torch.Tensor:
    """FLAP: fold the removed inputs' calibration mean into the output bias, W[:, removed] @ mean."""
    weight = linear.weight.detach()
    mean = stats.mean[removed_cols].to(weight.device, torch.float64)
    bias = weight[:, removed_cols.to(weight.device)].double() @ mean
    if linear.bias is not None:
        bias = bias + linear.bias.detach().double()
    return bias.to(weight.dtype).cpu()


def removal(model: nn.Module, chosen: list[Unit], stats: list[LayerStats] | None) -> tuple[dict, dict]:
    """Plan `details` (removed groups / channels per layer) and `tensors` (compensation biases when
    `stats` given). Removed indices, not kept ones, keep a plan small: MLP ratios are usually low."""
    layers = decoder_layers(model)
    groups: dict[int, list[int]] = {}
    channels: dict[int, list[int]] = {}
    for u in chosen:
        if u.kind == "mlp":
            channels.setdefault(u.layer, []).append(u.index)
        else:
            whole = range(num_groups(layers[u.layer].self_attn))
            groups.setdefault(u.layer, []).extend(whole if u.kind == "block" else [u.index])
    groups, channels = ({k: sorted(v) for k, v in sorted(d.items())} for d in (groups, channels))
    tensors: dict[str, torch.Tensor] = {}
    if stats is not None:
        for i, gone in groups.items():
            attn = layers[i].self_attn
            cols = head_rows(gone, attn.num_key_value_groups, attn.head_dim)
            tensors[attention_bias_name(i)] = _compensation(attn.o_proj, cols, stats[i].attn_in)
        for i, gone in channels.items():
            tensors[mlp_bias_name(i)] = _compensation(layers[i].mlp.down_proj, torch.tensor(gone), stats[i].mlp_in)
    details = {
        "removed_groups": {str(k): v for k, v in groups.items()},
        "removed_channels": {str(k): v for k, v in channels.items()},
    }
    return details, tensors


def prune_by_scores(
    model: nn.Module,
    scores: Scores,
    target: int,
    *,
    standardise: bool,
    allocation: str = "global",
    stats_for_compensation: list[LayerStats] | None = None,
    strict: bool = True,
) -> dict:
    """Select units worth `target` weights (`allocation`: global ranking or the same count per layer), remove
    them in place; returns `details` (what was removed, the exact counts) and `tensors` for the plan."""
    costs = unit_costs(model)
    per_layer = None
    if allocation == "uniform":
        chosen, per_layer = select_uniform(scores, costs, target)
    else:
        chosen = select(rank(scores, costs, standardise), target, strict=strict)
    details, tensors = removal(model, chosen, stats_for_compensation)
    apply_structure(model, details, tensors)
    details["budget"] = {
        "target_removed": target,
        "removed": sum(u.cost for u in chosen),
        "units": {k: sum(u.kind == k for u in chosen) for k in ("attention", "block", "mlp")},
        "allocation": allocation,
    } | ({"per_layer": per_layer} if per_layer else {})
    return {"details": details, "tensors": tensors}


def plan_structured(
    inp: PruneInputs,
    name: str,
    scorer: Callable,
    *,
    standardise: bool | None = None,
    compensate: bool = False,
    kinds: tuple[str, ...] | None = None,
    strict: bool = True,
    calibrated: bool = True,
    **stat_options,
) -> Plan:
    """Plan a baseline: score (on calibration data when `calibrated`), match the budget, remove; see the
    package docstring.

    Unlike structures only compete after standardisation, so by default (`standardise=None`) unit
    scores are standardised per layer and kind exactly when attention and MLP units are mixed.
    """
    model, m = inp.model, inp.method
    kinds = kinds or tuple(m.target.split("+"))
    blocks = kinds == ("block",)
    before = decoder_linear_params(model)
    if inp.target_removed is None:
        raise HarpError(f"{name} removes a parameter budget, and none was given.")
    target = inp.target_removed
    layers = decoder_layers(model)
    stats = (
        collect_stats(model, inp.calibration, m.batch_size, **stat_options)
        if calibrated
        else [LayerStats() for _ in layers]
    )
    scores = scorer(model, stats, kinds)
    if standardise is None:
        standardise = len({kind for kind, _ in scores}) > 1
    result = prune_by_scores(
        model,
        scores,
        target,
        standardise=standardise,
        allocation="global" if blocks else m.allocation,
        stats_for_compensation=stats if compensate else None,
        strict=strict,
    )
    details = result["details"] | {
        "target": "attention-blocks" if blocks else m.target,
        "standardised": standardise,
        "compensated": compensate,
    }
    layers = sorted({int(k) for k in details["removed_groups"]} | {int(k) for k in details["removed_channels"]})
    return build_plan(name, inp.source, model, before, layers, details=details, tensors=result["tensors"])


def apply_structured_plan(model: nn.Module, plan: Plan) -> None:
    """Applier shared by the structured baselines: remove what `plan.details` leaves out."""
    apply_structure(model, plan.details, plan.tensors)
