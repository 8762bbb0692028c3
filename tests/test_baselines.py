"""Structured baselines: exact units removed, matched budgets, physical removal that still runs
(forward and cached generation) on all four families, plan round trips, FLAP compensation.

Expected selections are computed here directly with torch from the captured layer inputs, not with the
functions under test. Most tests ask for the exact budget (`method.counts=budget`); the reference count
rules are pinned against the reference code's own selections in test_reference_baselines.py."""

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
from harp.pruning.baselines.ranking import Unit, select, spread
from harp.pruning.baselines.structures import (
    ChannelStats,
    RemovedAttention,
    apply_structure,
    prune_attention,
)
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
    """What the prune stage would feed `method`: its configured settings (with `settings` changed, and the exact
    budget unless `counts` is given) and the budget."""
    spec = configured(method)
    counts = {"counts": "budget"} if hasattr(spec, "counts") else {}  # a method with a count rule: the exact budget
    spec = dataclasses.replace(spec, **(counts | settings))
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


def captured(model, module: str, ids: torch.Tensor) -> dict[int, torch.Tensor]:
    """Per layer: the float64 inputs (sequences, tokens, channels) of `self_attn.o_proj` or `mlp.down_proj`
    over one forward of `ids`."""
    seen: dict[int, torch.Tensor] = {}
    handles = [
        layer.get_submodule(module).register_forward_pre_hook(lambda m, args, i=i: seen.update({i: args[0].double()}))
        for i, layer in enumerate(decoder_layers(model))
    ]
    with torch.no_grad():
        model(ids, use_cache=False)
    for h in handles:
        h.remove()
    return seen


def group_sums(per_channel: torch.Tensor, groups: int = 2) -> torch.Tensor:
    return per_channel.reshape(groups, -1).sum(-1)


def test_channel_statistics_on_a_hand_sized_example():
    """Three sequences of two tokens, channel 2 = -2 x channel 1, fed as two batches. FLAP's running estimate
    by hand: sequence means 2, 4, 2 give running means 2, 3, 8/3; the fluctuation is 0 after the first
    sequence, ((2-3)^2 + (6-3)^2) / 2 = 5 after the second, 5 * 1/2 + ((0-8/3)^2 + (4-8/3)^2) / 3 = 295/54
    after the third. The exact variance of 1, 3, 2, 6, 0, 4 is 14/3."""
    first = torch.tensor([[1.0, 3.0], [2.0, 6.0], [0.0, 4.0]])
    x = torch.stack([first, -2 * first], dim=-1)  # (sequences, tokens, channels)
    stats = ChannelStats()
    stats.add(x[:2])
    stats.add(x[2])  # one sequence as (tokens, channels)
    scale = torch.tensor([1.0, 4.0], dtype=torch.float64)
    assert torch.allclose(stats.fluctuation, 295 / 54 * scale)
    assert torch.allclose(stats.variance, 14 / 3 * scale)
    assert torch.allclose(stats.variance, x.reshape(-1, 2).double().var(0))
    assert torch.allclose(stats.mean, torch.tensor([8 / 3, -16 / 3], dtype=torch.float64))
    assert torch.allclose(stats.norm, 66**0.5 * scale.sqrt())
    assert torch.allclose(stats.mean_abs, torch.tensor([8 / 3, 16 / 3], dtype=torch.float64))


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
    """WIFV = variance over tokens x squared column norm, squared, standardised per layer, averaged per group."""
    dense = random_model("llama")
    inputs_ = captured(dense, "self_attn.o_proj", calibration())
    ranked = []
    for layer, x in inputs_.items():
        weight = decoder_layers(dense)[layer].self_attn.o_proj.weight.double()
        wifv = (x.reshape(-1, 64).var(0) * weight.pow(2).sum(0)) ** 2
        z = ((wifv - wifv.mean()) / wifv.std()).reshape(2, -1).mean(-1)
        ranked += [(z[g].item(), layer, g) for g in range(2)]
    ranked.sort()
    pruned, plan = plan_method("flap", model=copy.deepcopy(dense), statistics="exact")
    assert removed_groups(plan) == {(layer, g) for _, layer, g in ranked[:4]}
    assert plan.details["budget"]["allocation"] == "global"
    for layer, gone in plan.details["removed_groups"].items():  # what remains: dense weights of kept groups
        keep = [g for g in range(2) if g not in gone]
        if keep:
            rows = torch.cat([torch.arange(g * 32, (g + 1) * 32) for g in keep])
            after, before = decoder_layers(pruned)[int(layer)].self_attn, decoder_layers(dense)[int(layer)].self_attn
            assert torch.equal(after.q_proj.weight, before.q_proj.weight[rows])
            assert torch.equal(after.o_proj.weight[:, : 32 * len(keep)], before.o_proj.weight[:, rows])


