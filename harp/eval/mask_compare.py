"""Does the non-linear objective win? `attn_mask` against `wanda_qk` at equal q/k sparsity.

Both methods score the same q/k weights from the same calibration inputs (attn_mask's masks ranked
both ways, by M and by M * |W|); at each sparsity all are binarised with the same code, and two
numbers are measured for each:
- the attention-matrix error per layer, ||A_pruned - A||_F / ||A||_F over every head and calibration
  sequence (each layer on the dense model's inputs, the objective `attn_mask` minimises), and overall
  (the squared errors and norms summed over layers before the ratio);
- the held-out perplexity of the model with every layer masked.
The mask optimisation runs once: the masks do not depend on the sparsity (`harp.pruning.attn_mask`).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from harp.config import MASK_RANKINGS, MaskConfig
from harp.eval.perplexity import perplexity
from harp.methods import MASK_BASELINE, MASKS_COMPARED, UNPRUNED
from harp.pruning import attn_mask, qk_masks, wanda_qk
from harp.pruning.params import decoder_linear_params


@torch.no_grad()
def attention_errors(
    model: nn.Module,
    inputs: dict[int, qk_masks.AttentionInputs],
    dense: dict[int, torch.Tensor],
    masks: dict[qk_masks.Key, torch.Tensor],
) -> dict[int, tuple[float, float]]:
    """Per layer: (squared Frobenius error of the masked attention, squared norm of the `dense` one)."""
    out = {}
    for layer, x in inputs.items():
        attn = qk_masks.attention_of(model, layer)
        wq, wk = (getattr(attn, p).weight.float() * masks[(layer, p)] for p in qk_masks.PROJECTIONS)
        diff = qk_masks.attention_matrix(attn, x, wq, wk) - dense[layer]
        out[layer] = (diff.double().pow(2).sum().item(), dense[layer].double().pow(2).sum().item())
    return out


def compare(
    model: nn.Module,
    calibration: torch.Tensor,
    heldout: torch.Tensor,
    settings: MaskConfig,
    window: int,
    stride: int,
    progress: bool = False,
) -> tuple[list[dict], dict[str, float]]:
    """Rows `{method, rank_by, sparsity, layer, metric, value, pruning_ratio}` (layer None: overall;
    pruning_ratio: share of all decoder linear weights zeroed) for dense, wanda_qk and attn_mask ranked both
    ways (`rank_by`: one optimisation, two binarisations) at every sparsity of `settings.compare` (0.5 alone
    for 2:4), and the seconds each method took to score."""
    layers = qk_masks.masked_layers(model, settings)
    inputs = qk_masks.capture_inputs(model, calibration, layers)
    with torch.no_grad():  # the dense attention, once: every method and sparsity is measured against it
        dense = {
            layer: qk_masks.attention_matrix(qk_masks.attention_of(model, layer), x) for layer, x in inputs.items()
        }
    start = time.perf_counter()
    scores = {(MASK_BASELINE, None): wanda_qk.wanda_scores(model, inputs, settings)}
    seconds = {MASK_BASELINE: time.perf_counter() - start}
    start = time.perf_counter()
    masks, _ = attn_mask.optimise(model, inputs, settings)
    seconds[MASKS_COMPARED] = time.perf_counter() - start
    scores |= {(MASKS_COMPARED, rank): attn_mask.ranked(model, masks, rank, {}) for rank in MASK_RANKINGS}
    dense_ppl = perplexity(model, heldout, window, stride, progress=progress)["perplexity"]
    weights = decoder_linear_params(model)
    rows = [
        {"method": UNPRUNED, "rank_by": None, "sparsity": 0.0, "layer": None, "metric": "perplexity"}
        | {"value": dense_ppl, "pruning_ratio": 0.0}
    ]
    originals = {k: getattr(qk_masks.attention_of(model, k[0]), k[1]).weight.detach().clone() for k in masks}
    for sparsity in [0.5] if settings.pattern == "2:4" else settings.compare:
        for (name, rank), scored in scores.items():
            keep, dropped = qk_masks.keep_masks(scored, settings.pattern, sparsity, None)
            errors = attention_errors(model, inputs, dense, keep)
            base = {"method": name, "rank_by": rank, "sparsity": sparsity, "metric": "attn_error"}
            base |= {"pruning_ratio": dropped / weights}
            rows += [base | {"layer": layer, "value": math.sqrt(e / n)} for layer, (e, n) in errors.items()]
            total_e, total_n = (sum(v[i] for v in errors.values()) for i in (0, 1))
            rows.append(base | {"layer": None, "value": math.sqrt(total_e / total_n)})
            qk_masks.zero_masked(model, keep)
            ppl = perplexity(model, heldout, window, stride, progress=progress)["perplexity"]
            rows.append(base | {"layer": None, "metric": "perplexity", "value": ppl})
            with torch.no_grad():
                for (layer, proj), weight in originals.items():
                    getattr(qk_masks.attention_of(model, layer), proj).weight.copy_(weight)
    return rows, seconds
