"""HARP pruning: exact equivalence with an independent computation, parameters, KV cache, errors."""

from __future__ import annotations

import copy

import pytest
import torch

import harp
from harp.errors import HarpError
from harp.layers import from_last, pruned_layers
from harp.models.adapters import adapter_for, decoder_layers
from harp.pruning.params import decoder_linear_params, kv_cache_reduction
from tests.helpers import random_model

ALPHAS = {5: 0.7, 4: 0.0, 3: 0.3}


def reference_logits(model, ids, alphas):
    """Logits of `h + alpha * branch(norm(h))`, computed with hooks on the untouched dense model."""
    gemma = adapter_for(model).branch_norm is not None
    handles = []
    for idx, alpha in alphas.items():
        layer = decoder_layers(model)[idx]
        attn = layer.self_attn
        groups = model.config.num_attention_heads // model.config.num_key_value_heads

        def branch(module, args, kwargs, output, attn=attn, groups=groups, alpha=alpha):
            x = kwargs["hidden_states"]
            v = attn.v_proj(x).unflatten(-1, (-1, attn.head_dim)).repeat_interleave(groups, dim=-2).flatten(-2)
            out = attn.o_proj(v)
            return (out if gemma else alpha * out), None

        handles.append(attn.register_forward_hook(branch, with_kwargs=True))
        if gemma:
            handles.append(
                layer.post_attention_layernorm.register_forward_hook(lambda m, a, out, alpha=alpha: alpha * out)
            )
    try:
        return model(ids, use_cache=False).logits
    finally:
        for h in handles:
            h.remove()


def test_pruned_logits_match_reference(family):
    model = random_model(family)
    ids = torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(1))
    expected = reference_logits(model, ids, ALPHAS)
    harp.apply_harp(model, ALPHAS)
    torch.testing.assert_close(model(ids, use_cache=False).logits, expected, rtol=1e-4, atol=1e-5)


def test_trained_tiny_model_matches_reference(tiny_model_dir):
    from harp.models.loading import load_model

    model, tok = load_model(str(tiny_model_dir), device="cpu")
    ids = tok("def f(x): return the value", return_tensors="pt")["input_ids"]
    alphas = {7: 0.4, 6: 0.0, 5: 1.0}
    expected = reference_logits(model, ids, alphas)
    torch.testing.assert_close(harp.apply_harp(model, alphas)(ids).logits, expected, rtol=1e-4, atol=1e-5)


def test_qk_deleted_and_parameter_count_exact(family):
    model = random_model(family)
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    q = c.hidden_size * c.num_attention_heads * head_dim
    kv = c.hidden_size * c.num_key_value_heads * head_dim
    before = decoder_linear_params(model)
    harp.apply_harp(model, ALPHAS)
    # alpha > 0 drops q and k; alpha = 0 also drops v and o
    expected = before - 2 * (q + kv) - (q + 2 * kv + q)
    assert decoder_linear_params(model) == expected
    for idx, alpha in ALPHAS.items():
        names = {n.split(".")[0] for n, _ in decoder_layers(model)[idx].self_attn.named_parameters()}
        assert not names & {"q_proj", "k_proj"}
        assert names == (set() if alpha == 0 else {"v_proj", "o_proj"})
    assert kv_cache_reduction(model) == pytest.approx(len(ALPHAS) / c.num_hidden_layers)


def test_generate_with_and_without_cache_agree_and_pruned_layers_cache_nothing(family):
    model = harp.apply_harp(random_model(family), ALPHAS)
    prompt = torch.randint(0, 128, (1, 6), generator=torch.Generator().manual_seed(2))
    with_cache = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=True)
    without = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False)
    assert torch.equal(with_cache, without)
    cache = model(prompt, use_cache=True).past_key_values
    for idx in range(model.config.num_hidden_layers):
        stored = cache.layers[idx].keys
        assert (stored is None or stored.numel() == 0) == (idx in ALPHAS)


