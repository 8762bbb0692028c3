"""Pruning methods; each produces a `Plan` and registers how to re-apply it."""
from harp.pruning.harp import apply_harp, top_layers
from harp.pruning.plan import Plan, apply_plan, load_plan, plan_hash, save_plan

__all__ = ["Plan", "apply_harp", "apply_plan", "load_plan", "plan_hash", "save_plan", "top_layers"]
