"""attn_mask: prune q/k weights with a mask that keeps the softmax attention matrix (Liang et al. 2024).

"Beyond Linear Approximations: A Novel Pruning Approach for Attention Matrix" (arXiv 2410.11261,
ICLR 2025) learns a pruning mask by gradient descent so that the pruned attention matrix
softmax(X W X^T) stays close to the dense one, instead of keeping the linear output XW close as
SparseGPT and Wanda do. No code was released; what is public is the abstract, the objective's
shape (Frobenius distance of the attention matrices plus an L2 penalty on the mask), plain GD
(Algorithm 1) and the setting (8 C4 calibration sequences, C4 perplexity, Llama-3.2-1B).

The reading implemented here, for RoPE and GQA models (each choice where the paper is silent or its
merged-W notation does not fit a real model):
- Masks sit on the real projections: real-valued Mq, Mk of q_proj/k_proj's shapes, applied as
  Mq o Wq and Mk o Wk before RoPE. (The paper's mask on a merged W = Wq Wk^T does not exist under
  RoPE and would add weights instead of removing them.) A key mask row feeds every query head of its
  GQA group (repeat_kv), so it gets the gradient of all of them. q/k biases (Qwen2) stay unmasked.
- Per layer, with X the calibration hidden states entering its attention (after the input norm) and
  A_h = softmax(causal(RoPE(X Wq)_h RoPE(X Wk)_g(h)^T * scaling)) the dense attention of head h
  (the model's own RoPE, scaling, softcap and sliding window: `qk_masks.attention_matrix`), minimise
      L(M) = N/2 mean_{b,h,t} ||A_bht(Mq o Wq, Mk o Wk) - A_bht||^2 + lambda/2 (||Mq||_F^2 + ||Mk||_F^2)
  over the B calibration sequences, H heads and n query rows t, N = Mq.numel() + Mk.numel(). This is
  the paper's (and the issue's) objective with the attention term's scale fixed, which neither source
  gives: a sum over rows would grow with B, H and n, and any one weight moves the attention matrix by
  about 1/N of what all of them do together, so the attention gradient of one entry shrinks like 1/N.
  Averaged, then scaled by N, each entry's attention gradient should be of one order whatever the
  model's size (the argument; the values were tuned on the tiny model only), lambda is the trade-off
  of L/N = mean attention error + lambda/2 mean M^2, and step_size * lambda the decay per step. The
  plan lists the layers whose loss rose at some step (`loss_rose_in`): lower the step there.
  Float32, autograd gradient.
- Plain full-batch GD from the all-ones mask (the dense model, where the attention term is 0), each
  step projected onto [0, 1]. Starting at its minimum, the attention term only pushes back: lambda
  decays every entry by step*lambda per step, and entries the attention matrix depends on are pulled
  back towards 1. The final mask value ranks the weights.
- Every layer sees the dense model's X (one calibration pass; not SparseGPT's sequential pruned
  inputs): the objective is per layer, the masks do not depend on s, so one optimisation serves any
  sparsity (the budget's s, the comparison's 0.3/0.5/0.7), and layers are independent.
- Binarise by keeping the top (1 - s) of each output row's mask values (Wanda's per-row groups), or
  2 of every 4 consecutive inputs for `pattern: 2:4`; ties (entries clamped at 0 or 1) go to the
  larger |W|. No re-optimisation with the binary mask (not in any source). `rank_by: masked_weight`
  ranks by M * |W| instead (the magnitude-aware variant): M alone says how far the optimiser shrank a
  weight relative to itself, not what the weight contributes, and keeping a row's top M can drop its
  largest weights (on the tiny model it loses to Wanda at s <= 0.5; conf/method/attn_mask.yaml).
- Budget (`budgeted`): with `sparsity: null`, s is the same for every row of every masked q/k matrix
  and the dropped count equals the parameter budget exactly (`qk_masks.removal_counts`).
Zeroed weights are not removed: no speed-up without sparse kernels, the KV cache is unchanged.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from harp.config import MaskConfig
from harp.pruning import qk_masks
from harp.pruning.plan import Plan, PruneInputs
from harp.pruning.qk_masks import AttentionInputs, Scores


def objective(
    attn: nn.Module, x: AttentionInputs, target: torch.Tensor, mq: torch.Tensor, mk: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L / N, mean attention error) of masks `mq`, `mk` against the dense attention `target` (module docstring):
    L / N = 1/2 mean_{b,h,t} ||A_bht(M) - A_bht||^2 + lambda/2 mean(M^2), N the number of mask entries."""
    wq, wk = attn.q_proj.weight.detach().float(), attn.k_proj.weight.detach().float()
    diff = qk_masks.attention_matrix(attn, x, mq * wq, mk * wk) - target
    attention = diff.pow(2).sum() / (2 * target[..., 0].numel())  # rows: (sequence, head, query position)
    return attention + lam / 2 * (mq.pow(2).sum() + mk.pow(2).sum()) / (mq.numel() + mk.numel()), attention