def direct_scores(method: str, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per o_proj input channel: Mag-sp's column L2 norm, or Wanda's sum_i |W_ij| x ||X_j|| over tokens."""
    weight = weight.double()
    if method == "mag_sp":
        return weight.norm(dim=0)
    return weight.abs().sum(0) * x.reshape(-1, x.shape[-1]).norm(dim=0)


@pytest.mark.parametrize("method", ["mag_sp", "wanda_sp"])
def test_uniform_allocation_removes_the_same_count_in_every_layer_plus_a_spread_remainder(method):
    """Exact budget: 4 groups over 6 layers: none everywhere, and one more in 4 evenly spaced layers
    (0, 2, 3, 5), each the layer's lowest-scored group (Wanda's norms from one dense pass here)."""
    dense = random_model("llama")
    inputs_ = captured(dense, "self_attn.o_proj", calibration())
    lowest = {
        layer: int(group_sums(direct_scores(method, decoder_layers(dense)[layer].self_attn.o_proj.weight, x)).argmin())
        for layer, x in inputs_.items()
    }
    _, plan = plan_method(method, model=copy.deepcopy(dense), statistics="exact")
    assert plan.details["budget"]["per_layer"] == {"attention": {"0": 1, "1": 0, "2": 1, "3": 1, "4": 0, "5": 1}}
    assert removed_groups(plan) == {(layer, lowest[layer]) for layer in (0, 2, 3, 5)}
    assert spread(12, [0, 1, 2, 3, 4, 5]) == dict.fromkeys(range(6), 2) and sum(spread(7, [3, 4, 5]).values()) == 7


@pytest.mark.parametrize("method", ["mag_sp", "wanda_sp"])
def test_reference_counts_floor_the_share_of_every_layer_and_record_the_gap(method):
    """FLAP's code removes int(p x groups) per layer: p = 1/3 of 2 groups is none, recorded with its gap;
    p = 1/2 is one group in every layer."""
    _, plan = plan_method(method, counts="reference")
    budget = plan.details["budget"]
    assert plan.details["removed_groups"] == {} and budget["counts"] == "reference"
    assert budget["removed"] == 0 and budget["gap"] == -1.0 and "method.counts=budget" in budget["note"]
    _, plan = plan_method(method, counts="reference", budget=BudgetConfig("attention_fraction", 0.5))
    assert plan.details["budget"]["per_layer"] == {"attention": dict.fromkeys(map(str, range(6)), 1)}
    assert "note" not in plan.details["budget"] and plan.details["budget"]["count_rule"] == "floor_counts"


def test_wanda_sp_scores_each_layer_on_the_layers_below_already_pruned():
    """As FLAP's code gathers them: layer i's input norms come from layers 0..i-1 as pruned by the plan."""
    dense = random_model("llama")
    half = BudgetConfig("attention_fraction", 0.5)  # one group in every layer
    _, plan = plan_method("wanda_sp", model=copy.deepcopy(dense), counts="reference", budget=half)
    assert plan.details["statistics"] == "layer by layer, on the pruned layers below"
    removed = plan.details["removed_groups"]
    assert all(len(removed[str(i)]) == 1 for i in range(6))
    differs = False
    for layer in range(6):
        below = copy.deepcopy(dense)
        apply_structure(below, {"removed_groups": {str(i): removed[str(i)] for i in range(layer)}}, {})
        x = captured(below, "self_attn.o_proj", calibration())[layer]
        weight = decoder_layers(dense)[layer].self_attn.o_proj.weight
        assert removed[str(layer)] == [int(group_sums(direct_scores("wanda_sp", weight, x)).argmin())]
        dense_x = captured(dense, "self_attn.o_proj", calibration())[layer]
        differs |= not torch.allclose(x, dense_x)
    assert differs  # the pruned prefix really changed what the upper layers were scored on


def amp_direct(model, ids) -> dict[tuple[str, int], torch.Tensor]:
    """AMP's scores from the captured inputs: per group, the mean over tokens of the L1 norm of each query
    head's o_proj contribution (summed over the group's 2 heads); per neuron, the mean |down_proj input|."""
    scores = {}
    for layer, x in captured(model, "self_attn.o_proj", ids).items():
        weight = decoder_layers(model)[layer].self_attn.o_proj.weight.double()
        tokens = x.reshape(-1, 64)
        heads = torch.stack(
            [
                (tokens[:, h * 16 : (h + 1) * 16] @ weight[:, h * 16 : (h + 1) * 16].T).abs().sum(-1).mean()
                for h in range(4)
            ]
        )
        scores[("attention", layer)] = heads.reshape(2, 2).sum(-1)
    for layer, x in captured(model, "mlp.down_proj", ids).items():
        scores[("mlp", layer)] = x.reshape(-1, x.shape[-1]).abs().mean(0)
    return scores


@pytest.mark.parametrize("counts, channels", [("reference", 38), ("budget", 32)])
def test_amp_is_uniform_over_heads_and_neurons(counts, channels):
    """p = 0.4 of every layer: round(0.4 x 2) = 1 group per layer; AMP's rule adds the shortfall 0.8 - 1 as
    channels, round(0.4 x 96 - 0.2) = 38; the exact budget fills the rest with 32 channels a layer."""
    dense = random_model("llama")
    _, plan = plan_method("amp", model=copy.deepcopy(dense), budget=BudgetConfig("ratio", 0.4), counts=counts)
    assert plan.details["budget"]["per_layer"] == {
        "attention": dict.fromkeys(map(str, range(6)), 1),
        "mlp": dict.fromkeys(map(str, range(6)), channels),
    }
    scores = amp_direct(dense, calibration())
    assert removed_groups(plan) == {(layer, int(scores[("attention", layer)].argmin())) for layer in range(6)}
    for layer, gone in plan.details["removed_channels"].items():
        neurons = scores[("mlp", int(layer))]
        assert set(gone) == set(neurons.argsort()[:channels].tolist()) and int(neurons.argmax()) not in gone


def test_attention_drop_removes_the_blocks_whose_output_is_nearest_their_input():
    """Importance 1 - mean over tokens of cosine(block input, block input + attention output)."""
    dense = random_model("llama")
    block_in, similarity, handles = {}, {}, []
    for i, layer in enumerate(decoder_layers(dense)):
        handles.append(
            layer.register_forward_pre_hook(
                lambda m, a, k, i=i: block_in.update({i: k["hidden_states"] if not a else a[0]}), with_kwargs=True
            )
        )
        handles.append(
            layer.self_attn.register_forward_hook(
                lambda m, a, out, i=i: similarity.update(
                    {
                        i: torch.nn.functional.cosine_similarity(block_in[i], block_in[i] + out[0], dim=-1)
                        .double()
                        .mean()
                    }
                )
            )
        )
    with torch.no_grad():
        dense(calibration(), use_cache=False)
    for h in handles:
        h.remove()
    least = sorted(similarity, key=lambda i: 1 - similarity[i].item())[:2]  # the budget is 2 whole blocks
    _, plan = plan_method("attn_drop", model=copy.deepcopy(dense))
    assert {str(layer) for layer in least} == set(plan.details["removed_groups"])
    assert all(gone == [0, 1] for gone in plan.details["removed_groups"].values())


def test_harp_flap_fills_the_gap_to_the_budget_with_the_lowest_wifv_channels_of_the_harp_model():
    harp_model = random_model("llama")
    make_plan("harp", inputs(harp_model, "harp"))
    ranked = []
    for layer, x in captured(harp_model, "mlp.down_proj", calibration()).items():
        weight = decoder_layers(harp_model)[layer].mlp.down_proj.weight.double()
        wifv = x.reshape(-1, x.shape[-1]).var(0) * weight.pow(2).sum(0)
        z = (wifv - wifv.mean()) / wifv.std()
        ranked += [(z[c].item(), layer, c) for c in range(z.numel()) if c != int(z.argmax())]
    ranked.sort()
    pruned, plan = plan_method("harp_flap", statistics="exact")
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
    with pytest.raises(HarpError, match="layer by layer"):  # Wanda-sp's sequential statistics need uniform counts
        plan_method("wanda_sp", allocation="global")
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
