"""The one planner flow every baseline shares: statistics -> scores -> counts -> selection -> removal.

A method module supplies only its scoring rule (`Scores` per (kind, layer)) and, where its reference
counts differently, its per-layer count rule; this module turns them into a plan whose `details` list the
removed groups/channels per layer, the count rule and the budget it met or missed, and whose `tensors`
hold FLAP's compensation biases, and applies it with `apply_structure`, the same code that re-applies plans.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from harp.pruning.baselines.ranking import (
    TOLERANCE,
    Unit,
    budget_counts,
    check_budget,
    floor_counts,
    rank,
    reference_global,
    select,
    select_per_layer,
    standardised_within,
)
from harp.pruning.baselines.sequential import layer_by_layer
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

    def scores(model: nn.Module, stats: list[LayerStats], kinds: tuple[str, ...], only: int | None = None) -> Scores:
        """Scores of every layer, or of layer `only` (whose statistics alone were gathered)."""
        norm = standardised_within if standardised else (lambda s: s)
        out: Scores = {}
        for i, layer in enumerate(decoder_layers(model)):
            if only is not None and i != only:
                continue
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


def unit_sizes(model: nn.Module, kinds: tuple[str, ...]) -> dict[tuple[str, int], int]:
    """Units of each pruned kind per layer: key/value groups of dense attention blocks, MLP channels."""
    sizes = {}
    for i, layer in enumerate(decoder_layers(model)):
        if "attention" in kinds and has_dense_attention(layer):
            sizes[("attention", i)] = num_groups(layer.self_attn)
        if "mlp" in kinds:
            sizes[("mlp", i)] = layer.mlp.down_proj.in_features
    return sizes


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
            # only a whole block asks its (still dense) attention for the group count: a layer pruned layer by
            # layer may already have lost every group
            block = u.kind == "block"
            groups.setdefault(u.layer, []).extend(range(num_groups(layers[u.layer].self_attn)) if block else [u.index])
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


UNIFORM_HINT = (
    "with the same count in every layer; use method.allocation=global, finer structures "
    "(method.target=attention+mlp) or method.counts=reference"
)


def per_layer_counts(
    sizes: dict[tuple[str, int], int],
    costs: dict[tuple[str, int], int],
    target: int,
    counts: str,
    uniform_rule: Callable,
) -> dict[tuple[str, int], int]:
    """The count of each kind in each layer under `method.allocation=uniform`."""
    return (uniform_rule if counts == "reference" else budget_counts)(sizes, costs, target)


def choose(
    scores: Scores,
    costs: dict[tuple[str, int], int],
    target: int,
    *,
    standardise: bool,
    allocation: str,
    counts: str,
    uniform_rule: Callable = floor_counts,
    strict: bool = True,
) -> tuple[list[Unit], dict | None]:
    """The units to remove (and the per-layer counts under a uniform allocation), see `ranking`."""
    if allocation == "uniform":
        per_layer = per_layer_counts({k: s.numel() for k, s in scores.items()}, costs, target, counts, uniform_rule)
        chosen = select_per_layer(scores, costs, per_layer)
        if counts == "budget":
            check_budget(chosen, target, UNIFORM_HINT)
        return chosen, per_layer
    if counts == "reference":
        return reference_global(scores, costs, target, standardise), None
    return select(rank(scores, costs, standardise), target, strict=strict), None


def budget_record(
    chosen: list[Unit], target: int, allocation: str, counts: str, rule: str, per_layer: dict | None = None
) -> dict:
    """What a plan's `details["budget"]` says: the target, what was removed, how it was counted and the gap."""
    removed = sum(u.cost for u in chosen)
    record = {
        "target_removed": target,
        "removed": removed,
        "gap": (removed - target) / target if target else 0.0,
        "units": {k: sum(u.kind == k for u in chosen) for k in ("attention", "block", "mlp")},
        "allocation": allocation,
        "counts": counts,
        "count_rule": rule,
    }
    if per_layer:
        grouped: dict[str, dict[str, int]] = {}
        for (kind, layer), k in sorted(per_layer.items()):
            grouped.setdefault(kind, {})[str(layer)] = k
        record["per_layer"] = grouped
    if counts == "reference" and abs(record["gap"]) > TOLERANCE:
        record["note"] = (
            f"the reference's count rule removes {removed:,} weights, {removed / max(target, 1):.1%} of the budget; "
            "method.counts=budget fills it within 1%"
        )
    return record


def rule_name(allocation: str, counts: str, uniform_rule: Callable, kinds: int) -> str:
    """The `ranking` function that counted the units, for the plan."""
    if counts == "budget":
        return "budget_counts" if allocation == "uniform" else "select"
    if allocation == "uniform":
        return uniform_rule.__name__
    return "flap_threshold" if kinds > 1 else "floor_share"


