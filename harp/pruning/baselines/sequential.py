"""Statistics gathered layer by layer on the model pruned so far, as FLAP's code gathers Wanda-sp's.

Layer i is scored on the hidden states that layers 0..i-1 produce *after* their own pruning: its inputs
are recorded on one pass of the dense layer i, the layer is pruned, and a second pass of the pruned layer
gives the next layer's inputs. The prefix below a layer is therefore computed once, never re-run from the
embedding. Each layer's call arguments (causal mask, rotary embeddings) are captured from one real dense
forward, so every call sees what a full forward would give it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from harp.models.adapters import decoder_layers
from harp.pruning.baselines.structures import LayerStats, check_calibration, stat_hooks


@torch.no_grad()
def layer_inputs(model: nn.Module, calibration: torch.Tensor, batch_size: int) -> tuple[list, list[dict]]:
    """Per chunk of `calibration`: the hidden states entering layer 0, and every layer's call kwargs."""
    check_calibration(calibration)
    layers = decoder_layers(model)
    states: list[torch.Tensor] = []
    kwargs: list[dict[int, dict]] = []
    current: dict[int, dict] = {}

    def record(i):
        def hook(module, args, kw):
            if i == 0:
                states.append(args[0] if args else kw["hidden_states"])
            current[i] = {k: v for k, v in kw.items() if k not in ("hidden_states", "past_key_values")}

        return hook

    handles = [layer.register_forward_pre_hook(record(i), with_kwargs=True) for i, layer in enumerate(layers)]
    device = model.get_input_embeddings().weight.device
    try:
        for chunk in calibration.split(batch_size):
            model(chunk.to(device), use_cache=False)
            kwargs.append(current)
            current = {}
    finally:
        for h in handles:
            h.remove()
    return states, kwargs


@torch.no_grad()
def layer_by_layer(
    model: nn.Module,
    calibration: torch.Tensor,
    batch_size: int,
    prune_layer: Callable[[int, list[LayerStats]], None],
) -> None:
    """For each layer from the bottom: record its input statistics on the current hidden states, call
    `prune_layer(i, stats)` (which prunes layer i in place; only `stats[i]` is filled), then run the pruned
    layer to get the next layer's hidden states."""
    layers = decoder_layers(model)
    states, kwargs = layer_inputs(model, calibration, batch_size)
    for i in range(len(layers)):
        stats = [LayerStats() for _ in layers]
        handles = stat_hooks(model, stats, only=i)
        try:
            for h, kw in zip(states, kwargs):
                layers[i](h, **kw[i])
        finally:
            for h in handles:
                h.remove()
        prune_layer(i, stats)
        outputs = (layers[i](h, **kw[i]) for h, kw in zip(states, kwargs))
        states = [out[0] if isinstance(out, tuple) else out for out in outputs]
