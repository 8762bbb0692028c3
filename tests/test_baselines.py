"""Structured baselines: exact units removed, matched budgets, physical removal that still runs
(forward and cached generation) on all four families, plan round trips, FLAP compensation."""

from __future__ import annotations

import copy

import pytest
import torch

from harp import methods
from harp.config import MethodConfig
from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from harp.pruning.baselines import amp, attn_drop, flap, mag_sp, wanda_sp
from harp.pruning.baselines.common import channel_scores
from harp.pruning.baselines.ranking import Unit, select
from harp.pruning.baselines.structures import RemovedAttention, collect_stats, prune_attention
from harp.pruning.budget import target_removed
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import PruneInputs, apply_plan, load_plan, save_plan
from tests.helpers import compose, random_model

METHODS = ("mag_sp", "wanda_sp", "flap", "amp", "attn_drop", "harp_flap")
REFERENCE_ALPHAS = {5: 0.0, 4: 0.0}  # HARP removes two whole attention blocks: 4 key/value groups


def calibration(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 128, (8, 32), generator=torch.Generator().manual_seed(seed))


def inputs(model, method: str, reference=None, alphas=None, **method_kwargs) -> PruneInputs:
    """What the prune stage would feed `method`: the budget resolved from `reference` or `ratio`."""
    settings = MethodConfig(name=method, **({"mlp_ratio": 0.05} if method == "harp_flap" else {}) | method_kwargs)
    budget = target_removed(model, settings.ratio, reference) if methods.get(method).budgeted else None
    return PruneInputs(
        model=model, source="random", method=settings, calibration=calibration(), alphas=alphas, target_removed=budget
    )


def make_plan(method: str, inp: PruneInputs):
    return methods.get(method).planner(inp)


def harp_reference(family: str, alphas=REFERENCE_ALPHAS, **overrides):
    return make_plan("harp", inputs(random_model(family, **overrides), "harp", alphas=alphas))


def plan_method(method: str, family: str, model=None, reference=None, **method_kwargs):
    model = model if model is not None else random_model(family)
    reference = reference or harp_reference(family)
    if method == "amp":
        method_kwargs.setdefault("target", "attention+mlp")
    if method == "harp_flap":
        method_kwargs.setdefault("target", "mlp")
    plan = make_plan(method, inputs(model, method, reference=reference, alphas=dict(REFERENCE_ALPHAS), **method_kwargs))
    return model, plan, reference


@pytest.mark.parametrize("method", METHODS)
def test_plan_runs_matches_budget_and_round_trips(family, method, tmp_path):
    pruned, plan, reference = plan_method(method, family)
    ids = calibration(1)[:2, :12]
    with torch.no_grad():
        logits = pruned(ids).logits
        assert torch.isfinite(logits).all()
        cached = pruned.generate(ids, max_new_tokens=6, do_sample=False, use_cache=True)
        uncached = pruned.generate(ids, max_new_tokens=6, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)
    assert plan.params_after == decoder_linear_params(pruned) < plan.params_before
    if method != "harp_flap":
        target = reference.params_before - reference.params_after
        assert abs((plan.params_before - plan.params_after) - target) <= 0.01 * target
    save_plan(plan, tmp_path)
    fresh = apply_plan(random_model(family), load_plan(tmp_path))
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, logits)


@pytest.mark.parametrize("module,method", [(mag_sp, "mag_sp"), (wanda_sp, "wanda_sp"), (flap, "flap")])
def test_removes_exactly_the_lowest_scored_groups(module, method):
    dense = random_model("llama")
    stats = collect_stats(dense, calibration())
    rule = {"mag_sp": mag_sp.magnitude, "wanda_sp": wanda_sp.wanda, "flap": flap.wifv}[method]
    scores = channel_scores(rule, standardised=method == "flap")(dense, stats, ("attention",))
    ranked = sorted((s.item(), layer, g) for (_, layer), v in scores.items() for g, s in enumerate(v))
    expected = {(layer, g) for _, layer, g in ranked[:4]}  # the reference removes 4 groups
    pruned, plan, _ = plan_method(method, "llama", model=copy.deepcopy(dense))
    removed = {(int(layer), g) for layer, gone in plan.details["removed_groups"].items() for g in gone}
    assert removed == expected
    for layer, gone in plan.details["removed_groups"].items():  # what remains: dense weights of kept groups
        keep = [g for g in range(2) if g not in gone]
        if keep:
            rows = torch.cat([torch.arange(g * 32, (g + 1) * 32) for g in keep])
            after, before = decoder_layers(pruned)[int(layer)].self_attn, decoder_layers(dense)[int(layer)].self_attn
            assert torch.equal(after.q_proj.weight, before.q_proj.weight[rows])
            assert torch.equal(after.o_proj.weight[:, : 32 * len(keep)], before.o_proj.weight[:, rows])


