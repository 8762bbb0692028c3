"""Speed and memory of the original vs the pruned model (the paper's Figure 3), and the FLOP bound.

Speedup convention, used for the measurement and the bound alike, so `speedup / bound` is the share
of the ideal speedup that is realised:
- measured: `t_original / t_pruned - 1` (prefill), `tokens_per_s_pruned / tokens_per_s_original - 1`
  (decode, the same quantity); 0.25 means the pruned model is 25% faster.
- bound: `FLOPs_original / FLOPs_pruned - 1`, from `forward_flops` on both models. It assumes time
  proportional to FLOPs, which holds for long prefills on a GPU. It is a guide, not a law: decoding
  one token is memory-bound, and where the removed work (RoPE, SDPA, cache updates) runs less
  efficiently per FLOP than the matmuls that stay, as in small models on a CPU, the measured
  speedup can exceed it.

Timing runs on random weights built from the architecture by default: the time of a forward does
not depend on the weights' values, so the four paper models need no download.
"""

from __future__ import annotations

import copy
import gc
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from harp.models.adapters import decoder_layers
from harp.models.loading import DTYPES

PHASES = ("prefill", "decode")


# --- the analytic bound ----------------------------------------------------------------------------
def attention_windows(config) -> list[int | None]:
    """Per layer, how many past tokens attention reads at most (None: all of them).

    Gemma-2 alternates sliding-window and full layers (`layer_types`); Mistral-style configs apply
    `sliding_window` to every layer; Llama and Qwen2 (as configured) attend to everything.
    """
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if types:
        return [window if kind == "sliding_attention" else None for kind in types]
    return [window] * config.num_hidden_layers


def attended_positions(start: int, end: int, window: int | None) -> int:
    """Sum over the tokens at positions start+1..end of how many positions each attends to (causal)."""

    def prefix(n: int) -> int:  # sum_{t=1}^{n} min(t, window)
        if window is None or n <= window:
            return n * (n + 1) // 2
        return window * (window + 1) // 2 + (n - window) * window

    return prefix(end) - prefix(start)


def forward_flops(model: nn.Module, start: int, end: int, logits: int = 1) -> int:
    """Multiply-add FLOPs (2 per MAC) of one sequence's forward over positions start+1..end.

    `start` tokens are already in the KV cache (0 for a prefill); `logits` rows of the LM head are
    computed (1 for a prefill, as `generate` does; one per token when decoding). Counted: every
    `nn.Linear` in the decoder layers (q, k, v, o, MLP: whatever the pruning left), the attention
    scores `q.k` and the weighted sum of values (2 * query width and 2 * value width per attended
    position) in layers that still have queries and keys, and the LM head. Ignored: norms, RoPE,
    softmax, activations, embedding look-up (elementwise, small). It reads the module shapes, so it
    prices any pruning (HARP layers, removed heads, narrower MLPs) without knowing the method.
    """
    tokens = end - start
    total = 2 * model.get_output_embeddings().weight.numel() * logits
    for layer, window in zip(decoder_layers(model), attention_windows(model.config)):
        total += 2 * tokens * sum(m.weight.numel() for m in layer.modules() if isinstance(m, nn.Linear))
        attn = layer.self_attn
        if hasattr(attn, "q_proj") and hasattr(attn, "k_proj"):
            width = attn.q_proj.out_features + attn.o_proj.in_features  # scores + weighted sum of values
            total += 2 * width * attended_positions(start, end, window)
    return total


def bound(flops_original: int, flops_pruned: int) -> float:
    """The speedup if time were proportional to FLOPs (same convention as the measured speedup)."""
    return flops_original / flops_pruned - 1.0


# --- building and measuring ------------------------------------------------------------------------
def random_model(config, dtype: str, device: str, attn_implementation: str | None = None) -> nn.Module:
    """A model of `config`'s architecture with random weights, initialised directly on `device`."""
    from transformers import AutoModelForCausalLM

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=DTYPES[dtype], **kwargs)
    return model.eval()


def kv_cache_bytes(cache) -> int:
    """Bytes of the key and value tensors a HF cache actually stores (pruned HARP layers: none)."""
    total = 0
    for layer in getattr(cache, "layers", []):
        for tensor in (getattr(layer, "keys", None), getattr(layer, "values", None)):
            if isinstance(tensor, torch.Tensor):
                total += tensor.numel() * tensor.element_size()
    return total


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: str) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    result = fn()
    _sync(device)
    return time.perf_counter() - start, result


def _prefill(model: nn.Module, ids: torch.Tensor):
    return model(ids, use_cache=True, logits_to_keep=1)


