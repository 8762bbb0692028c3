"""Load any Hugging Face causal LM by hub id or local path, with clear errors when it is not there."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from harp.errors import HarpError
from harp.models.adapters import adapter_for

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise HarpError(f"device={device} was requested but no CUDA GPU is visible; use device=cpu or auto.")
    return device


def _missing(source: str, err: Exception) -> HarpError:
    if Path(source).expanduser().is_absolute() or source.startswith((".", "results/")):
        return HarpError(f"Model path {source} does not exist; build or download the model there first.")
    why = (
        "HF_HUB_OFFLINE is set, so it cannot be downloaded"
        if offline()
        else f"downloading it failed ({str(err).splitlines()[0][:160]})"
    )
    return HarpError(f"Model {source!r} is not a local directory and not in the Hugging Face cache, and {why}.")


def load_config(source: str):
    """The model's config, read without loading weights (fast checks: family, depth)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise _missing(source, err) from None
    adapter_for(config)
    return config


def load_model(
    source: str,
    dtype: str = "float32",
    device: str = "auto",
    device_map: str | None = None,
    attn_implementation: str | None = None,
) -> tuple[nn.Module, object]:
    """Return `(model, tokenizer)` in eval mode.

    `device_map="auto"` spreads a model larger than one GPU over all visible GPUs (accelerate);
    otherwise the model goes to `device`. `dtype` is float32, bfloat16 or float16.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise HarpError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    load_config(source)
    kwargs = {"dtype": DTYPES[dtype]}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map:
        kwargs["device_map"] = device_map
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as err:
        raise _missing(source, err) from None
    if not device_map:
        model.to(resolve_device(device))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer
