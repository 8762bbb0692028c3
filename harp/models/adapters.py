"""Per-family facts HARP needs, kept to what actually differs between architectures.

All four paper families share the HF decoder layout (`model.model.layers[i].self_attn` with
q/k/v/o projections, `model.model.norm`, `model.lm_head`). They differ only in where the attention
branch ends before the residual add: at `o_proj` (Llama, Mistral, Qwen2) or at Gemma-2's
`post_attention_layernorm`, whose weight acts as `(1 + weight)`. Adding a family is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harp.errors import HarpError


@dataclass(frozen=True)
class FamilyAdapter:
    family: str
    # the decoder-layer module that ends the attention branch; None: the branch ends at o_proj
    branch_norm: str | None = None
    norm_offset: float = 0.0  # the norm scales by (offset + weight): Gemma's RMSNorm uses 1


ADAPTERS: dict[str, FamilyAdapter] = {
    "llama": FamilyAdapter("llama"),
    "mistral": FamilyAdapter("mistral"),
    "qwen2": FamilyAdapter("qwen2"),
    "gemma2": FamilyAdapter("gemma2", branch_norm="post_attention_layernorm", norm_offset=1.0),
}


def adapter_for(model_or_config) -> FamilyAdapter:
    """The adapter of a model (or config); a clear error for an architecture HARP does not know."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "model_type", None)
    if model_type not in ADAPTERS:
        raise HarpError(f"Unsupported model family {model_type!r}; supported families: {', '.join(sorted(ADAPTERS))}.")
    return ADAPTERS[model_type]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    return model.model.layers


def logits_from_hidden(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The causal-LM head applied to the last decoder layer's output (final norm, lm_head, softcap)."""
    logits = model.lm_head(model.model.norm(hidden))
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    return logits
