"""Structured baselines: exact units removed, matched budgets, physical removal that still runs
(forward and cached generation) on all four families, plan round trips, FLAP compensation."""

from __future__ import annotations

import copy
import dataclasses
import functools

import pytest
import torch

from harp import methods
from harp.config import BudgetConfig
from harp.errors import HarpError
from harp.methods import MethodConfig
from harp.models.adapters import decoder_layers
from harp.pruning.baselines import amp, attn_drop, flap, mag_sp, wanda_sp
from harp.pruning.baselines.common import channel_scores
from harp.pruning.baselines.ranking import Unit, select, spread
from harp.pruning.baselines.structures import RemovedAttention, collect_stats, prune_attention
from harp.pruning.budget import target_removed
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import PruneInputs, apply_plan, load_plan, save_plan
from tests.helpers import compose, random_model

METHODS = ("mag_sp", "wanda_sp", "flap", "amp", "attn_drop", "harp_flap")
# HARP removes q/k of layer 5 and all of layer 4: 3 of the 4 key/value groups' worth that the budget allows
HARP_ALPHAS = {5: 0.5, 4: 0.0}
BUDGET = BudgetConfig()  # the paper's: L/N of the attention weights, L = 2 of 6 layers -> 4 of the 12 groups
GROUP, CHANNEL = 6144, 192  # weights of one key/value group (with its 2 query heads) and of one MLP channel


def calibration(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 128, (8, 32), generator=torch.Generator().manual_seed(seed))


@functools.cache
def configured(method: str) -> MethodConfig:
    """The method's settings as conf/method/<method>.yaml gives them."""
    return compose(f"method={method}").method


def inputs(model, method: str, budget=BUDGET, reference=None, alphas=HARP_ALPHAS, **settings) -> PruneInputs:
    """What the prune stage would feed `method`: its configured settings (with `settings` changed) and the budget."""
    spec = dataclasses.replace(configured(method), **settings)
    target = target_removed(model, budget, 2, reference) if methods.get(method).budgeted else None
    return PruneInputs(
        model=model, source="random", method=spec, calibration=calibration(), alphas=dict(alphas), target_removed=target
    )


def make_plan(method: str, inp: PruneInputs):
    return methods.get(method).planner(inp)


def plan_method(method: str, family: str = "llama", model=None, **kwargs):
    model = model if model is not None else random_model(family)
    return model, make_plan(method, inputs(model, method, **kwargs))


def removed_groups(plan) -> set[tuple[int, int]]:
    return {(int(layer), g) for layer, gone in plan.details["removed_groups"].items() for g in gone}


@pytest.mark.parametrize("method", METHODS)
def test_plan_runs_matches_budget_and_round_trips(family, method, tmp_path):
    pruned, plan = plan_method(method, family)
    ids = calibration(1)[:2, :12]
    with torch.no_grad():
        logits = pruned(ids).logits
        assert torch.isfinite(logits).all()
        cached = pruned.generate(ids, max_new_tokens=6, do_sample=False, use_cache=True)
        uncached = pruned.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
    assert plan.params_after == decoder_linear_params(pruned) < plan.params_before
    assert plan.params_before - plan.params_after == 4 * GROUP  # every method meets the paper's budget exactly here
    save_plan(plan, tmp_path)
    fresh = apply_plan(random_model(family), load_plan(tmp_path))
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, logits)


def test_flap_removes_the_lowest_standardised_squared_wifv_groups_across_layers():
    dense = random_model("llama")
    stats = collect_stats(dense, calibration())
    scores = channel_scores(flap.wifv, standardised=True, attention_power=2)(dense, stats, ("attention",))
    ranked = sorted((s.item(), layer, g) for (_, layer), v in scores.items() for g, s in enumerate(v))
    pruned, plan = plan_method("flap", model=copy.deepcopy(dense))
    assert removed_groups(plan) == {(layer, g) for _, layer, g in ranked[:4]}
    assert plan.details["budget"]["allocation"] == "global"
    for layer, gone in plan.details["removed_groups"].items():  # what remains: dense weights of kept groups
        keep = [g for g in range(2) if g not in gone]
        if keep:
            rows = torch.cat([torch.arange(g * 32, (g + 1) * 32) for g in keep])
            after, before = decoder_layers(pruned)[int(layer)].self_attn, decoder_layers(dense)[int(layer)].self_attn
            assert torch.equal(after.q_proj.weight, before.q_proj.weight[rows])
            assert torch.equal(after.o_proj.weight[:, : 32 * len(keep)], before.o_proj.weight[:, rows])


