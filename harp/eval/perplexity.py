"""Sliding-window perplexity (WikiText-2 test for real models, the held-out corpus for the tiny one)."""

from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from harp.data.calibration import source_texts


def heldout_text(source: str) -> str:
    """The evaluation text of a source: WikiText-2's test split, or the embedded corpus's held-out split."""
    return "\n\n".join(source_texts(source, split="test"))


def heldout_ids(tokenizer, source: str, max_tokens: int | None = None) -> torch.Tensor:
    """The held-out text of `source` as one token stream, cut to its first `max_tokens` when set."""
    ids = tokenizer(heldout_text(source), return_tensors="pt", add_special_tokens=False)["input_ids"][0]
    return ids[:max_tokens] if max_tokens else ids


@torch.inference_mode()
def perplexity(model: nn.Module, input_ids: torch.Tensor, window: int, stride: int, progress: bool = True) -> dict:
    """Perplexity of a 1-D token stream; each window scores only the tokens not scored before it."""
    device = model.get_input_embeddings().weight.device
    nll, count, prev_end = 0.0, 0, 0
    n = input_ids.numel()
    starts = range(0, max(n - 1, 1), stride)
    for begin in tqdm(starts, desc="perplexity", disable=not progress):
        end = min(begin + window, n)
        ids = input_ids[begin:end].unsqueeze(0).to(device)
        logits = model(ids, use_cache=False).logits[0, :-1].float()
        targets = ids[0, 1:]
        new = end - max(prev_end, begin + 1)  # tokens (as targets) not yet scored
        losses = torch.nn.functional.cross_entropy(logits[-new:], targets[-new:], reduction="sum")
        nll += losses.double().item()
        count += new
        prev_end = end
        if end == n:
            break
    return {"perplexity": math.exp(nll / count), "tokens": count, "window": window, "stride": stride}
