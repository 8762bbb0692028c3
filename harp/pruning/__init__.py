"""Pruning methods (`harp.methods` lists them), the plan format, parameter counts and budgets."""
