"""Structured-pruning baselines, registered as planners on import."""
