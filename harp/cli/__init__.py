"""Hydra entry points, one per pipeline stage: `python -m harp.cli.<stage> [overrides]`."""
