"""Shared mechanics of the structured baselines: calibration statistics and physical removal.

Attention is pruned in whole key/value groups: a group is one key head, one value head and the
`n_rep` query heads that read them (with their `o_proj` columns). Removing whole groups keeps
`num_key_value_groups` (query heads per key head) unchanged, and HF attention reshapes q/k/v with
`view(..., -1, head_dim)`, so a stock attention module runs on the smaller matrices with no other
change in all four families (nothing at run time reads `config.num_attention_heads`). A layer left
without groups becomes `RemovedAttention` (or `ConstantBranch` when FLAP compensation leaves a bias).

MLP channels are intermediate neurons: rows of gate/up and columns of down_proj. Every MLP keeps at
least one channel. The same `apply_structure` re-applies a plan, so a plan on a fresh model gives the
pruned model's logits exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from harp.errors import HarpError
from harp.models.adapters import adapter_for, decoder_layers
from harp.pruning.harp import RemovedAttention, keep_cache_length


class ConstantBranch(nn.Module):
    """An attention block with every group removed but a compensation bias: it outputs the bias."""

    def __init__(self, bias: torch.Tensor, layer_idx: int):
        super().__init__()
        self.bias = nn.Parameter(bias, requires_grad=False)
        self.layer_idx = layer_idx

    def forward(self, hidden_states: torch.Tensor, *args, past_key_values=None, **kwargs) -> tuple[torch.Tensor, None]:
        keep_cache_length(past_key_values, self.layer_idx, hidden_states)
        return self.bias.to(hidden_states.dtype).expand_as(hidden_states), None


# --- calibration statistics ----------------------------------------------------------------------
@dataclass
class ChannelStats:
    """Running float64 moments of a linear layer's input channels over calibration tokens, and FLAP's
    running fluctuation estimate over sequences (`fluctuation`)."""

    total: torch.Tensor | None = None
    squares: torch.Tensor | None = None
    absolute: torch.Tensor | None = None
    count: int = 0
    sequences: int = 0
    sequence_mean: torch.Tensor | None = None  # FLAP's running mean of per-sequence token means
    flap_fluctuation: torch.Tensor | None = None

    def add(self, x: torch.Tensor) -> None:
        """Add a batch of inputs, (sequences, tokens, channels) or (tokens, channels) for one sequence."""
        sequences = (x if x.dim() == 3 else x.unsqueeze(0)).double()
        x = sequences.reshape(-1, x.shape[-1])
        moments = (x.sum(0), (x * x).sum(0), x.abs().sum(0))
        if self.total is None:
            self.total, self.squares, self.absolute = (m.cpu() for m in moments)
        else:
            self.total += moments[0].cpu()
            self.squares += moments[1].cpu()
            self.absolute += moments[2].cpu()
        self.count += x.shape[0]
        self._add_flap(sequences.sum(1).cpu(), (sequences * sequences).sum(1).cpu(), sequences.shape[1])

    def _add_flap(self, sums: torch.Tensor, squares: torch.Tensor, tokens: int) -> None:
        """FLAP's update (its layerwrapper, one sequence per call): the mean moves first, and the squared
        deviations from that *new* mean (the "old" mean it subtracts is the same tensor) are added with
        weight 1/(n+1) after the sum so far is rescaled by (n-1)/n; the first sequence adds nothing."""
        for seq_sum, seq_squares in zip(sums, squares):
            n = self.sequences
            mean = seq_sum / tokens if n == 0 else (self.sequence_mean * n + seq_sum / tokens) / (n + 1)
            deviations = seq_squares - 2 * mean * seq_sum + tokens * mean * mean  # sum over tokens of (x - mean)^2
            if n == 0:
                self.flap_fluctuation = torch.zeros_like(mean)
            else:
                self.flap_fluctuation = self.flap_fluctuation * (n - 1) / n + deviations / (n + 1)
            self.sequence_mean, self.sequences = mean, n + 1

    @property
    def mean(self) -> torch.Tensor:
        return self.total / self.count

    @property
    def variance(self) -> torch.Tensor:
        """Per-channel sample variance over all calibration tokens (exact)."""
        return (self.squares - self.count * self.mean**2).clamp_min(0) / max(self.count - 1, 1)

    @property
    def fluctuation(self) -> torch.Tensor:
        """Per-channel fluctuation as FLAP's code estimates it (`_add_flap`): not the variance, see there."""
        return self.flap_fluctuation

    @property
    def norm(self) -> torch.Tensor:
        """Per-channel L2 norm over all calibration tokens (Wanda's ||X_j||)."""
        return self.squares.sqrt()

    @property
    def mean_abs(self) -> torch.Tensor:
        return self.absolute / self.count


