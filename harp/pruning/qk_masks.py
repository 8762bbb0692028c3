"""Unstructured masks on the query/key projections, shared by `attn_mask` and its baseline `wanda_qk`.

The two methods differ only in the score each q/k weight gets; everything else lives here: the
attention inputs captured on calibration data, the model's own attention matrix with any q/k
weights, the per-row binarisation (unstructured or 2:4), the budget spread evenly over rows, and
the plan: keep-masks bit-packed in the plan's tensor file (one bit per weight), re-applied by zeroing.

Zeroed weights stay in the matrices (nothing is removed, the KV cache keeps its size); the plan's
parameter counts are nonzero counts (`harp.pruning.params`), so its pruning ratio counts the zeros.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from harp.config import MaskConfig
from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import Plan, PruneInputs, build_plan

PROJECTIONS = ("q_proj", "k_proj")
BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)

Key = tuple[int, str]  # (layer, "q_proj" | "k_proj")


@dataclass
class AttentionInputs:
    """What enters one layer's attention on the calibration data (float32)."""

    hidden: torch.Tensor  # (batch, seq, hidden): after the layer's input norm
    cos: torch.Tensor  # the model's rotary embedding for these positions
    sin: torch.Tensor


@dataclass
class Scores:
    """One method's verdict on every masked q/k matrix: higher = keep; ties broken by `tiebreak` (higher = keep)."""

    score: dict[Key, torch.Tensor]
    tiebreak: dict[Key, torch.Tensor]
    details: dict  # JSON-serialisable, recorded in the plan


def attention_of(model: nn.Module, layer: int) -> nn.Module:
    attn = decoder_layers(model)[layer].self_attn
    if not all(hasattr(attn, p) for p in PROJECTIONS):
        raise HarpError(f"Layer {layer} has no query/key projections left to mask (already pruned?).")
    return attn


def masked_layers(model: nn.Module, settings: MaskConfig) -> list[int]:
    """The layers `settings.layers` names (all when null), checked against the model."""
    n = len(decoder_layers(model))
    layers = list(range(n)) if settings.layers is None else sorted(set(settings.layers))
    if not layers or any(not 0 <= i < n for i in layers):
        raise HarpError(f"method.mask.layers is {settings.layers}; the model has decoder layers 0..{n - 1}.")
    for i in layers:
        settings.check_width(attention_of(model, i).q_proj.in_features)
    return layers


