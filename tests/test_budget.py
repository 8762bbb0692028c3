"""The paper's comparison budget, re-derived from conf/model/*: L/N of all attention weights, and the gap HARP
(published alphas) leaves for the release's FLAP-MLP ratios. Models are built on the meta device: shapes only."""

from __future__ import annotations

import pytest
import torch

from harp.config import BudgetConfig
from harp.pruning.baselines.harp_flap import mlp_weights
from harp.pruning.budget import target_removed
from harp.pruning.harp import apply_harp
from harp.pruning.params import attention_weights, decoder_linear_params
from tests.helpers import compose

# model -> (HARP removes with the published alphas, L/N x attention weights), in millions, from ../shared/PAPER.md
PAPER = {
    "llama3_1_8b": (230.7, 335.5),
    "mistral_7b_v0_3": (251.7, 335.5),
    "gemma2_9b": (132.1, 264.2),
    "qwen2_7b": (58.7, 117.4),
}


def meta_model(cfg):
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = dict(cfg.model.architecture)
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("name", list(PAPER))
def test_paper_budget_is_l_over_n_of_attention_and_harp_flap_reproduces_the_release_ratio(name):
    cfg = compose(f"model={name}", "method=harp_flap")
    model = meta_model(cfg)
    layers = cfg.pruned_layers()
    budget = target_removed(model, cfg.budget, len(layers))
    assert budget == round(len(layers) / cfg.model.num_layers * attention_weights(model))
    harp_removed, paper_budget = PAPER[name]
    assert budget / 1e6 == pytest.approx(paper_budget, abs=0.05)

    before = decoder_linear_params(model)
    apply_harp(model, dict(zip(sorted(layers, reverse=True), cfg.model.published_alphas)))
    removed = before - decoder_linear_params(model)
    assert removed / 1e6 == pytest.approx(harp_removed, abs=0.05)
    gap_ratio = (budget - removed) / mlp_weights(model)  # what harp_flap removes with MLP channels
    assert abs(gap_ratio - cfg.model.flap_mlp_ratio) <= 0.005  # the release's constant, within 0.5% of MLP weights


def test_other_budgets():
    cfg = compose("model=qwen2_7b")
    model = meta_model(cfg)
    assert target_removed(model, BudgetConfig("ratio", 0.1), 4) == round(0.1 * decoder_linear_params(model))
    assert target_removed(model, BudgetConfig("attention_fraction", 0.5), 4) == attention_weights(model) // 2