@dataclass
class LayerStats:
    attn_in: ChannelStats = field(default_factory=ChannelStats)  # input of o_proj
    mlp_in: ChannelStats = field(default_factory=ChannelStats)  # input of down_proj
    head_l1: torch.Tensor | None = None  # per query head: summed L1 norm of its o_proj contribution
    cosine: float = 0.0  # summed per-token cosine(block input, block output)
    tokens: int = 0


def _branch_end(layer: nn.Module, adapter) -> nn.Module:
    """The module whose output is the attention branch added to the residual stream."""
    return getattr(layer, adapter.branch_norm) if adapter.branch_norm else layer.self_attn


def stat_hooks(
    model: nn.Module,
    stats: list[LayerStats],
    only: int | None = None,
    head_contrib: bool = False,
    block_similarity: bool = False,
) -> list:
    """Register hooks recording the input statistics of every o_proj and down_proj (of layer `only`, when
    given) into `stats`; returns the handles to remove. Options as in `collect_stats`."""
    adapter = adapter_for(model)
    handles, block_in = [], {}

    def on_o_proj(i, o_proj, head_dim):
        def hook(module, args):
            x = args[0]
            stats[i].attn_in.add(x)
            if head_contrib:
                heads = x.reshape(-1, x.shape[-1]).view(-1, x.shape[-1] // head_dim, head_dim)
                weight = o_proj.weight.view(o_proj.out_features, -1, head_dim)
                l1 = torch.stack(
                    [(heads[:, h] @ weight[:, h].T).abs().sum(-1).sum().double().cpu() for h in range(heads.shape[1])]
                )
                stats[i].head_l1 = l1 if stats[i].head_l1 is None else stats[i].head_l1 + l1

        return hook

    def on_layer_in(i):
        def hook(module, args, kwargs):
            block_in[i] = args[0] if args else kwargs["hidden_states"]

        return hook

    def on_branch_out(i):
        def hook(module, args, output):
            branch = output[0] if isinstance(output, tuple) else output
            x = block_in.pop(i)
            cos = torch.nn.functional.cosine_similarity(x.float(), (x + branch).float(), dim=-1)
            stats[i].cosine += cos.double().sum().item()
            stats[i].tokens += cos.numel()

        return hook

    for i, layer in enumerate(decoder_layers(model)):
        if only is not None and i != only:
            continue
        attn = layer.self_attn
        if hasattr(attn, "o_proj") and hasattr(attn, "q_proj"):
            handles.append(attn.o_proj.register_forward_pre_hook(on_o_proj(i, attn.o_proj, attn.head_dim)))
        handles.append(layer.mlp.down_proj.register_forward_pre_hook(lambda m, args, i=i: stats[i].mlp_in.add(args[0])))
        if block_similarity:
            handles.append(layer.register_forward_pre_hook(on_layer_in(i), with_kwargs=True))
            handles.append(_branch_end(layer, adapter).register_forward_hook(on_branch_out(i)))
    return handles


def check_calibration(calibration: torch.Tensor | None) -> None:
    if calibration is None or calibration.numel() == 0:
        raise HarpError("This method needs calibration data: run the calibrate stage first.")


@torch.no_grad()
def collect_stats(
    model: nn.Module,
    calibration: torch.Tensor,
    batch_size: int = 8,
    head_contrib: bool = False,
    block_similarity: bool = False,
) -> list[LayerStats]:
    """Forward the calibration ids once, recording input statistics of every o_proj and down_proj.

    `head_contrib` also records AMP's per-head o_proj contribution norms; `block_similarity` the
    cosine between each attention block's input and its residual output (attention-layer drop).
    Layers whose attention was already replaced (HARP) have no o_proj statistics.
    """
    check_calibration(calibration)
    stats = [LayerStats() for _ in decoder_layers(model)]
    handles = stat_hooks(model, stats, head_contrib=head_contrib, block_similarity=block_similarity)
    device = model.get_input_embeddings().weight.device
    try:
        for chunk in calibration.split(batch_size):
            model(chunk.to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return stats


# --- physical removal ----------------------------------------------------------------------------
def _sliced(
    linear: nn.Linear,
    rows: torch.Tensor | None = None,
    cols: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> nn.Linear:
    """A new Linear holding only the given output rows / input columns (and an optional new bias)."""
    weight = linear.weight
    if rows is not None:
        weight = weight[rows.to(weight.device)]
    if cols is not None:
        weight = weight[:, cols.to(weight.device)]
    old_bias = linear.bias if rows is None or linear.bias is None else linear.bias[rows.to(weight.device)]
    if bias is None:
        bias = old_bias
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        out.weight.copy_(weight)
        if bias is not None:
            out.bias.copy_(bias.to(weight.device, weight.dtype))
    return out


def head_rows(groups: list[int], per_group: int, head_dim: int) -> torch.Tensor:
    """Row indices of the heads belonging to `groups` when each group spans `per_group` heads."""
    heads = [g * per_group + r for g in groups for r in range(per_group)]
    return torch.tensor([h * head_dim + d for h in heads for d in range(head_dim)], dtype=torch.long)


def num_groups(attn: nn.Module) -> int:
    return attn.k_proj.out_features // attn.head_dim


def prune_attention(layer: nn.Module, keep: list[int], bias: torch.Tensor | None = None) -> None:
    """Keep only key/value groups `keep` (with their query heads) of `layer.self_attn`, in place.

    `bias` replaces o_proj's bias (FLAP compensation). With no group left the block becomes
    `RemovedAttention`, or `ConstantBranch(bias)` when there is a bias to keep.
    """
    attn = layer.self_attn
    if not keep:
        weight = attn.o_proj.weight
        layer.self_attn = (
            RemovedAttention(attn.layer_idx)
            if bias is None
            else ConstantBranch(bias.to(weight.device, weight.dtype), attn.layer_idx)
        )
        return
    n_rep, hd = attn.num_key_value_groups, attn.head_dim
    q_rows, kv_rows = head_rows(keep, n_rep, hd), head_rows(keep, 1, hd)
    attn.q_proj = _sliced(attn.q_proj, rows=q_rows)
    attn.k_proj = _sliced(attn.k_proj, rows=kv_rows)
    attn.v_proj = _sliced(attn.v_proj, rows=kv_rows)
    attn.o_proj = _sliced(attn.o_proj, cols=q_rows, bias=bias)
    # informational: HF reads neither at run time, but they describe the pruned module truthfully
    attn.num_heads, attn.num_key_value_heads = len(keep) * n_rep, len(keep)


def prune_mlp(layer: nn.Module, keep: list[int], bias: torch.Tensor | None = None) -> None:
    """Keep only intermediate channels `keep` of `layer.mlp`; `bias` replaces down_proj's bias."""
    mlp = layer.mlp
    idx = torch.tensor(keep, dtype=torch.long)
    mlp.gate_proj = _sliced(mlp.gate_proj, rows=idx)
    mlp.up_proj = _sliced(mlp.up_proj, rows=idx)
    mlp.down_proj = _sliced(mlp.down_proj, cols=idx, bias=bias)
    mlp.intermediate_size = len(keep)


def attention_bias_name(layer: int) -> str:
    return f"layers.{layer}.self_attn.o_proj.bias"


def mlp_bias_name(layer: int) -> str:
    return f"layers.{layer}.mlp.down_proj.bias"


def _kept(removed: list, size: int, what: str, layer: int) -> list[int]:
    gone = set(removed)
    if len(gone) != len(removed) or any(not isinstance(r, int) or not 0 <= r < size for r in removed):
        raise HarpError(
            f"The plan removes {what} {removed} in layer {layer}, which has {size}; it does not fit this model."
        )
    return [i for i in range(size) if i not in gone]


def apply_structure(model: nn.Module, details: Mapping, tensors: Mapping[str, torch.Tensor]) -> None:
    """Remove what a plan lists: `details["removed_groups"]` / `details["removed_channels"]` map a
    layer index (str) to key/value groups / MLP channels; `tensors` hold replacement output biases."""
    layers = decoder_layers(model)
    for key, removed in details.get("removed_groups", {}).items():
        i = int(key)
        attn = layers[i].self_attn
        if not hasattr(attn, "k_proj"):
            raise HarpError(f"Layer {i} has no dense attention left to prune; the plan does not fit this model.")
        keep = _kept(removed, num_groups(attn), "key/value groups", i)
        prune_attention(layers[i], keep, tensors.get(attention_bias_name(i)))
    for key, removed in details.get("removed_channels", {}).items():
        i = int(key)
        keep = _kept(removed, layers[i].mlp.down_proj.in_features, "MLP channels", i)
        if not keep:
            raise HarpError(f"The plan removes every MLP channel of layer {i}; it is invalid.")
        prune_mlp(layers[i], keep, tensors.get(mlp_bias_name(i)))
