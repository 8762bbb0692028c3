"""HARP: High-Layer Attention Pruning with Rescaling, on stock Hugging Face models.

    import harp
    result = harp.search_alphas(model, calibration_ids, num_layers=8)
    harp.apply_harp(model, result.alphas)

The names below load on first use, so the torch-free parts (`harp.artifacts`, `harp.methods`,
`harp.workflow`) import without torch; every method of `harp.methods` re-applies with `apply_plan`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "HarpError": "harp.errors",
    "apply_harp": "harp.pruning.harp",
    "Plan": "harp.pruning.plan",
    "apply_plan": "harp.pruning.plan",
    "load_plan": "harp.pruning.plan",
    "save_plan": "harp.pruning.plan",
    "SearchResult": "harp.search",
    "search_alphas": "harp.search",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harp' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
