"""Shared fixtures: the four model families, and a quickly trained tiny model (helpers live in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest

from tests.helpers import FAMILIES

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """The embedded default model, trained briefly (same code path as the real build, fewer steps)."""
    from harp.models.tiny import TinyConfig, build_tiny

    out = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny(
        out,
        TinyConfig(
            steps=40,
            seq_len=128,
            short_seq_len=64,
            tokens_per_step=1024,
            hidden_size=96,
            intermediate_size=256,
            num_heads=4,
        ),
        progress=False,
    )
    return out
