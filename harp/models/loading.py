"""Load any Hugging Face causal LM by hub id or local path, with clear errors when it is not there."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from harp.config import DTYPES as DTYPE_NAMES
from harp.errors import HarpError
from harp.models.adapters import adapter_for

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}


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
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise HarpError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    load_config(source)
    kwargs = {"dtype": DTYPES[dtype]}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if device_map:
        kwargs["device_map"] = device_map
    tokenizer = load_tokenizer(source)
    from safetensors import SafetensorError

    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as err:
        raise _missing(source, err) from None
    except SafetensorError as err:  # a truncated or overwritten weights file
        raise HarpError(
            f"The weights of {source} are damaged ({str(err).splitlines()[0][:100]}); download or build them again."
        ) from None
    if not device_map:
        model.to(resolve_device(device))
    return model.eval(), tokenizer


def load_tokenizer(source: str):
    """The model's tokenizer (a padding token set to EOS when it has none); a missing one is one sentence."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as err:
        if not Path(source).expanduser().exists():
            raise _missing(source, err) from None
        raise HarpError(
            f"{source} has no usable tokenizer ({str(err).splitlines()[0][:100]}); save the model's tokenizer "
            "beside its weights (tokenizer.json, tokenizer_config.json)."
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
