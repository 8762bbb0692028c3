"""The fixed model and calibration batch that `tests/data/reference_baselines.json` was produced on.

Both are made from a seed, not stored: the same code runs under transformers 4.44 (beside the reference
repositories, which need it) and under harp's transformers, and the JSON records the weights' and ids'
SHA-256 and a few dense logits, so a test knows it is looking at the very model the references saw.
Head width 128 and full multi-head attention because FLAP's and AMP's code assume both.
"""

from __future__ import annotations

import hashlib

import torch

SIZES = dict(
    vocab_size=128,
    hidden_size=512,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=128,
)
SEED = 0
CALIBRATION = (16, 32)  # sequences x tokens


def reference_model(seed: int = SEED):
    """A Llama with every parameter drawn from one seeded generator, in name order (RMSNorm weights
    around 1, linear weights scaled by 1/sqrt(fan-in), embeddings standard normal)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SIZES)
    config._attn_implementation = "eager"
    model = LlamaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            draw = torch.randn(p.shape, generator=generator)
            if name.endswith("norm.weight"):
                draw = 1 + 0.1 * draw
            elif "embed_tokens" not in name:
                draw = draw / p.shape[1] ** 0.5
            p.copy_(draw)
    return model


def calibration_ids(seed: int = SEED) -> torch.Tensor:
    return torch.randint(0, SIZES["vocab_size"], CALIBRATION, generator=torch.Generator().manual_seed(seed))


def fingerprint(model, ids: torch.Tensor) -> dict:
    """SHA-256 of the parameters (name order, float32 bytes) and of the ids, and the dense model's first
    logits: what the reference numbers were computed on."""
    weights = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        weights.update(name.encode())
        weights.update(p.detach().float().contiguous().numpy().tobytes())
    with torch.no_grad():
        logits = model(ids[:2]).logits[:, -1, :8]
    return {
        "weights_sha256": weights.hexdigest(),
        "ids_sha256": hashlib.sha256(ids.to(torch.int64).numpy().tobytes()).hexdigest(),
        "logits": logits.tolist(),
    }
