"""What pruning changed in each decoder layer of a model harp pruned in memory, as the shipped modeling file reads it.

`pruned_layers(model)` compares every layer with the stock layer of the model's config and returns the
entries of `config.pruned_layers` (`modeling_pruned`'s docstring lists them); layers left stock are absent.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from harp.errors import HarpError
from harp.export import modeling_pruned
from harp.models.adapters import adapter_for, decoder_layers
from harp.pruning.baselines.structures import ConstantBranch
from harp.pruning.harp import RemovedAttention, ValuePassthrough

TEMPLATE = Path(modeling_pruned.__file__)  # copied into every export with a changed structure


def model_class(model: nn.Module) -> str:
    """The class of `modeling_pruned` that rebuilds this model's family (`Pruned<stock class name>`)."""
    name = f"Pruned{type(model).__name__}"
    if not hasattr(modeling_pruned, name):
        raise HarpError(f"Export knows no pruned version of {type(model).__name__}; it exports Llama, Mistral, "
                        "Qwen2 and Gemma-2 models.")  # fmt: skip
    return name


def drop_dead_norms(model: nn.Module) -> None:
    """Where a removed attention block's output still passes a norm (Gemma-2), drop the norm: the norm of zero is
    zero, so the model computes the same, and the export stores no weight nobody reads."""
    norm = adapter_for(model).branch_norm
    for layer in decoder_layers(model):
        if norm and isinstance(layer.self_attn, RemovedAttention):
            setattr(layer, norm, nn.Identity())


def pruned_layers(model: nn.Module) -> dict[str, dict]:
    """`config.pruned_layers` of the pruned `model`: layer index -> what differs from the stock layer."""
    layers = decoder_layers(model)
    with torch.device("meta"):
        stock = type(layers[0])(model.config, 0)
    norm = adapter_for(model).branch_norm
    changes = {}
    for i, layer in enumerate(layers):
        change = _attention(i, layer.self_attn, stock.self_attn) | _mlp(layer.mlp, stock.mlp)
        if norm and isinstance(getattr(layer, norm), nn.Identity) and change.get("attention") != "removed":
            raise HarpError(f"Layer {i} dropped its {norm} but keeps an attention output; it cannot be exported.")
        if change:
            changes[str(i)] = change
    return changes


def _attention(i: int, attn: nn.Module, stock: nn.Module) -> dict:
    if isinstance(attn, RemovedAttention):
        return {"attention": "removed"}
    if isinstance(attn, ConstantBranch):
        return {"attention": "constant"}
    if isinstance(attn, ValuePassthrough):
        change = {"attention": "value_passthrough"}
        queries, keys = attn.o_proj.in_features, attn.v_proj.out_features
    elif isinstance(attn, type(stock)):
        change = {}
        queries, keys = attn.q_proj.out_features, attn.k_proj.out_features
    else:
        raise HarpError(f"Layer {i}'s attention is a {type(attn).__name__}, which the export does not know.")
    if (queries, keys) != (stock.q_proj.out_features, stock.k_proj.out_features):
        change |= {"num_attention_heads": queries // stock.head_dim, "num_key_value_heads": keys // stock.head_dim}
    if attn.o_proj.bias is not None and stock.o_proj.bias is None:
        change["o_proj_bias"] = True
    return change


def _mlp(mlp: nn.Module, stock: nn.Module) -> dict:
    change = {}
    if mlp.down_proj.in_features != stock.down_proj.in_features:
        change["intermediate_size"] = mlp.down_proj.in_features
    if mlp.down_proj.bias is not None and stock.down_proj.bias is None:
        change["down_proj_bias"] = True
    return change
