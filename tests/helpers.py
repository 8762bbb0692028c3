"""Helpers shared by the tests: random-weight models of the four families and the stage config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("llama", "mistral", "qwen2", "gemma2")


def random_model(family: str, num_layers: int = 6, seed: int = 0, **overrides):
    """A randomly initialised model of `family` with GQA (4 query heads, 2 key/value heads)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = dict(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
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


def compose(*overrides: str):
    """The validated stage config for these Hydra overrides, as `python -m harp.cli.<stage>` sees it."""
    from harp.workflow import compose as compose_config

    return compose_config(ROOT / "conf", list(overrides))


def run_stage(stage: str, results: Path, *overrides: str) -> subprocess.CompletedProcess:
    """`python -m harp.cli.<stage>` in a subprocess, writing under `results`."""
    cmd = [sys.executable, "-m", f"harp.cli.{stage}", f"results_dir={results}", "progress=false", *overrides]
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def save_recorded_plan(plan, mdir: Path, *overrides: str) -> None:
    """A plan made in a test, saved where the stages read it with the provenance record that the prune stage would
    write under these overrides (the stages refuse a plan without one)."""
    from harp import artifacts, provenance
    from harp.pruning.plan import save_plan

    with provenance.recording("plan", compose(*overrides), artifacts.plan(mdir)):
        save_plan(plan, mdir)
