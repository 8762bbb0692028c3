"""Theorem 1's premise measured per decoder layer on calibration data (the diagnose stage's computation).

The paper argues that in high layers token representations grow nearly parallel (Sim(H) -> 1), so query-key
products are nearly constant and each softmax row nearly uniform: attention there does little that a value
pass-through with a rescale cannot do. Per layer, over the calibration sequences:

- `token_similarity`: Sim(H) of the paper, the mean cosine similarity between the representations of distinct
  positions i != j of one sequence at the layer's input (the residual stream entering the decoder layer),
  averaged over the sequences.
- `attention_entropy`: each causal attention row's Shannon entropy divided by the log of the number of
  positions it can see (its attention mask's visible keys), averaged over heads and over the query positions
  that see at least two; 1 = uniform attention, 0 = one position takes all.
- `passthrough_error`: the relative error ||A - alpha* P|| / ||A|| (Frobenius, over every token of every
  sequence) of replacing the attention block's output A (after o_proj) by HARP's value pass-through
  P = o_proj(repeat_kv(v_proj(x))) on the same block input x (the normed hidden state), with the least-squares
  alpha* = <A, P> / <P, P>; `passthrough_alpha` is that alpha*. For Gemma-2 both sit before its
  post-attention norm, where HARP's pass-through sits too.

Attention rows come from the attention modules' own second output, which only the eager implementation
returns; any other implementation is one sentence naming the setting that does.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from harp.errors import HarpError
from harp.models.adapters import adapter_for, decoder_layers
from harp.pruning.harp import ValuePassthrough


def token_similarity(hidden: torch.Tensor) -> torch.Tensor:
    """Per sequence of `hidden` (batch, positions, width), the mean cosine similarity over pairs of distinct
    positions: (||sum_i u_i||^2 - sum_i ||u_i||^2) / (n (n - 1)) with u_i the unit vectors (a zero vector: 0)."""
    n = hidden.shape[1]
    if n < 2:
        raise HarpError("Token similarity needs sequences of at least two positions.")
    units = nn.functional.normalize(hidden.double(), dim=-1)
    total = units.sum(dim=1).pow(2).sum(-1)
    return (total - units.pow(2).sum(dim=(1, 2))) / (n * (n - 1))


def visible_keys(mask: torch.Tensor | None, shape: torch.Size) -> torch.Tensor:
    """Which keys each query row may attend to (bool, broadcastable to the weights' `shape`), from the mask the
    attention module received: a boolean mask as is, an additive one where it is not the dtype's minimum; no
    mask: every key (what eager attention then computes)."""
    if mask is None:
        return torch.ones(shape[-2:], dtype=torch.bool)
    mask = mask[..., : shape[-2], : shape[-1]]
    return mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2


def attention_entropy(weights: torch.Tensor, visible: torch.Tensor) -> tuple[float, int]:
    """Sum and count of normalised row entropies H(row) / log(visible keys) of attention `weights` (batch, heads,
    queries, keys), over the rows that see at least two keys."""
    probs = weights.float()
    seen = visible.to(probs.device).expand_as(probs).sum(-1)
    entropy = -torch.special.xlogy(probs, probs).sum(-1)
    rows = seen >= 2
    normalised = entropy[rows] / seen[rows].double().log()
    return float(normalised.sum()), int(rows.sum())


def passthrough_fit(products: tuple[float, float, float]) -> tuple[float, float]:
    """`(alpha*, relative error)` from the sums (<A, A>, <A, P>, <P, P>): the least-squares alpha* = <A,P>/<P,P>
    and sqrt(1 - <A,P>^2 / (<A,A><P,P>)) = ||A - alpha* P|| / ||A||. A zero attention output is replaced exactly
    (error 0, alpha 0); a zero pass-through cannot fit a non-zero output (error 1, alpha 0)."""
    aa, ap, pp = products
    if aa == 0.0:
        return 0.0, 0.0
    if pp == 0.0:
        return 0.0, 1.0
    return ap / pp, math.sqrt(max(0.0, 1.0 - ap * ap / (aa * pp)))


class _LayerStats:
    """Running sums of one layer's three measurements over the calibration batches."""

    def __init__(self, layer_idx: int, attn: nn.Module):
        self.layer_idx = layer_idx
        self.passthrough = ValuePassthrough(
            attn.v_proj, attn.o_proj, attn.head_dim, attn.num_key_value_groups, layer_idx
        )
        self.similarity, self.sequences = 0.0, 0
        self.entropy, self.rows = 0.0, 0
        self.products = [0.0, 0.0, 0.0]  # <A,A>, <A,P>, <P,P>

    def input_hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        """Forward pre-hook of the decoder layer: Sim(H) of the hidden states entering it."""
        hidden = _hidden_states(args, kwargs)
        self.similarity += float(token_similarity(hidden).sum())
        self.sequences += hidden.shape[0]

    def attention_hook(self, module: nn.Module, args: tuple, kwargs: dict, output: tuple) -> None:
        """Forward hook of the attention block: the entropy of its rows and its fit by the pass-through."""
        attn_out, weights = output[0], output[1] if len(output) > 1 else None
        if weights is None:
            raise HarpError(
                f"Layer {self.layer_idx}'s attention returned no attention rows; diagnostics need the eager "
                "implementation: load the model with attn_implementation='eager' (model.attn_implementation=eager)."
            )
        total, count = attention_entropy(weights, visible_keys(kwargs.get("attention_mask"), weights.shape))
        self.entropy += total
        self.rows += count
        a, p = attn_out.double(), self.passthrough(_hidden_states(args, kwargs))[0].double()
        for i, (u, v) in enumerate(((a, a), (a, p), (p, p))):
            self.products[i] += float((u * v).sum())

    def row(self) -> dict:
        alpha, error = passthrough_fit(tuple(self.products))
        return {
            "layer": self.layer_idx,
            "token_similarity": self.similarity / self.sequences,
            "attention_entropy": self.entropy / self.rows,  # row 1 of every sequence sees two positions
            "passthrough_error": error,
            "passthrough_alpha": alpha,
        }


def _hidden_states(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


@torch.inference_mode()
def measure_layers(model: nn.Module, input_ids: torch.Tensor, batch_size: int = 8, progress: bool = True) -> list[dict]:
    """One row per decoder layer (`layer` and the measurements of the module docstring) from one forward pass
    over `input_ids` (num_sequences, seq_len >= 2), `batch_size` sequences at a time. The model is unchanged."""
    adapter_for(model)
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.size(1) < 2:
        raise HarpError("Calibration input_ids must be a (num_sequences, seq_len >= 2) tensor of token ids.")
    if batch_size < 1:
        raise HarpError(f"batch_size is {batch_size}; it must be at least 1.")
    layers = decoder_layers(model)
    stats = [_LayerStats(i, layer.self_attn) for i, layer in enumerate(layers)]
    handles = []
    for layer, s in zip(layers, stats):
        handles.append(layer.register_forward_pre_hook(s.input_hook, with_kwargs=True))
        handles.append(layer.self_attn.register_forward_hook(s.attention_hook, with_kwargs=True))
    device = model.get_input_embeddings().weight.device
    was_training = model.training
    model.eval()
    try:
        for chunk in tqdm(input_ids.split(batch_size), desc="diagnose", disable=not progress):
            model.model(chunk.to(device), use_cache=False)  # the decoder stack: no logits needed
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [s.row() for s in stats]
