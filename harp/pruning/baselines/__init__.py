"""Structured-pruning baselines, registered as planners and appliers on import.

All prune at a parameter budget matched to HARP's plan (see `budget`) and physically remove whole
key/value groups (with their query heads), MLP channels or attention blocks (see `structures`).
"""
from harp.pruning.baselines import amp, attn_drop, flap, harp_flap, mag_sp, wanda_sp  # noqa: F401
