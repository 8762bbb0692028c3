"""HARP: High-Layer Attention Pruning with Rescaling, on stock Hugging Face models.

    import harp
    result = harp.search_alphas(model, calibration_ids, num_layers=8)
    harp.apply_harp(model, result.alphas)
"""
from harp.errors import HarpError
from harp.pruning.harp import apply_harp
from harp.pruning.plan import Plan, apply_plan, load_plan, save_plan
from harp.search import SearchResult, search_alphas

__all__ = ["HarpError", "Plan", "SearchResult", "apply_harp", "apply_plan", "load_plan", "save_plan", "search_alphas"]
