"""The speed benchmark: the FLOP bound against hand counts, the architectures of the paper models,
and speed.csv written by the stage (columns, KV-cache saving, dense = no speedup)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from harp.cli.speed import COLUMNS
from harp.eval.speed import attended_positions, attention_windows, benchmark, bound, forward_flops, kv_cache_bytes
from harp.pruning.harp import apply_harp
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import build_plan
from tests.helpers import compose, random_model, save_recorded_plan

ROOT = Path(__file__).resolve().parents[1]

# conftest's random llama: hidden 64, MLP 96, 4 query heads and 2 key/value heads of 16, vocab 128
Q, K, V, O, MLP = 64 * 64, 64 * 32, 64 * 32, 64 * 64, 3 * 64 * 96  # weights per decoder layer  # noqa: E741
ATTN = 2 * (64 + 64)  # FLOPs per attended position: q.k over 4x16 query dims, weights x values over 4x16
HEAD = 2 * 128 * 64  # one row of logits


def test_attended_positions_by_hand():
    assert attended_positions(0, 4, None) == 1 + 2 + 3 + 4
    assert attended_positions(0, 4, 2) == 1 + 2 + 2 + 2
    assert attended_positions(4, 6, None) == 5 + 6
    assert attended_positions(2, 5, 3) == 3 + 3 + 3


def test_forward_flops_and_bound_by_hand():
    model = random_model("llama", num_layers=2)
    dense_layer = 2 * 8 * (Q + K + V + O + MLP) + ATTN * 36  # 8 tokens attend to 1 + 2 + ... + 8 = 36
    assert forward_flops(model, 0, 8) == 2 * dense_layer + HEAD
    # decoding 2 tokens after 8: positions 9 and 10 attend to 19 in all, two rows of logits
    assert forward_flops(model, 8, 10, logits=2) == 2 * (2 * 2 * (Q + K + V + O + MLP) + ATTN * 19) + 2 * HEAD

    apply_harp(model, {1: 0.5})  # layer 1 keeps v, o and the MLP; q, k and the attention matmuls go
    harp_flops = dense_layer + 2 * 8 * (V + O + MLP) + HEAD
    assert forward_flops(model, 0, 8) == harp_flops
    assert bound(2 * dense_layer + HEAD, harp_flops) == pytest.approx((2 * dense_layer + HEAD) / harp_flops - 1)

    apply_harp(model, {0: 0.0})  # alpha 0: only the MLP is left
    assert forward_flops(model, 0, 8) == 2 * 8 * MLP + 2 * 8 * (V + O + MLP) + HEAD


def test_sliding_windows_follow_the_config():
    gemma = random_model("gemma2", num_layers=4)  # sliding_window 8 on alternate layers
    assert attention_windows(gemma.config) == [8, None, 8, None]
    assert attention_windows(random_model("llama", num_layers=2).config) == [None, None]


PUBLISHED_PARAMS = {
    "llama3_1_8b": 8_030_261_248,
    "mistral_7b_v0_3": 7_248_023_552,
    "qwen2_7b": 7_615_616_512,
    "gemma2_9b": 9_241_705_984,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_paper_architectures_match_the_checkpoints(name):
    """conf/model/<name>.yaml's architecture builds (on the meta device) the published parameter count,
    and HARP with the published alphas has a positive bound that grows with the sequence length."""
    from transformers import AutoConfig, AutoModelForCausalLM

    conf = yaml.safe_load((ROOT / "conf" / "model" / f"{name}.yaml").read_text())
    arch = dict(conf["architecture"])
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[name]
    assert config.num_hidden_layers == conf["num_layers"]
    dense = [forward_flops(model, 0, n) for n in (1024, 8192)]
    layers = range(conf["num_layers"] - 1, conf["num_layers"] - 1 - conf["prune_layers"], -1)
    apply_harp(model, dict(zip(layers, conf["published_alphas"])))
    bounds = [bound(d, forward_flops(model, 0, n)) for d, n in zip(dense, (1024, 8192))]
    assert 0 < bounds[0] < bounds[1] < 1


def test_dense_benchmark_has_no_speedup():
    model = random_model("qwen2", num_layers=2)
    rows = benchmark(model, None, [8], repeats=1, warmup=0, decode_tokens=2, batch_size=1, device="cpu")
    df = pd.DataFrame(rows)
    assert len(df) == 4 and set(df.variant) == {"original", "pruned"}
    assert (df.speedup == 0).all() and (df.bound == 0).all()
    assert df.kv_cache_bytes.nunique() == 2  # prefill and decode caches, the same for both variants


def test_kv_cache_bytes_counts_stored_tensors():
    model = random_model("llama", num_layers=3)
    with torch.inference_mode():
        cache = model(torch.zeros(1, 5, dtype=torch.long), use_cache=True).past_key_values
    assert kv_cache_bytes(cache) == 3 * 2 * (1 * 2 * 5 * 16) * 4  # layers x (k, v) x (batch, kv heads, len, dim) x fp32


def test_speed_stage_writes_the_contract_csv(tmp_path):
    """The stage on a random 6-layer llama with a HARP plan: csv columns, flags, the KV-cache saving."""
    model = random_model("llama", num_layers=6)
    source = tmp_path / "llama"
    model.config.save_pretrained(source)  # the stage reads the architecture only (random weights)
    before = decoder_linear_params(model)
    alphas = {5: 0.6, 4: 0.0}
    apply_harp(model, alphas)
    overrides = [
        "model=tiny",
        "model.name=small",
        f"model.source={source}",
        "model.num_layers=6",
        "model.build=null",
        "method=harp",
        f"results_dir={tmp_path / 'run'}",
        "tracking=disabled",
        "progress=false",
        "speed.seq_lens=[16,32]",
        "speed.repeats=1",
        "speed.warmup=0",
        "speed.decode_tokens=2",
        "speed.threads=1",
    ]
    plan = build_plan("harp", str(source), model, before, layers=list(alphas), alphas=alphas)
    save_recorded_plan(plan, tmp_path / "run" / "small" / "harp", *overrides)
    cmd = [sys.executable, "-m", "harp.cli.speed", *overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "measured/bound" in done.stdout

    df = pd.read_csv(tmp_path / "run" / "small" / "harp" / "speed.csv")
    assert list(df.columns) == COLUMNS
    assert len(df) == 2 * 2 * 2  # variants x phases x lengths
    assert df.random_weights.all() and (df.device == "cpu").all() and (df.dtype == "float32").all()
    assert (df.median_s > 0).all() and df.peak_mem_bytes.isna().all()  # no allocator peak on CPU
    original = df[df.variant == "original"].set_index(["phase", "seq_len"])
    pruned = df[df.variant == "pruned"].set_index(["phase", "seq_len"])
    assert (original.speedup == 0).all() and (pruned.bound > 0).all()
    assert (pruned.kv_cache_bytes * 6 == original.kv_cache_bytes * 4).all()  # 2 of 6 layers store nothing
    assert (pruned.loc["prefill", "bound"].diff().dropna() > 0).all()  # more attention to save at longer lengths


def test_speed_stage_without_plan_is_a_clear_error(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "harp.cli.speed",
        "model=tiny",
        "method=harp",
        f"results_dir={tmp_path}",
        "tracking=disabled",
    ]
    done = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "plan.json does not exist" in done.stderr and "Traceback" not in done.stderr


def test_hydra_builds_paper_architecture_and_published_plan(tmp_path):
    """`model=gemma2_9b speed=gpu` composes; the architecture block reaches HF (eager attention for
    Gemma-2's softcapping), and without a plan.json HARP falls back to the published alphas."""
    from harp.cli.speed import architecture, pruning
    from harp.eval.speed import random_model as build

    cfg = compose("model=gemma2_9b", "method=harp", "speed=gpu", f"results_dir={tmp_path}")
    assert cfg.speed.dtype == "bfloat16" and max(cfg.speed.seq_lens) == 32768
    config = architecture(cfg)
    assert (config.head_dim, config.query_pre_attn_scalar, config.sliding_window) == (256, 256, 4096)
    model = build(config, "bfloat16", "meta", cfg.model.attn_implementation)
    assert model.config._attn_implementation == "eager"
    prune, source = pruning(cfg)
    assert "no " in source and prune is not None
    prune(model)
    pruned = [i for i, layer in enumerate(model.model.layers) if not hasattr(layer.self_attn, "q_proj")]
    assert pruned == list(range(36, 42))
    dense_prune, _ = pruning(compose("model=gemma2_9b", "method=dense", f"results_dir={tmp_path}"))
    assert dense_prune is None
