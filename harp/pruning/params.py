"""What the paper counts: linear weights of the decoder layers, and the KV cache that remains."""

from __future__ import annotations

import torch
from torch import nn

from harp.models.adapters import decoder_layers


def decoder_linear_params(model: nn.Module) -> int:
    """Nonzero weights in the decoder layers' `nn.Linear` modules (biases excluded, as the paper).

    Nonzero, not `numel`: masking methods (`attn_mask`, `wanda_qk`) zero weights without removing
    them, and their pruning ratio must count the zeros. Structured methods remove whole rows and
    columns, which both counts see; a trained dense model has no exact zeros to speak of.
    """
    return sum(_nonzero(m.weight) for m in decoder_layers(model).modules() if isinstance(m, nn.Linear))


def decoder_linear_size(model: nn.Module) -> int:
    """Weights the decoder layers' `nn.Linear` modules hold, zero or not: what their shapes say."""
    return sum(m.weight.numel() for m in decoder_layers(model).modules() if isinstance(m, nn.Linear))


def _nonzero(weight: torch.Tensor) -> int:
    """Nonzero entries; a weight on the meta device (shapes only, as when planning budgets) counts whole."""
    return weight.numel() if weight.is_meta else int(torch.count_nonzero(weight))


def attention_weights(model: nn.Module) -> int:
    """Number of q/k/v/o projection weights of the decoder layers (the paper's budget counts a fraction of them)."""
    return sum(
        getattr(layer.self_attn, p).weight.numel()
        for layer in decoder_layers(model)
        for p in ("q_proj", "k_proj", "v_proj", "o_proj")
        if hasattr(layer.self_attn, p)
    )


def kv_cache_width(model: nn.Module) -> int:
    """Sum over layers of the per-token key width that the KV cache still stores."""
    return sum(
        layer.self_attn.k_proj.out_features for layer in decoder_layers(model) if hasattr(layer.self_attn, "k_proj")
    )


def _head_dim(config) -> int:
    """The attention head width of an HF config (its own `head_dim` where it has one: Gemma-2, Qwen3)."""
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def dense_linear_params(config) -> int:
    """Decoder linear weights of the unpruned architecture `config` describes (q, k, v, o and a gated MLP)."""
    head_dim = _head_dim(config)
    queries, keys = config.num_attention_heads * head_dim, config.num_key_value_heads * head_dim
    per_layer = config.hidden_size * (2 * queries + 2 * keys + 3 * config.intermediate_size)
    return config.num_hidden_layers * per_layer


def full_kv_cache_width(config) -> int:
    return config.num_hidden_layers * config.num_key_value_heads * _head_dim(config)


def kv_cache_reduction(model: nn.Module) -> float:
    """Fraction of the dense model's KV cache no longer stored (L / num_layers for HARP)."""
    return 1.0 - kv_cache_width(model) / full_kv_cache_width(model.config)