@pytest.mark.parametrize("alphas", [{0: 0.5, 1: 0.0}, {0: 0.0}])
def test_pruning_the_layers_the_cache_measures_keeps_generation_exact(family, alphas):
    """The cache reads its length from layer 0 (and masks from the first layer of each kind)."""
    model = harp.apply_harp(random_model(family), alphas)
    prompt = torch.randint(0, 128, (1, 5), generator=torch.Generator().manual_seed(4))
    with_cache = model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=True)
    assert torch.equal(with_cache, model.generate(prompt, max_new_tokens=12, do_sample=False, use_cache=False))


def test_alpha_one_keeps_branch_scale_and_zero_removes_norm_for_gemma():
    model = random_model("gemma2")
    harp.apply_harp(model, {5: 1.0, 4: 0.0})
    layers = decoder_layers(model)
    assert isinstance(layers[4].post_attention_layernorm, torch.nn.Identity)
    assert not isinstance(layers[5].post_attention_layernorm, torch.nn.Identity)


@pytest.mark.parametrize(
    "alphas, message",
    [
        ({6: 0.5}, "out of range"),
        ({-1: 0.5}, "out of range"),
        ({2: 1.5}, r"\[0, 1\]"),
        ({2: float("nan")}, r"\[0, 1\]"),
        ({"x": 0.5}, "not an integer"),
        ({2: "high"}, "number"),
    ],
)
def test_bad_alphas_raise_clear_errors(alphas, message):
    with pytest.raises(HarpError, match=message):
        harp.apply_harp(random_model("llama"), alphas)


def test_unsupported_family_is_named():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64))
    with pytest.raises(HarpError, match="supported families: gemma2, llama, mistral, qwen2"):
        harp.apply_harp(model, {1: 0.5})


def test_pruning_twice_is_an_error():
    model = harp.apply_harp(random_model("llama"), {5: 0.5})
    with pytest.raises(HarpError, match="already pruned"):
        harp.apply_harp(model, {5: 0.5})


def test_layer_positions_and_values_from_the_last_layer():
    assert pruned_layers(32, 8) == list(range(24, 32))
    assert pruned_layers(32, 8, "bottom") == list(range(8))
    assert pruned_layers(32, 8, "middle") == list(range(12, 20))
    for count in (9, 0, -1):
        with pytest.raises(HarpError, match=f"Cannot prune {count} layers"):
            pruned_layers(8, count)
    with pytest.raises(HarpError, match="Unknown layer position"):
        pruned_layers(8, 2, "side")
    assert from_last([29, 30, 31], [0.8, 0.2, 0.1]) == {31: 0.8, 30: 0.2, 29: 0.1}
    with pytest.raises(HarpError, match="2 alphas were given for 3 pruned layers"):
        from_last([29, 30, 31], [0.8, 0.2])


def test_apply_harp_leaves_other_layers_untouched():
    model = random_model("llama")
    dense = copy.deepcopy(model)
    harp.apply_harp(model, {5: 0.5})
    for idx in range(5):
        a, b = decoder_layers(model)[idx].state_dict(), decoder_layers(dense)[idx].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_gemma2_alpha_folded_into_the_norm_keeps_its_precision_in_bfloat16():
    """alpha = 0.1 folded into Gemma-2's post-attention norm: the folded weight stays in float32, so the
    bfloat16 model's output is within bf16 rounding of a float32 reference with the same weights."""
    alphas = {5: 0.1, 4: 0.1, 3: 0.1}
    bf16 = random_model("gemma2").to(torch.bfloat16)
    reference = copy.deepcopy(bf16).float()  # the same (bf16-representable) weights, computed in float32
    scale = {i: 1 + decoder_layers(bf16)[i].post_attention_layernorm.weight.float() for i in alphas}
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        dense_gap = (bf16(ids).logits.float() - reference(ids).logits).abs().max()
        harp.apply_harp(bf16, alphas)
        harp.apply_harp(reference, alphas)
        pruned_gap = (bf16(ids).logits.float() - reference(ids).logits).abs().max()
    for idx, alpha in alphas.items():
        weight = decoder_layers(bf16)[idx].post_attention_layernorm.weight
        assert weight.dtype == torch.float32
        torch.testing.assert_close(1 + weight, alpha * scale[idx], rtol=1e-6, atol=1e-7)
    assert pruned_gap <= 2 * dense_gap  # no error beyond the bf16 rounding the dense model already has
