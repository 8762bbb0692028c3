"""Modeling code of a pruned checkpoint: the stock transformers model, with the layers pruning changed made smaller.

This file ships beside `config.json` and `model.safetensors`. `config.json`'s `auto_map` points
`AutoModelForCausalLM` at the class below for the model's family, so

    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

builds the stock model (Llama, Mistral, Qwen2 or Gemma-2), then changes only the decoder layers that
`config.pruned_layers` lists, before the weights are loaded. Each entry maps a layer index to what
pruning changed in that layer:

- `num_attention_heads`, `num_key_value_heads`: the attention kept fewer heads. Heads were removed in whole
  groups (a key/value head with the query heads that read it), so the stock attention runs unchanged on its
  smaller q/k/v/o projections; the head width is the model's.
- `intermediate_size`: the MLP kept fewer channels (rows of gate/up, columns of down_proj).
- `attention`: what replaced the attention block:
  - `"value_passthrough"`: every token attends only to itself, so the attention matrix is the identity and
    the block computes `o_proj(v_proj(x))`, each value head feeding the query heads of its group. It has no
    queries, keys or rotary embedding, and stores nothing in the KV cache. A rescaling factor of the block,
    if any, is already multiplied into `o_proj` (Gemma-2: into the norm that follows the attention).
  - `"constant"`: the block was removed and its average output kept as a bias (`self_attn.bias`).
  - `"removed"`: the block was removed; the layer adds nothing there (Gemma-2's norm of that output goes too).
- `o_proj_bias`, `down_proj_bias`: a bias was added to that output projection; it carries the average
  contribution of the removed heads or channels.

Layers without attention get a cache slot that stores nothing (a transformers `DummyLayer`). The static cache
(`cache_implementation="static"`) assumes equal layers and is not supported.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers.cache_utils import DummyLayer, DynamicCache
from transformers.models.gemma2.modeling_gemma2 import Gemma2ForCausalLM
from transformers.models.llama.modeling_llama import LlamaForCausalLM
from transformers.models.mistral.modeling_mistral import MistralForCausalLM
from transformers.models.qwen2.modeling_qwen2 import Qwen2ForCausalLM

SIZES = ("num_attention_heads", "num_key_value_heads", "intermediate_size")
CHANGES = {*SIZES, "attention", "o_proj_bias", "down_proj_bias"}  # what an entry of config.pruned_layers may say


class ValuePassthrough(nn.Module):
    """Attention whose attention matrix is the identity: `o_proj(v_proj(x))`, value heads repeated per group."""

    def __init__(self, v_proj: nn.Linear, o_proj: nn.Linear, head_dim: int, groups: int):
        super().__init__()
        self.v_proj, self.o_proj = v_proj, o_proj
        self.head_dim, self.groups = head_dim, groups

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, None]:
        values = self.v_proj(hidden_states)
        if self.groups > 1:  # query head h reads value head h // groups, as in the stock attention
            lead = values.shape[:-1]
            values = values.view(*lead, -1, 1, self.head_dim)
            values = values.expand(*lead, values.shape[-3], self.groups, self.head_dim).reshape(*lead, -1)
        return self.o_proj(values), None


class ConstantBranch(nn.Module):
    """A removed attention block that still adds its average output: a constant bias."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, None]:
        return self.bias.to(hidden_states.dtype).expand_as(hidden_states), None


