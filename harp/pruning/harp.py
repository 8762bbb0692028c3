"""HARP: in the top layers, bypass softmax attention and rescale the attention branch by alpha.

A pruned layer computes `h + alpha * o_proj(repeat_kv(v_proj(norm(h))))`: each token attends only
to itself, so queries, keys, RoPE, SDPA and that layer's KV cache disappear. alpha is folded into
the last op of the branch (o_proj, or Gemma-2's post-attention norm), so it costs nothing at run
time. alpha = 0 removes the branch (v_proj and o_proj too).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
from torch import nn

from harp.errors import HarpError
from harp.models.adapters import FamilyAdapter, adapter_for, decoder_layers
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import Plan, PruneInputs, build_plan


def keep_cache_length(past_key_values, layer_idx: int, hidden_states: torch.Tensor) -> None:
    """Record the new tokens in the cache if it reads its length from this layer.

    A DynamicCache takes the sequence length from layer 0 and the mask sizes from its first full and
    first sliding-window layer. When one of those is pruned (bottom-layer ablations), it stores a
    one-value-per-token placeholder instead of keys and values, so generation keeps its positions;
    every other pruned layer stores nothing.
    """
    if past_key_values is None or not hasattr(past_key_values, "update"):
        return
    sliding = list(getattr(past_key_values, "is_sliding", []))
    if layer_idx != 0 and layer_idx not in {sliding.index(k) for k in (False, True) if k in sliding}:
        return
    marker = hidden_states.new_zeros(hidden_states.shape[0], 1, hidden_states.shape[1], 1)
    past_key_values.update(marker, marker, layer_idx)


class ValuePassthrough(nn.Module):
    """Attention whose attention matrix is the identity: `o_proj(repeat_kv(v_proj(x)))`.

    Keeps the HF attention call signature and returns `(output, None)`; the layer stores no keys
    or values during generation.
    """

    def __init__(self, v_proj: nn.Linear, o_proj: nn.Linear, head_dim: int, num_kv_groups: int, layer_idx: int):
        super().__init__()
        self.v_proj, self.o_proj = v_proj, o_proj
        self.head_dim, self.num_kv_groups, self.layer_idx = head_dim, num_kv_groups, layer_idx

    def forward(self, hidden_states: torch.Tensor, *args, past_key_values=None, **kwargs) -> tuple[torch.Tensor, None]:
        keep_cache_length(past_key_values, self.layer_idx, hidden_states)
        values = self.v_proj(hidden_states)
        if self.num_kv_groups > 1:  # repeat_kv: query head h reads key/value head h // groups
            lead = values.shape[:-1]
            values = values.view(*lead, -1, 1, self.head_dim)
            values = values.expand(*lead, values.shape[-3], self.num_kv_groups, self.head_dim).reshape(*lead, -1)
        return self.o_proj(values), None


class RemovedAttention(nn.Module):
    """alpha = 0: the attention block is gone; the residual stream passes unchanged."""

    def __init__(self, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx

    def forward(self, hidden_states: torch.Tensor, *args, past_key_values=None, **kwargs) -> tuple[torch.Tensor, None]:
        keep_cache_length(past_key_values, self.layer_idx, hidden_states)
        return torch.zeros_like(hidden_states), None


def _scaled_linear(linear: nn.Linear, alpha: float) -> nn.Linear:
    scaled = nn.Linear(
        linear.in_features,
        linear.out_features,
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=linear.weight.dtype,
    )
    with torch.no_grad():
        scaled.weight.copy_(linear.weight.float() * alpha)
        if linear.bias is not None:
            scaled.bias.copy_(linear.bias.float() * alpha)
    return scaled


class HarpSlot:
    """One decoder layer that can be switched between dense and HARP-pruned with any alpha.

    It keeps the original attention (and branch norm) so the alpha search can try candidates
    without copying the model; `apply_harp` uses it once and drops it, freeing q/k.
    """

    def __init__(self, layer: nn.Module, adapter: FamilyAdapter):
        self.layer, self.adapter = layer, adapter
        self.attn = layer.self_attn
        self.norm = getattr(layer, adapter.branch_norm) if adapter.branch_norm else None
        if not all(hasattr(self.attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")):
            raise HarpError(f"Layer {self.attn.layer_idx} has no dense attention to prune (already pruned?).")

    def set(self, alpha: float | None) -> None:
        """alpha None restores the dense layer."""
        attn, layer, norm_name = self.attn, self.layer, self.adapter.branch_norm
        if alpha is None:
            layer.self_attn = attn
            if norm_name:
                setattr(layer, norm_name, self.norm)
            return
        if alpha == 0.0:
            layer.self_attn = RemovedAttention(attn.layer_idx)
            if norm_name:  # the norm of a zero branch is zero: drop it as well
                setattr(layer, norm_name, nn.Identity())
            return
        groups = attn.num_key_value_groups
        if norm_name:  # fold alpha into the norm: alpha * (offset + w) = offset + w'
            norm = copy.deepcopy(self.norm)
            offset = self.adapter.norm_offset
            folded = alpha * (offset + self.norm.weight.detach().float()) - offset
            # kept in float32: in bfloat16, w' = 0.1 * (1 + w) - 1 would lose a few percent of a small alpha;
            # the norm computes in float32 anyway (Gemma-2's RMSNorm upcasts), so this costs nothing
            norm.weight = nn.Parameter(folded, requires_grad=False)
            setattr(layer, norm_name, norm)
            o_proj = attn.o_proj
        else:
            o_proj = _scaled_linear(attn.o_proj, alpha)
        layer.self_attn = ValuePassthrough(attn.v_proj, o_proj, attn.head_dim, groups, attn.layer_idx)


def validate_alphas(model: nn.Module, alphas: Mapping[int, float]) -> dict[int, float]:
    """Check layer indices and alphas; return them as a plain {int: float} dict."""
    if not isinstance(alphas, Mapping):
        raise HarpError(
            f"alphas must map a layer index to its alpha (e.g. {{31: 0.8, 30: 0.2}}), not a {type(alphas).__name__}; "
            "harp.layers.from_last pairs a list given from the last layer down with its layers."
        )
    n = len(decoder_layers(model))
    clean: dict[int, float] = {}
    for layer, alpha in alphas.items():
        if isinstance(layer, bool) or not (isinstance(layer, int) or str(layer).lstrip("-").isdigit()):
            raise HarpError(f"Layer index {layer!r} is not an integer.")
        idx = int(layer)
        try:
            value = float(alpha)
        except (TypeError, ValueError):
            raise HarpError(f"alpha for layer {idx} is {alpha!r}; alpha must be a number in [0, 1].") from None
        if not 0 <= idx < n:
            raise HarpError(f"Layer index {idx} is out of range: the model has {n} decoder layers (0..{n - 1}).")
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise HarpError(f"alpha for layer {idx} is {alpha!r}; alpha must lie in [0, 1].")
        clean[idx] = value
    return clean


def apply_harp(model: nn.Module, alphas: Mapping[int, float]) -> nn.Module:
    """Prune the given layers in place with HARP; `alphas` maps layer index -> alpha in [0, 1]."""
    adapter = adapter_for(model)
    clean = validate_alphas(model, alphas)
    layers = decoder_layers(model)
    slots = {idx: HarpSlot(layers[idx], adapter) for idx in clean}  # every layer checked before any changes
    for idx, alpha in clean.items():
        slots[idx].set(alpha)
    return model


def make_plan(inp: PruneInputs) -> Plan:
    """HARP with the searched (or fixed) alphas; the plan records them and the layer setting."""
    if inp.alphas is None:
        raise HarpError("HARP needs alphas: run the search stage first.")
    before = decoder_linear_params(inp.model)
    apply_harp(inp.model, inp.alphas)
    m = inp.method
    return build_plan(
        "harp",
        inp.source,
        inp.model,
        before,
        layers=list(inp.alphas),
        alphas=inp.alphas,
        details={"layer_position": m.layer_position, "rescale": m.rescale},
    )


def apply(model: nn.Module, plan: Plan) -> None:
    apply_harp(model, plan.alphas)
