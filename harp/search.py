"""Greedy, layer-wise search of HARP's alphas, minimising calibration perplexity.

Layers are visited one at a time (by default from the last layer down, the order of the published
lists). Visited layers keep their chosen alpha; unvisited layers stay dense. For each candidate
alpha the calibration perplexity is measured and the lowest wins (ties go to the larger alpha).

Fast by construction: while layer l is searched nothing below l changes, so the hidden states
entering l are computed once and each candidate runs only layers l..N-1 plus the head. The
per-layer call arguments (causal mask, rotary embeddings) are captured from one real forward
pass, so the cached path calls the very same modules with the very same inputs as a full forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from harp.config import DEFAULT_GRID
from harp.errors import HarpError
from harp.layers import pruned_layers
from harp.models.adapters import adapter_for, decoder_layers, logits_from_hidden
from harp.pruning.harp import HarpSlot


@dataclass
class SearchResult:
    alphas: dict[int, float]
    dense_perplexity: float
    trace: list[dict] = field(default_factory=list)  # rows: {"layer", "alpha", "perplexity", "step"}

    @property
    def perplexity(self) -> float:
        """Calibration perplexity with every searched alpha applied."""
        last = self.trace[-1]["layer"]
        return min(r["perplexity"] for r in self.trace if r["layer"] == last)


def _nll(logits: torch.Tensor, input_ids: torch.Tensor) -> float:
    """Summed next-token negative log-likelihood of one chunk, in float64."""
    logits = logits[:, :-1].float()
    return (
        torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), input_ids[:, 1:].reshape(-1).to(logits.device), reduction="sum"
        )
        .double()
        .item()
    )


class _Evaluator:
    """Calibration perplexity of the model's current state, with or without the prefix cache."""

    def __init__(self, model: nn.Module, chunks: list[torch.Tensor], layers_in_play: list[int]):
        self.model, self.chunks = model, chunks
        self.layers = decoder_layers(model)
        self.tokens = sum(c[:, 1:].numel() for c in chunks)
        self.base = min(layers_in_play)
        self.inputs: list[torch.Tensor] = []  # per chunk: hidden states entering `self.base`
        self.kwargs: list[dict[int, dict]] = []  # per chunk: call kwargs of every layer >= base

    def _device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def full(self) -> float:
        """Plain full forward over every chunk (the reference the cached path must equal)."""
        nll = sum(_nll(self.model(c.to(self._device()), use_cache=False).logits, c) for c in self.chunks)
        return math.exp(nll / self.tokens)

    def capture(self) -> float:
        """One full forward that records what enters the layers in play; returns its perplexity."""
        chunk_kwargs: dict[int, dict] = {}

        def hook(idx):
            def record(module, args, kwargs):
                if idx == self.base:
                    self.inputs.append(args[0] if args else kwargs["hidden_states"])
                chunk_kwargs[idx] = {k: v for k, v in kwargs.items() if k not in ("hidden_states", "past_key_values")}

            return record

        handles = [
            self.layers[i].register_forward_pre_hook(hook(i), with_kwargs=True)
            for i in range(self.base, len(self.layers))
        ]
        try:
            nll = 0.0
            for c in self.chunks:
                nll += _nll(self.model(c.to(self._device()), use_cache=False).logits, c)
                self.kwargs.append(chunk_kwargs)
                chunk_kwargs = {}
        finally:
            for h in handles:
                h.remove()
        return math.exp(nll / self.tokens)

    def prefix(self, start: int) -> list[torch.Tensor]:
        """Hidden states entering layer `start` under the current configuration of the layers below."""
        states = []
        for h, kw in zip(self.inputs, self.kwargs):
            for i in range(self.base, start):
                h = self.layers[i](h, **kw[i])
            states.append(h)
        return states

    def from_layer(self, start: int, states: list[torch.Tensor]) -> float:
        """Perplexity running only layers `start`.. and the head from cached `states`."""
        nll = 0.0
        for h, kw, c in zip(states, self.kwargs, self.chunks):
            for i in range(start, len(self.layers)):
                h = self.layers[i](h, **kw[i])
            nll += _nll(logits_from_hidden(self.model, h), c)
        return math.exp(nll / self.tokens)