def test_amp_and_attention_drop_follow_their_scores():
    dense = random_model("llama")
    stats = collect_stats(dense, calibration(), head_contrib=True, block_similarity=True)
    heads = amp.amp_scores(dense, stats, ("attention",))
    _, plan, _ = plan_method("amp", "llama", model=copy.deepcopy(dense), target="attention")
    lowest = sorted((v[g].item(), layer, g) for (_, layer), v in heads.items() for g in range(2))[:4]
    assert {(str(layer), g) for _, layer, g in lowest} == {
        (layer, g) for layer, gone in plan.details["removed_groups"].items() for g in gone
    }
    blocks = attn_drop.block_scores(dense, stats, ("block",))
    least = sorted(blocks, key=lambda k: blocks[k].item())[:2]  # the reference removes 2 whole blocks
    _, plan, _ = plan_method("attn_drop", "llama", model=copy.deepcopy(dense))
    assert {str(layer) for _, layer in least} == set(plan.details["removed_groups"])
    assert all(gone == [0, 1] for gone in plan.details["removed_groups"].values())


def test_harp_flap_prunes_the_lowest_wifv_channels_of_the_harp_model():
    harp_model = random_model("llama")
    make_plan("harp", inputs(harp_model, "harp", alphas=dict(REFERENCE_ALPHAS)))
    stats = collect_stats(harp_model, calibration())
    scores = channel_scores(flap.wifv, standardised=True)(harp_model, stats, ("mlp",))
    ranked = sorted(
        (s.item(), layer, c) for (_, layer), v in scores.items() for c, s in enumerate(v) if c != int(v.argmax())
    )
    count = round(0.05 * 6 * 96)  # flap_mlp_ratio of the MLP channels
    pruned, plan, _ = plan_method("harp_flap", "llama")
    removed = {(int(layer), c) for layer, gone in plan.details["removed_channels"].items() for c in gone}
    assert removed == {(layer, c) for _, layer, c in ranked[:count]}
    assert plan.alphas == REFERENCE_ALPHAS and isinstance(decoder_layers(pruned)[5].self_attn, RemovedAttention)
    assert set(plan.tensors) == {f"layers.{layer}.mlp.down_proj.bias" for layer in plan.details["removed_channels"]}


def test_flap_compensation_lowers_layer_output_error():
    dense = random_model("llama")
    _, plan, _ = plan_method("flap", "llama", model=copy.deepcopy(dense))
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


def test_every_group_can_go_layer_zero_included_and_ratio_option_is_matched():
    model, plan, _ = plan_method("wanda_sp", "llama", ratio=12 * 6144 / 184320)  # every group of every layer
    assert all(plan.details["removed_groups"][str(i)] == [0, 1] for i in range(6))
    prompt = torch.randint(0, 128, (1, 5), generator=torch.Generator().manual_seed(5))
    assert torch.equal(
        model.generate(prompt, max_new_tokens=8, do_sample=False),
        model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False),
    )
    _, plan, _ = plan_method("flap", "qwen2", target="attention+mlp", ratio=0.123)
    assert abs(plan.pruning_ratio - 0.123) <= 0.01 * 0.123
    assert plan.details["removed_channels"] and plan.details["standardised"]


def test_coarse_budget_is_refused_or_recorded():
    with pytest.raises(HarpError, match="within 1%"):
        select([Unit("attention", 1, 0, 100), Unit("attention", 2, 0, 100)], target=150)
    assert len(select([Unit("block", 1, 0, 100), Unit("block", 2, 0, 100)], target=160, strict=False)) == 2
    with pytest.raises(HarpError, match="reference budget"):
        inputs(random_model("llama"), "mag_sp")


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
    assert cfg.method.name == method and callable(spec.planner) and callable(spec.applier)
    assert "calibration" in spec.needs and ("reference" in spec.needs or method == "harp_flap")