class RemovedAttention(nn.Module):
    """A removed attention block: it adds nothing to the residual stream."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, None]:
        return torch.zeros_like(hidden_states), None


def resized(linear: nn.Linear, in_features: int | None = None, out_features: int | None = None, bias=None):
    """A Linear like `linear` with other sizes (or a bias added); its weights come from the checkpoint."""
    return nn.Linear(
        in_features or linear.in_features,
        out_features or linear.out_features,
        bias=linear.bias is not None if bias is None else bias,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )


def prune_layer(layer: nn.Module, change: dict, attention_output_norm: str | None) -> None:
    """Make the stock decoder `layer` what `change` (one entry of `config.pruned_layers`) says, in place."""
    if unknown := set(change) - CHANGES:
        raise ValueError(f"config.pruned_layers: unknown change {sorted(unknown)}; this modeling file knows {CHANGES}")
    attn, mlp = layer.self_attn, layer.mlp
    if "num_attention_heads" in change:
        queries, keys = (change[k] * attn.head_dim for k in ("num_attention_heads", "num_key_value_heads"))
        attn.q_proj = resized(attn.q_proj, out_features=queries)
        attn.k_proj = resized(attn.k_proj, out_features=keys)
        attn.v_proj = resized(attn.v_proj, out_features=keys)
        attn.o_proj = resized(attn.o_proj, in_features=queries)
    if change.get("o_proj_bias"):
        attn.o_proj = resized(attn.o_proj, bias=True)
    if "intermediate_size" in change:
        width = change["intermediate_size"]
        mlp.gate_proj = resized(mlp.gate_proj, out_features=width)
        mlp.up_proj = resized(mlp.up_proj, out_features=width)
        mlp.down_proj = resized(mlp.down_proj, in_features=width)
    if change.get("down_proj_bias"):
        mlp.down_proj = resized(mlp.down_proj, bias=True)
    kind = change.get("attention")
    if kind == "value_passthrough":
        layer.self_attn = ValuePassthrough(attn.v_proj, attn.o_proj, attn.head_dim, attn.num_key_value_groups)
    elif kind == "constant":
        layer.self_attn = ConstantBranch(attn.o_proj.out_features)
    elif kind == "removed":
        layer.self_attn = RemovedAttention()
        if attention_output_norm:  # the norm of a zero output is zero
            setattr(layer, attention_output_norm, nn.Identity())
    elif kind is not None:
        raise ValueError(f"config.pruned_layers: unknown attention {kind!r}")


class AttentionFreeLayer(DummyLayer):
    """The cache slot of a layer without attention: it stores nothing and reports the length of the cache's first
    layer that stores keys and values (transformers 5.25 asks layer 0 for the cache's length, even a dummy one)."""

    def __init__(self, cache: DynamicCache):
        super().__init__()
        self.cache = cache

    def get_seq_length(self) -> int:
        stored = (layer for layer in self.cache.layers if not isinstance(layer, DummyLayer))
        return next((layer.get_seq_length() for layer in stored), 0)


class PrunedModelMixin:
    """Builds the stock model, then applies `config.pruned_layers` (before `from_pretrained` loads the weights)."""

    attention_output_norm: str | None = None  # a norm applied to the attention output before the residual add

    def __init__(self, config):
        super().__init__(config)
        for index, change in config.pruned_layers.items():
            prune_layer(self.model.layers[int(index)], change, self.attention_output_norm)
        self.attention_free = sorted(int(i) for i, change in config.pruned_layers.items() if "attention" in change)
        parameters = inspect.signature(self.model.forward).parameters
        self.cache_argument = "cache" if "cache" in parameters else "past_key_values"  # renamed in transformers 5.x
        self.model.register_forward_pre_hook(self.cache_without_attention_free_layers, with_kwargs=True)

    def cache_without_attention_free_layers(self, module: nn.Module, args: tuple, kwargs: dict):
        """Give each layer without attention a cache slot that stores nothing, before the first token is cached.

        The cache then reads its length and mask sizes from the layers that keep keys and values."""
        cache = kwargs.get(self.cache_argument)
        use_cache = kwargs.get("use_cache")
        if cache is None and (use_cache if use_cache is not None else self.config.use_cache):
            cache = kwargs[self.cache_argument] = DynamicCache(config=self.config)
        if isinstance(cache, DynamicCache):
            for index in self.attention_free:
                if index < len(cache.layers) and not cache.layers[index].is_initialized:
                    cache.layers[index] = AttentionFreeLayer(cache)
        return args, kwargs


class PrunedLlamaForCausalLM(PrunedModelMixin, LlamaForCausalLM):
    pass


class PrunedMistralForCausalLM(PrunedModelMixin, MistralForCausalLM):
    pass


class PrunedQwen2ForCausalLM(PrunedModelMixin, Qwen2ForCausalLM):
    pass


class PrunedGemma2ForCausalLM(PrunedModelMixin, Gemma2ForCausalLM):
    attention_output_norm = "post_attention_layernorm"  # Gemma-2 normalises the attention output
    # a pass-through layer's rescaling factor is folded into this norm: in float32 (also in bfloat16 models), exact
    _keep_in_fp32_modules_strict = ["post_attention_layernorm"]
