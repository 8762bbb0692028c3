"""Greedy alpha search: the cached path equals a plain full-forward search, bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

import harp
from harp.config import DEFAULT_GRID
from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from tests.helpers import random_model


def calibration(n=6, length=20, seed=3):
    return torch.randint(0, 128, (n, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("order", ["top_down", "bottom_up"])
def test_cached_search_equals_plain_search(family, order):
    model, ids = random_model(family), calibration()
    cached = harp.search_alphas(model, ids, 3, order=order, batch_size=4, progress=False)
    plain = harp.search_alphas(model, ids, 3, order=order, batch_size=4, cached=False, progress=False)
    assert cached.alphas == plain.alphas
    assert cached.trace == plain.trace  # identical perplexities, not merely close
    assert cached.dense_perplexity == plain.dense_perplexity
    visited = [r["layer"] for r in cached.trace[:: len(DEFAULT_GRID)]]
    assert visited == ([5, 4, 3] if order == "top_down" else [3, 4, 5])


def test_cached_search_on_trained_tiny_model(tiny_model_dir):
    from harp.data.calibration import calibration_ids
    from harp.models.loading import load_model

    model, tok = load_model(str(tiny_model_dir), device="cpu")
    ids = calibration_ids(tok, "corpus", 8, 64, seed=0)
    grid = (0.0, 0.5, 1.0)
    cached = harp.search_alphas(model, ids, 3, grid=grid, progress=False)
    plain = harp.search_alphas(model, ids, 3, grid=grid, cached=False, progress=False)
    assert cached.alphas == plain.alphas and cached.trace == plain.trace


def test_search_is_greedy_and_final_perplexity_is_that_of_the_pruned_model():
    model, ids = random_model("llama"), calibration()
    result = harp.search_alphas(model, ids, 3, progress=False)
    for layer, alpha in result.alphas.items():
        rows = [r for r in result.trace if r["layer"] == layer]
        assert len(rows) == len(DEFAULT_GRID)
        best = min(r["perplexity"] for r in rows)
        assert alpha == max(r["alpha"] for r in rows if r["perplexity"] == best)
    # the search leaves the model dense ...
    assert all(hasattr(layer.self_attn, "q_proj") for layer in decoder_layers(model))
    # ... and applying its alphas reproduces the perplexity it reported
    harp.apply_harp(model, result.alphas)
    with torch.inference_mode():
        logits = model(ids, use_cache=False).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, 128), ids[:, 1:].reshape(-1))
    assert math.exp(nll.item()) == pytest.approx(result.perplexity, rel=1e-5)


def test_ties_go_to_the_larger_alpha():
    model = random_model("llama")
    with torch.no_grad():  # a zero value projection makes every alpha give the same perplexity
        for layer in decoder_layers(model):
            layer.self_attn.v_proj.weight.zero_()
    result = harp.search_alphas(model, calibration(), 2, grid=(0.0, 0.3, 1.0), progress=False)
    assert result.alphas == {5: 1.0, 4: 1.0}


def test_same_data_same_alphas():
    ids = calibration()
    first = harp.search_alphas(random_model("qwen2"), ids, 3, progress=False)
    second = harp.search_alphas(random_model("qwen2"), ids, 3, progress=False)
    assert first.alphas == second.alphas and first.trace == second.trace


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_layers=7), "Cannot prune 7 layers"),
        (dict(num_layers=2, grid=(1.5,)), "grid"),
        (dict(num_layers=2, order="random"), "Unknown search order"),
    ],
)
def test_bad_search_settings(kwargs, message):
    with pytest.raises(HarpError, match=message):
        harp.search_alphas(random_model("llama"), calibration(), progress=False, **kwargs)