def _check_inputs(model: nn.Module, input_ids: torch.Tensor, layers: list[int], total: int, batch_size: int) -> None:
    """Calibration ids the model can read and layers it has, checked before any forward pass."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.size(1) < 2:
        raise HarpError("Calibration input_ids must be a (num_sequences, seq_len >= 2) tensor of token ids.")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise HarpError(f"Calibration input_ids must be integer token ids, not {input_ids.dtype}.")
    vocab = model.get_input_embeddings().num_embeddings
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab):
        raise HarpError(
            f"Calibration token ids must lie in 0..{vocab - 1} (the model's vocabulary), "
            f"got {int(input_ids.min())}..{int(input_ids.max())}."
        )
    if not layers or len(set(layers)) != len(layers) or any(not 0 <= i < total for i in layers):
        raise HarpError(f"layers must be distinct indices in 0..{total - 1}, got {list(layers)}.")
    if batch_size < 1:
        raise HarpError(f"batch_size is {batch_size}; it must be at least 1.")


@torch.inference_mode()
def search_alphas(
    model: nn.Module,
    input_ids: torch.Tensor,
    num_layers: int,
    grid: tuple[float, ...] | list[float] | None = None,
    order: str = "top_down",
    batch_size: int = 8,
    cached: bool = True,
    layers: list[int] | None = None,
    progress: bool = True,
) -> SearchResult:
    """Greedy per-layer alpha search over the top `num_layers` layers (or explicit `layers`).

    `input_ids` is a (num_sequences, seq_len) tensor of calibration tokens, processed in chunks of
    `batch_size` sequences. `cached=False` runs a full forward per candidate (the slow reference).
    The model is left dense; apply the result with `apply_harp(model, result.alphas)`.
    """
    adapter = adapter_for(model)
    all_layers = decoder_layers(model)
    if layers is None:
        layers = pruned_layers(len(all_layers), num_layers)
    grid = sorted({float(a) for a in (grid if grid is not None else DEFAULT_GRID)}, reverse=True)
    if not grid or any(not 0.0 <= a <= 1.0 for a in grid):
        raise HarpError(f"The alpha grid must be non-empty with values in [0, 1], got {grid}.")
    if order not in ("top_down", "bottom_up"):
        raise HarpError(f"Unknown search order {order!r}; choose top_down or bottom_up.")
    _check_inputs(model, input_ids, layers, len(all_layers), batch_size)
    visit = sorted(layers, reverse=(order == "top_down"))

    was_training = model.training
    model.eval()
    chunks = list(input_ids.split(batch_size))
    evaluator = _Evaluator(model, chunks, visit)
    slots = {i: HarpSlot(all_layers[i], adapter) for i in visit}
    dense_ppl = evaluator.capture() if cached else evaluator.full()
    alphas: dict[int, float] = {}
    trace: list[dict] = []
    bar = tqdm(total=len(visit) * len(grid), desc="alpha search", disable=not progress)
    try:
        for step, idx in enumerate(visit):
            states = evaluator.prefix(idx) if cached else None
            best_alpha, best_ppl = None, math.inf
            for alpha in grid:  # descending: a later, smaller alpha must be strictly better
                slots[idx].set(alpha)
                ppl = evaluator.from_layer(idx, states) if cached else evaluator.full()
                trace.append({"step": step, "layer": idx, "alpha": alpha, "perplexity": ppl})
                if ppl < best_ppl:
                    best_alpha, best_ppl = alpha, ppl
                bar.update()
                bar.set_postfix(layer=idx, best=f"{best_alpha}:{best_ppl:.3f}")
            if best_alpha is None:
                raise HarpError(f"Every candidate alpha for layer {idx} gave a non-finite perplexity.")
            slots[idx].set(best_alpha)
            alphas[idx] = best_alpha
    finally:
        bar.close()
        for slot in slots.values():
            slot.set(None)
        model.train(was_training)
    return SearchResult(alphas=alphas, dense_perplexity=dense_ppl, trace=trace)
