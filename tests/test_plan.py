"""Plans: a saved plan re-applied to a freshly loaded model gives the same logits; bad plans fail clearly."""

from __future__ import annotations

import json

import pytest
import torch

import harp
from harp.errors import HarpError
from harp.provenance import plan_hash
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import build_plan, load_plan, save_plan
from tests.helpers import random_model


def harp_plan(model, alphas):
    before = decoder_linear_params(model)
    harp.apply_harp(model, alphas)
    return build_plan("harp", "random", model, before, layers=list(alphas), alphas=alphas)


def test_plan_round_trip_gives_identical_logits(family, tmp_path):
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(0))
    pruned = random_model(family)
    plan = harp_plan(pruned, {5: 0.6, 4: 0.0})
    save_plan(plan, tmp_path)
    data = json.loads((tmp_path / "plan.json").read_text())
    for key in ("method", "layers", "alphas", "params_before", "params_after", "kv_cache_reduction", "model"):
        assert key in data
    assert data["kv_cache_reduction"] == pytest.approx(2 / 6)
    fresh = harp.apply_plan(random_model(family), load_plan(tmp_path))
    assert torch.equal(fresh(ids).logits, pruned(ids).logits)


def test_trained_tiny_plan_round_trip(tiny_model_dir, tmp_path):
    from harp.models.loading import load_model

    pruned, tok = load_model(str(tiny_model_dir), device="cpu")
    ids = tok("class A: pass", return_tensors="pt")["input_ids"]
    save_plan(harp_plan(pruned, {7: 0.3, 6: 0.8}), tmp_path)
    fresh, _ = load_model(str(tiny_model_dir), device="cpu")
    assert torch.equal(harp.apply_plan(fresh, load_plan(tmp_path))(ids).logits, pruned(ids).logits)


def test_plan_for_another_model_is_rejected(tmp_path):
    save_plan(harp_plan(random_model("llama"), {5: 0.5}), tmp_path)
    with pytest.raises(HarpError, match="different model"):
        harp.apply_plan(random_model("llama", num_layers=8), load_plan(tmp_path))


def test_corrupt_or_missing_plan_is_one_sentence(tmp_path):
    with pytest.raises(HarpError, match="does not exist"):
        load_plan(tmp_path)
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(HarpError, match="not valid JSON"):
        load_plan(tmp_path)
    (tmp_path / "plan.json").write_text(json.dumps({"method": "harp"}))
    with pytest.raises(HarpError, match="lacks the key .model.; delete it and rerun the prune stage"):
        load_plan(tmp_path)


def test_plan_hash_tracks_content(tmp_path):
    save_plan(harp_plan(random_model("llama"), {5: 0.5}), tmp_path / "a")
    save_plan(harp_plan(random_model("llama"), {5: 0.4}), tmp_path / "b")
    save_plan(harp_plan(random_model("llama"), {5: 0.5}), tmp_path / "c")
    assert plan_hash(tmp_path / "a") == plan_hash(tmp_path / "c") != plan_hash(tmp_path / "b")


def test_a_plan_from_a_checkpoint_with_exact_zeros_applies_to_random_weights_for_speed():
    """The speed stage times a plan on random weights: the checkpoint's zeros must not make it 'a different model'."""
    checkpoint = random_model("llama")
    with torch.no_grad():
        checkpoint.model.layers[0].mlp.up_proj.weight[0, :3] = 0.0
    plan = harp_plan(checkpoint, {5: 0.5})
    with pytest.raises(HarpError, match="belongs to a different model"):
        harp.apply_plan(random_model("llama"), plan)
    timed = harp.apply_plan(random_model("llama"), plan, same_weights=False)
    assert not hasattr(timed.model.layers[5].self_attn, "q_proj")


def test_saving_a_plan_without_tensors_removes_the_previous_plans_tensors(tmp_path):
    plan = harp_plan(random_model("llama"), {5: 0.5})
    save_plan(plan, tmp_path / "clean")
    plan.tensors = {"mask": torch.ones(4, dtype=torch.bool)}
    save_plan(plan, tmp_path / "reused")
    plan.tensors = {}
    save_plan(plan, tmp_path / "reused")
    assert not (tmp_path / "reused" / "plan.safetensors").exists()
    assert plan_hash(tmp_path / "reused") == plan_hash(tmp_path / "clean")