@torch.no_grad()
def capture_inputs(model: nn.Module, ids: torch.Tensor, layers: list[int]) -> dict[int, AttentionInputs]:
    """One forward pass over `ids`, recording each layer's attention input and rotary embedding (pre-hooks).

    All sequences at once (the paper's 8): the mask loss is full-batch, so `method.batch_size` does not apply."""
    if ids is None or ids.dim() != 2 or ids.size(1) < 2:
        raise HarpError(
            "This method needs calibration data ((sequences, seq_len >= 2) token ids): run calibrate first."
        )
    captured: dict[int, AttentionInputs] = {}

    def hook(i):
        def record(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            cos, sin = kwargs["position_embeddings"]
            captured[i] = AttentionInputs(hidden.detach().float(), cos.detach().float(), sin.detach().float())

        return record

    handles = [attention_of(model, i).register_forward_pre_hook(hook(i), with_kwargs=True) for i in layers]
    try:
        model(ids.to(model.get_input_embeddings().weight.device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return captured


def _sliding_window(attn: nn.Module) -> int | None:
    """The layer's sliding window (Gemma-2/Qwen2 per layer, Mistral for the model), None for full attention."""
    if hasattr(attn, "sliding_window"):
        return attn.sliding_window
    return getattr(attn.config, "sliding_window", None)


def attention_matrix(
    attn: nn.Module, x: AttentionInputs, wq: torch.Tensor | None = None, wk: torch.Tensor | None = None
) -> torch.Tensor:
    """(batch, query heads, seq, seq) float32 attention probabilities of `attn` on `x`, with q/k weights
    `wq`/`wk` (default: the module's). The model's own RoPE function, scaling (Gemma-2's
    query_pre_attn_scalar), logit softcapping and sliding window; q/k biases (Qwen2) unmasked."""
    rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    hd = attn.head_dim
    wq = attn.q_proj.weight.float() if wq is None else wq
    wk = attn.k_proj.weight.float() if wk is None else wk
    bias = lambda p: None if p.bias is None else p.bias.float()  # noqa: E731
    h = x.hidden.to(wq.device)
    batch, seq = h.shape[:2]
    q = nn.functional.linear(h, wq, bias(attn.q_proj)).view(batch, seq, -1, hd).transpose(1, 2)
    k = nn.functional.linear(h, wk, bias(attn.k_proj)).view(batch, seq, -1, hd).transpose(1, 2)
    q, k = rope(q, k, x.cos.to(wq.device), x.sin.to(wq.device))
    k = k.repeat_interleave(attn.num_key_value_groups, dim=1)  # repeat_kv: query head h reads key head h // n_rep
    logits = q @ k.transpose(-1, -2) * attn.scaling
    cap = getattr(attn, "attn_logit_softcapping", None)
    if cap is not None:
        logits = torch.tanh(logits / cap) * cap
    pos = torch.arange(seq, device=logits.device)
    allowed = pos[None, :] <= pos[:, None]
    window = _sliding_window(attn)
    if window is not None:
        allowed &= pos[None, :] > pos[:, None] - window
    return torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)


# --- binarisation ----------------------------------------------------------------------------------------------
def removal_counts(rows: int, width: int, total: int) -> torch.Tensor:
    """Weights to remove per row so that `total` are removed over `rows` rows of `width`, spread evenly
    (row r removes floor((r+1)T/R) - floor(rT/R): every row s*width rounded either way, the sum exact)."""
    if not 0 <= total < rows * width:
        raise HarpError(
            f"The budget of {total:,} weights is not below the {rows * width:,} query/key weights that can be "
            "masked: mask more layers or lower the budget."
        )
    edges = (torch.arange(rows + 1, dtype=torch.float64) * total / rows).floor().long()
    return edges[1:] - edges[:-1]


def keep_mask(
    score: torch.Tensor, removals: torch.Tensor | None, pattern: str, tiebreak: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean keep-mask of a (rows, width) matrix: drop each row's `removals[row]` lowest scores, or with
    `pattern="2:4"` the 2 lowest of every 4 consecutive inputs. Ties go by `tiebreak`, then by position."""
    rows, width = score.shape
    if pattern == "2:4":
        if width % 4:
            raise HarpError(f"pattern 2:4 needs an input width divisible by 4, got {width}.")
        groups = lambda t: None if t is None else t.reshape(-1, 4)  # noqa: E731
        kept = keep_mask(groups(score), torch.full((rows * width // 4,), 2), "unstructured", groups(tiebreak))
        return kept.reshape(rows, width)
    order = torch.arange(width, device=score.device).expand(rows, width)
    if tiebreak is not None:
        order = torch.argsort(tiebreak, dim=-1, stable=True)
    order = order.gather(-1, torch.argsort(score.gather(-1, order), dim=-1, stable=True))  # lowest first
    dropped = torch.arange(width, device=score.device)[None, :] < removals.to(score.device)[:, None]
    return torch.empty_like(dropped).scatter_(-1, order, ~dropped)


def keep_masks(
    scores: Scores, pattern: str, sparsity: float | None, budget: int | None
) -> tuple[dict[Key, torch.Tensor], int]:
    """Keep-masks of every scored matrix and the number of weights they drop: `sparsity` of every row,
    or (sparsity None) exactly `budget` weights spread uniformly over all scored rows."""
    keys = sorted(scores.score)
    shapes = [scores.score[k].shape for k in keys]
    rows, width = sum(s[0] for s in shapes), shapes[0][1]
    if pattern == "2:4":
        total = rows * width // 2
    elif sparsity is not None:
        total = round(sparsity * rows * width)
    elif budget is None:
        raise HarpError("Masking needs method.mask.sparsity or a parameter budget, and neither was given.")
    else:
        total = budget
    per_row = removal_counts(rows, width, total) if pattern != "2:4" else None
    masks, start = {}, 0
    for key, (n, _) in zip(keys, shapes):
        removals = None if per_row is None else per_row[start : start + n]
        masks[key] = keep_mask(scores.score[key], removals, pattern, scores.tiebreak.get(key))
        start += n
    return masks, total


# --- the plan: bit-packed masks ---------------------------------------------------------------------------------
def tensor_name(layer: int, proj: str) -> str:
    return f"layers.{layer}.self_attn.{proj}.keep"


def pack(keep: torch.Tensor) -> torch.Tensor:
    """A boolean tensor as uint8 bytes, eight weights a byte (most significant bit first), zero-padded."""
    flat = keep.flatten().cpu().to(torch.uint8)
    flat = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)])
    return (flat.view(-1, 8) * BITS).sum(-1, dtype=torch.uint8)


def unpack(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The boolean tensor of `shape` that `pack` stored."""
    numel = shape.numel()
    if packed.dtype != torch.uint8 or packed.numel() != -(-numel // 8):
        raise HarpError(
            f"A stored mask holds {packed.numel()} bytes, not the {-(-numel // 8)} of a {tuple(shape)} weight."
        )
    return (packed[:, None] & BITS).ne(0).flatten()[:numel].view(shape)


@torch.no_grad()
def zero_masked(model: nn.Module, masks: Mapping[Key, torch.Tensor]) -> None:
    """Zero the q/k weights whose keep-bit is False, in place."""
    for (layer, proj), keep in masks.items():
        weight = getattr(attention_of(model, layer), proj).weight
        weight.mul_(keep.to(weight.device, weight.dtype))


def plan_masks(inp: PruneInputs, name: str, scorer: Callable[[nn.Module, dict, MaskConfig], Scores]) -> Plan:
    """The planner both mask methods share: capture inputs, score, binarise at the sparsity or budget, zero."""
    model, settings = inp.model, inp.method.mask
    before = decoder_linear_params(model)
    layers = masked_layers(model, settings)
    scores = scorer(model, capture_inputs(model, inp.calibration, layers), settings)
    masks, dropped = keep_masks(scores, settings.pattern, settings.sparsity, inp.target_removed)
    zero_masked(model, masks)
    masked = sum(m.numel() for m in masks.values())
    details = scores.details | {
        "pattern": settings.pattern,
        "sparsity": dropped / masked,
        "requested_sparsity": settings.sparsity,
        "budget": {"target_removed": inp.target_removed, "removed": dropped, "masked_weights": masked},
    }
    tensors = {tensor_name(layer, proj): pack(keep) for (layer, proj), keep in masks.items()}
    return build_plan(name, inp.source, model, before, layers, details=details, tensors=tensors)


def apply_masks(model: nn.Module, plan: Plan) -> None:
    """Re-apply a mask plan: unpack each stored keep-mask and zero the weights it drops."""
    masks = {}
    for layer in plan.layers:
        for proj in PROJECTIONS:
            name = tensor_name(layer, proj)
            if name not in plan.tensors:
                raise HarpError(f"The {plan.method} plan lacks the mask {name}; rerun the prune stage.")
            masks[(layer, proj)] = unpack(plan.tensors[name], getattr(attention_of(model, layer), proj).weight.shape)
    zero_masked(model, masks)
