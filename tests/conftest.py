"""Shared fixtures: random-weight tiny models of the four families, and a quickly trained tiny model."""
from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

FAMILIES = ("llama", "mistral", "qwen2", "gemma2")


def random_model(family: str, num_layers: int = 6, seed: int = 0, **overrides):
    """A randomly initialised model of `family` with GQA (4 query heads, 2 key/value heads)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=num_layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    if family == "gemma2":
        kwargs |= dict(head_dim=16, sliding_window=8, query_pre_attn_scalar=16)
    if family == "qwen2":
        kwargs |= dict(use_sliding_window=False)
    kwargs |= overrides
    config = AutoConfig.for_model(family, **kwargs)
    if family == "gemma2":
        config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # Gemma-2's norms start at zero weight: perturb so folding is really tested
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The embedded default model, trained briefly (same code path as the real build, fewer steps)."""
    from harp.models.tiny import TinyConfig, build_tiny

    out = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny(out, TinyConfig(steps=40, seq_len=128, short_seq_len=64, tokens_per_step=1024, hidden_size=96, intermediate_size=256,
                               num_heads=4), progress=False)
    return out
