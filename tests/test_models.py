"""Model loading and the embedded tiny model: clear errors, determinism, a usable checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from harp.errors import HarpError
from harp.models.loading import load_config, load_model


def test_missing_local_path_is_one_sentence(tmp_path):
    with pytest.raises(HarpError, match="does not exist"):
        load_model(str(tmp_path / "nowhere"))


def test_missing_hub_model_offline_names_the_id_and_offline_mode(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HarpError, match=r"'nobody/no-such-model'.*HF_HUB_OFFLINE"):
        load_model("nobody/no-such-model")


def test_unsupported_architecture_lists_supported(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_layer=2).save_pretrained(tmp_path)
    with pytest.raises(HarpError, match="Unsupported model family 'gpt2'"):
        load_config(str(tmp_path))


def test_tiny_model_is_a_saved_llama_with_gqa(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir), device="cpu")
    c = model.config
    assert c.model_type == "llama" and c.num_key_value_heads < c.num_attention_heads and c.num_hidden_layers == 8
    summary = json.loads((tiny_model_dir / "harp_tiny.json").read_text())
    assert summary["heldout_perplexity"] < c.vocab_size  # it learned something beyond uniform
    text = "Return the value"
    assert tok.decode(tok(text)["input_ids"]) == text


def test_tiny_build_is_deterministic(tmp_path):
    from harp.models.tiny import TinyConfig, build_tiny

    cfg = TinyConfig(
        steps=2,
        seq_len=32,
        short_seq_len=16,
        tokens_per_step=64,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        num_layers=2,
        num_kv_heads=1,
        vocab_size=300,
    )
    build_tiny(tmp_path / "a", cfg, progress=False)
    build_tiny(tmp_path / "b", cfg, progress=False)
    a, _ = load_model(str(tmp_path / "a"), device="cpu")
    b, _ = load_model(str(tmp_path / "b"), device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