def optimise_layer(
    attn: nn.Module, x: AttentionInputs, lam: float, step_size: float, iterations: int
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Projected gradient descent on L (module docstring) from all-ones; returns (Mq, Mk, L / N before each
    step and after the last). A step of L is a step of L / N times N: each entry moves by step_size times
    its own gradient, the penalty's part being lambda * M."""
    device = attn.q_proj.weight.device
    with torch.no_grad():
        target = qk_masks.attention_matrix(attn, x)
    mq = torch.ones(attn.q_proj.weight.shape, device=device, requires_grad=True)
    mk = torch.ones(attn.k_proj.weight.shape, device=device, requires_grad=True)
    trace, entries = [], mq.numel() + mk.numel()
    for _ in range(iterations):
        loss, _ = objective(attn, x, target, mq, mk, lam)
        gq, gk = torch.autograd.grad(loss, (mq, mk))
        trace.append(loss.item())
        with torch.no_grad():
            mq.sub_(step_size * entries * gq).clamp_(0.0, 1.0)
            mk.sub_(step_size * entries * gk).clamp_(0.0, 1.0)
    with torch.no_grad():
        trace.append(objective(attn, x, target, mq, mk, lam)[0].item())
    return mq.detach(), mk.detach(), trace


def optimise(
    model: nn.Module, inputs: dict[int, AttentionInputs], settings: MaskConfig
) -> tuple[dict[qk_masks.Key, torch.Tensor], dict]:
    """The optimised masks of every layer in `inputs`, and what the plan records about the optimisation."""
    masks, losses, seconds, rose = {}, {}, {}, []
    for layer, x in inputs.items():
        attn = qk_masks.attention_of(model, layer)
        start = time.perf_counter()
        with torch.enable_grad():
            mq, mk, trace = optimise_layer(attn, x, settings.lam, settings.step_size, settings.iterations)
        seconds[str(layer)] = round(time.perf_counter() - start, 3)
        losses[str(layer)] = {"first": trace[0], "last": trace[-1]}
        if any(b > a for a, b in zip(trace, trace[1:])):
            rose.append(layer)
        masks[(layer, "q_proj")], masks[(layer, "k_proj")] = mq, mk
    values = torch.cat([m.flatten() for m in masks.values()])
    details = {
        "lam": settings.lam,
        "step_size": settings.step_size,
        "iterations": settings.iterations,
        "loss_per_entry": losses,
        "loss_rose_in": rose,
        "seconds": seconds,
        "mask_at_0": float((values == 0).float().mean()),
        "mask_at_1": float((values == 1).float().mean()),
        "mask_mean": float(values.mean()),
    }
    return masks, details


def ranked(model: nn.Module, masks: dict[qk_masks.Key, torch.Tensor], rank_by: str, details: dict) -> Scores:
    """Scores from the masks: M itself (`rank_by: mask`) or M * |W| (`masked_weight`); ties go to the larger |W|."""
    weights = {
        (layer, proj): getattr(qk_masks.attention_of(model, layer), proj).weight.detach().float().abs()
        for layer, proj in masks
    }
    score = {k: m * weights[k].to(m.device) if rank_by == "masked_weight" else m for k, m in masks.items()}
    return Scores(score, weights, details | {"rank_by": rank_by})


def mask_scores(model: nn.Module, inputs: dict[int, AttentionInputs], settings: MaskConfig) -> Scores:
    masks, details = optimise(model, inputs, settings)
    return ranked(model, masks, settings.rank_by, details)


def make_plan(inp: PruneInputs) -> Plan:
    return qk_masks.plan_masks(inp, "attn_mask", mask_scores)


apply = qk_masks.apply_masks