def prune_by_scores(
    model: nn.Module,
    scores: Scores,
    target: int,
    *,
    standardise: bool,
    allocation: str = "global",
    counts: str = "budget",
    uniform_rule: Callable = floor_counts,
    stats_for_compensation: list[LayerStats] | None = None,
    strict: bool = True,
) -> dict:
    """Select units for a budget of `target` weights (`allocation`, `counts`: see `ranking`), remove them in
    place; returns `details` (what was removed, how it was counted) and `tensors` for the plan."""
    costs = unit_costs(model)
    chosen, per_layer = choose(
        scores,
        costs,
        target,
        standardise=standardise,
        allocation=allocation,
        counts=counts,
        uniform_rule=uniform_rule,
        strict=strict,
    )
    details, tensors = removal(model, chosen, stats_for_compensation)
    apply_structure(model, details, tensors)
    rule = rule_name(allocation, counts, uniform_rule, len({kind for kind, _ in scores}))
    details["budget"] = budget_record(chosen, target, allocation, counts, rule, per_layer)
    return {"details": details, "tensors": tensors}


def prune_sequentially(
    inp: PruneInputs, scorer: Callable, kinds: tuple[str, ...], target: int, uniform_rule: Callable
) -> dict:
    """Uniform allocation with each layer scored on the layers below it as already pruned (`sequential`):
    the per-layer counts are known before any score, so each layer is chosen and pruned in turn."""
    model, m = inp.model, inp.method
    costs = unit_costs(model)
    per_layer = per_layer_counts(unit_sizes(model, kinds), costs, target, m.counts, uniform_rule)
    chosen: list[Unit] = []

    def prune_layer(i: int, stats: list[LayerStats]) -> None:
        units = select_per_layer(scorer(model, stats, kinds, only=i), costs, per_layer)
        apply_structure(model, removal(model, units, None)[0], {})
        chosen.extend(units)

    layer_by_layer(model, inp.calibration, m.batch_size, prune_layer)
    if m.counts == "budget":
        check_budget(chosen, target, UNIFORM_HINT)
    details, tensors = removal(model, chosen, None)
    rule = rule_name("uniform", m.counts, uniform_rule, len(kinds))
    details["budget"] = budget_record(chosen, target, "uniform", m.counts, rule, per_layer)
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
    sequential: bool = False,
    uniform_rule: Callable = floor_counts,
    **stat_options,
) -> Plan:
    """Plan a baseline: score (on calibration data when `calibrated`), count, select, remove; see the
    package docstring.

    Unlike structures only compete after standardisation, so by default (`standardise=None`) unit
    scores are standardised per layer and kind exactly when attention and MLP units are mixed.
    `sequential`: statistics gathered layer by layer on the pruned layers below (Wanda-sp in FLAP's code);
    it needs the same count in every layer. `uniform_rule`: the reference's per-layer count rule.
    Whole attention blocks (`kinds=("block",)`) have no reference count: they always meet the budget
    as closely as whole blocks allow.
    """
    model, m = inp.model, inp.method
    kinds = kinds or tuple(m.target.split("+"))
    blocks = kinds == ("block",)
    allocation, counts = ("global", "budget") if blocks else (m.allocation, m.counts)
    before = decoder_linear_params(model)
    if inp.target_removed is None:
        raise HarpError(f"{name} removes a parameter budget, and none was given.")
    target = inp.target_removed
    if sequential and allocation != "uniform":
        raise HarpError(
            f"{name} gathers its statistics layer by layer on the pruned layers below (method.statistics=reference), "
            "which needs the same count in every layer (method.allocation=uniform); set method.statistics=exact "
            "for one dense pass with method.allocation=global."
        )
    if sequential:
        result = prune_sequentially(inp, scorer, kinds, target, uniform_rule)
    else:
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
            allocation=allocation,
            counts=counts,
            uniform_rule=uniform_rule,
            stats_for_compensation=stats if compensate else None,
            strict=strict,
        )
    details = result["details"] | {
        "target": "attention-blocks" if blocks else m.target,
        "standardised": bool(standardise),
        "compensated": compensate,
        "statistics": (
            "layer by layer, on the pruned layers below"
            if sequential
            else ("one dense pass" if calibrated else "none (weights only)")
        ),
    }
    layers = sorted({int(k) for k in details["removed_groups"]} | {int(k) for k in details["removed_channels"]})
    return build_plan(name, inp.source, model, before, layers, details=details, tensors=result["tensors"])


def apply_structured_plan(model: nn.Module, plan: Plan) -> None:
    """Applier shared by the structured baselines: remove what `plan.details` leaves out."""
    apply_structure(model, plan.details, plan.tensors)