@pytest.mark.parametrize("method, rule", [("mag_sp", mag_sp.magnitude), ("wanda_sp", wanda_sp.wanda)])
def test_uniform_allocation_removes_the_same_count_in_every_layer_plus_a_spread_remainder(method, rule):
    """4 groups over 6 layers: none everywhere, and one more in 4 evenly spaced layers (0, 2, 3, 5), each
    the layer's lowest-scored group."""
    dense = random_model("llama")
    scores = channel_scores(rule)(dense, collect_stats(dense, calibration()), ("attention",))
    _, plan = plan_method(method, model=copy.deepcopy(dense))
    assert plan.details["budget"]["per_layer"] == {"attention": {"0": 1, "1": 0, "2": 1, "3": 1, "4": 0, "5": 1}}
    assert removed_groups(plan) == {(layer, int(scores[("attention", layer)].argmin())) for layer in (0, 2, 3, 5)}
    assert spread(12, [0, 1, 2, 3, 4, 5]) == dict.fromkeys(range(6), 2) and sum(spread(7, [3, 4, 5]).values()) == 7


def test_amp_is_uniform_over_heads_and_neurons_and_attention_drop_follows_its_scores():
    dense = random_model("llama")
    stats = collect_stats(dense, calibration(), head_contrib=True, block_similarity=True)
    _, plan = plan_method("amp", model=copy.deepcopy(dense), budget=BudgetConfig("ratio", 0.4))
    # p = 0.4 of every layer: round(0.4 * 2) = 1 group per layer, and channels fill the rest (192 = 32 per layer)
    per_layer = plan.details["budget"]["per_layer"]
    assert per_layer == {
        "attention": dict.fromkeys(map(str, range(6)), 1),
        "mlp": dict.fromkeys(map(str, range(6)), 32),
    }
    heads = amp.amp_scores(dense, stats, ("attention", "mlp"))
    assert removed_groups(plan) == {(layer, int(heads[("attention", layer)].argmin())) for layer in range(6)}
    for layer, gone in plan.details["removed_channels"].items():
        neurons = heads[("mlp", int(layer))]
        assert set(gone) == set(neurons.argsort()[:32].tolist()) and int(neurons.argmax()) not in gone
    blocks = attn_drop.block_scores(dense, stats, ("block",))
    least = sorted(blocks, key=lambda k: blocks[k].item())[:2]  # the budget is 2 whole blocks
    _, plan = plan_method("attn_drop", model=copy.deepcopy(dense))
    assert {str(layer) for _, layer in least} == set(plan.details["removed_groups"])
    assert all(gone == [0, 1] for gone in plan.details["removed_groups"].values())