def _decode(model: nn.Module, out, steps: int, prompt_len: int):
    """`steps` greedy tokens, one cached forward each, after the prefill output `out`.

    Positions are passed explicitly: HF infers them from layer 0's cache, which is empty when
    layer 0 is pruned (the bottom-layers ablation).
    """
    cache = out.past_key_values
    for step in range(steps):
        token = out.logits[:, -1:].argmax(-1)
        position = torch.full_like(token, prompt_len + step)
        out = model(token, position_ids=position, past_key_values=cache, use_cache=True)
    return out


def state_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers (what it holds before any input arrives)."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def _run_once(model: nn.Module, ids: torch.Tensor, phase: str, decode_tokens: int, device: str):
    """`(seconds, extra peak bytes, output)` of one timed phase.

    prefill: one cached forward over `ids`. decode: `decode_tokens` greedy steps after such a
    prefill (the prefill is not timed). The extra peak is CUDA's allocator peak above what was
    allocated before the phase (activations, cache); None on CPU, which has no allocator peak.
    """
    cuda = device.startswith("cuda")
    gc.collect()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    if phase == "prefill":
        elapsed, out = _timed(lambda: _prefill(model, ids), device)
    else:
        first = _prefill(model, ids)
        elapsed, out = _timed(lambda: _decode(model, first, decode_tokens, ids.shape[1]), device)
    return elapsed, (torch.cuda.max_memory_allocated() - base) if cuda else None, out


def phase_flops(model: nn.Module, seq_len: int, phase: str, decode_tokens: int) -> int:
    if phase == "prefill":
        return forward_flops(model, 0, seq_len, logits=1)
    return forward_flops(model, seq_len, seq_len + decode_tokens, logits=decode_tokens)


@torch.inference_mode()
def benchmark(
    model: nn.Module,
    prune: Callable[[nn.Module], object] | None,
    seq_lens: list[int],
    *,
    repeats: int,
    warmup: int,
    decode_tokens: int,
    batch_size: int,
    device: str,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict]:
    """Rows (one per variant, phase and length) comparing `model` with a pruned copy of it.

    `prune` prunes a deep copy in place. The two variants run alternately, repeat by repeat, so
    drift in machine load (shared CPUs, GPU clocks) hits both alike; the median over `repeats`
    runs after `warmup` untimed ones is reported. peak_mem_bytes = the variant's own weights and
    buffers + the extra CUDA peak of the phase, i.e. what it would need alone (None on CPU).
    kv_cache_bytes: the cache after the last run (decode: prompt + generated tokens).
    `prune=None` (the dense method): the pruned model is the original; it is measured once and its
    rows are repeated as `pruned`, with speedup and bound 0 (timing it twice would only measure noise).
    """
    variants = {"original": model}
    if prune is not None:
        variants["pruned"] = copy.deepcopy(model)
        prune(variants["pruned"])
    generator = torch.Generator().manual_seed(seed)
    rows: dict[str, list[dict]] = {name: [] for name in variants}
    for n in seq_lens:
        ids = torch.randint(model.config.vocab_size, (batch_size, n), generator=generator).to(device)
        for phase in PHASES:
            progress(f"{phase} {n}")
            times: dict[str, list[float]] = {name: [] for name in variants}
            last: dict[str, tuple[int | None, int]] = {}  # name -> (extra peak, KV-cache bytes) of its last run
            for i in range(warmup + repeats):
                for name, m in variants.items():
                    elapsed, extra, out = _run_once(m, ids, phase, decode_tokens, device)
                    last[name] = (extra, kv_cache_bytes(out.past_key_values))
                    del out
                    if i >= warmup:
                        times[name].append(elapsed)
            tokens = batch_size * (n if phase == "prefill" else decode_tokens)
            for name, m in variants.items():
                median, (extra, kv) = statistics.median(times[name]), last[name]
                rows[name].append(
                    {
                        "variant": name,
                        "phase": phase,
                        "seq_len": n,
                        "median_s": median,
                        "min_s": min(times[name]),  # the spread of the repeats: Figure 3's error bars
                        "max_s": max(times[name]),
                        "tokens_per_s": tokens / median,
                        "peak_mem_bytes": None if extra is None else state_bytes(m) + extra,
                        "kv_cache_bytes": kv,
                        "flops": phase_flops(m, n, phase, decode_tokens),
                    }
                )
    original = rows["original"]
    pruned = rows.get("pruned") or [row | {"variant": "pruned"} for row in original]
    for before, after in zip(original, pruned):
        before |= {"speedup": 0.0, "bound": 0.0}
        after |= {
            "speedup": after["tokens_per_s"] / before["tokens_per_s"] - 1.0,
            "bound": bound(before["flops"], after["flops"]),
        }
    return original + pruned