def test_harp_flap_fills_the_gap_to_the_budget_with_the_lowest_wifv_channels_of_the_harp_model():
    harp_model = random_model("llama")
    make_plan("harp", inputs(harp_model, "harp"))
    stats = collect_stats(harp_model, calibration())
    scores = channel_scores(flap.wifv, standardised=True)(harp_model, stats, ("mlp",))
    ranked = sorted(
        (s.item(), layer, c) for (_, layer), v in scores.items() for c, s in enumerate(v) if c != int(v.argmax())
    )
    pruned, plan = plan_method("harp_flap")
    removed = {(int(layer), c) for layer, gone in plan.details["removed_channels"].items() for c in gone}
    assert removed == {(layer, c) for _, layer, c in ranked[: GROUP // CHANNEL]}  # the gap: one group's worth
    assert plan.alphas == HARP_ALPHAS and isinstance(decoder_layers(pruned)[4].self_attn, RemovedAttention)
    assert set(plan.tensors) == {f"layers.{layer}.mlp.down_proj.bias" for layer in plan.details["removed_channels"]}
    _, fixed = plan_method("harp_flap", mlp_ratio=0.05)  # the release's constants: a fixed share of the MLP weights
    assert sum(map(len, fixed.details["removed_channels"].values())) == round(0.05 * 6 * 96)
    _, over = plan_method("harp_flap", alphas={5: 0.0, 4: 0.0, 3: 0.5})  # HARP alone exceeds the budget
    assert over.details["removed_channels"] == {} and "no MLP channel" in over.details["budget"]["note"]


def test_flap_compensation_lowers_layer_output_error():
    dense = random_model("llama")
    _, plan = plan_method("flap", model=copy.deepcopy(dense))
    checked = 0
    for layer, gone in plan.details["removed_groups"].items():
        keep = [g for g in range(2) if g not in gone]
        attn = decoder_layers(dense)[int(layer)].self_attn
        captured = []
        handle = attn.o_proj.register_forward_pre_hook(lambda m, args, captured=captured: captured.append(args[0]))
        with torch.no_grad():
            dense(calibration(), use_cache=False)
        handle.remove()
        x = torch.cat(captured).reshape(-1, attn.o_proj.in_features)
        errors = {}
        for name, bias in (("with", plan.tensors[f"layers.{layer}.self_attn.o_proj.bias"]), ("without", None)):
            layer_copy = copy.deepcopy(decoder_layers(dense)[int(layer)])
            prune_attention(layer_copy, keep, bias)
            cols = torch.cat([torch.arange(g * 32, (g + 1) * 32) for g in keep]) if keep else torch.arange(0)
            with torch.no_grad():
                out = layer_copy.self_attn.o_proj(x[:, cols]) if keep else layer_copy.self_attn(x[:, :64])[0]
                errors[name] = (attn.o_proj(x) - out).pow(2).mean().item()
        assert errors["with"] < errors["without"]
        checked += 1
    assert checked


def test_gqa_group_removal_keeps_shapes_consistent():
    model = random_model("llama", num_attention_heads=8, num_key_value_heads=2)  # 4 query heads per group
    layer = decoder_layers(model)[2]
    prune_attention(layer, [1])
    attn = layer.self_attn
    assert (attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features) == (4 * 8, 8, 8)
    assert attn.o_proj.in_features == 4 * 8 and attn.num_key_value_groups == 4
    prune_attention(decoder_layers(model)[3], [])
    assert isinstance(decoder_layers(model)[3].self_attn, RemovedAttention)
    with torch.no_grad():
        out = model.generate(calibration()[:1, :8], max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 12)


def test_every_group_can_go_layer_zero_included_and_ratio_budget_is_matched():
    every = BudgetConfig("ratio", 12 * GROUP / 184320)  # every group of every layer
    model, plan = plan_method("wanda_sp", budget=every)
    assert all(plan.details["removed_groups"][str(i)] == [0, 1] for i in range(6))
    prompt = torch.randint(0, 128, (1, 5), generator=torch.Generator().manual_seed(5))
    assert torch.equal(
        model.generate(prompt, max_new_tokens=8, do_sample=False),
        model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False),
    )
    _, plan = plan_method("flap", "qwen2", target="attention+mlp", budget=BudgetConfig("ratio", 0.123))
    assert abs(plan.pruning_ratio - 0.123) <= 0.01 * 0.123
    assert plan.details["removed_channels"] and plan.details["standardised"]


def test_coarse_budget_is_refused_or_recorded():
    with pytest.raises(HarpError, match="within 1%"):
        select([Unit("attention", 1, 0, 100), Unit("attention", 2, 0, 100)], target=150)
    assert len(select([Unit("block", 1, 0, 100), Unit("block", 2, 0, 100)], target=160, strict=False)) == 2
    with pytest.raises(HarpError, match="needs HARP's plan"):
        inputs(random_model("llama"), "mag_sp", budget=BudgetConfig("match_harp"))
    reference = make_plan("harp", inputs(random_model("llama"), "harp"))
    _, plan = plan_method("mag_sp", budget=BudgetConfig("match_harp"), reference=reference, allocation="global")
    assert plan.params_before - plan.params_after == reference.params_before - reference.params_after


def test_plans_that_do_not_fit_are_refused():
    from harp.pruning.baselines.structures import apply_structure

    for details in (
        {"removed_groups": {"2": [2]}},
        {"removed_channels": {"1": [5, 5]}},
        {"removed_channels": {"1": list(range(96))}},
    ):
        with pytest.raises(HarpError, match="plan"):
            apply_structure(random_model("llama"), details, {})


@pytest.mark.parametrize("method", METHODS)
def test_method_configs_validate_and_name_a_registered_method(method):
    cfg = compose(f"method={method}", "model=tiny")
    spec = methods.get(method)
    assert cfg.method.name == method and callable(spec.planner) and callable(spec.applier) and spec.budgeted
    assert ("calibration" in spec.inputs("attention_fraction")) == (method != "mag_sp")
    assert "reference" in spec.inputs("match_harp") and "reference" not in spec.inputs("attention_fraction")


def test_on_the_tiny_model_every_baseline_meets_the_paper_budget(tiny_model_dir):
    """The embedded model's plans: within 1% of L/N of its attention weights; uniform allocations remove the
    same count in every layer, plus one in the recorded remainder layers."""
    from harp.models.loading import load_model

    for method in METHODS:
        model, _ = load_model(str(tiny_model_dir), device="cpu")
        inp = inputs(model, method, alphas={7: 0.5, 6: 0.0, 5: 0.3})
        inp.target_removed = target_removed(model, BUDGET, 3)  # L = 3 of the 8 layers
        plan = make_plan(method, inp)
        removed = plan.params_before - plan.params_after
        assert abs(removed - inp.target_removed) <= 0.01 * inp.target_removed, method
        for per_layer in plan.details["budget"].get("per_layer", {}).values():
            assert max(per_layer.values()) - min(per_layer.values()) <= 1, (method, per_layer)
        if getattr(configured(method), "allocation", None) == "uniform" and method != "amp":
            counts = plan.details["budget"]["per_layer"]["attention"]
            assert {k: len(v) for k, v in plan.details["removed_groups"].items()} == {
                k: n for k, n in counts.items() if n
            }
