"""A pruning plan: the small record of what a method removed, re-applied to a freshly loaded model.

Its JSON file holds the method, layers, alphas, parameter counts and method details; its tensor
file holds tensors some methods need (e.g. FLAP's compensation biases). Full pruned weights are
never written by default: a plan is kilobytes, a pruned 8B model is 16 GB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harp import artifacts, methods
from harp.errors import HarpError
from harp.io import atomic_path, write_json
from harp.methods import MethodConfig
from harp.pruning.params import decoder_linear_params, decoder_linear_size, dense_linear_params, kv_cache_reduction
from harp.records import read_plan_record


@dataclass
class Plan:
    method: str
    model: str  # hub id or path of the source model
    layers: list[int]
    params_before: int
    params_after: int
    kv_cache_reduction: float
    alphas: dict[int, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # method-specific, JSON-serialisable
    tensors: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def pruning_ratio(self) -> float:
        """Fraction of decoder-layer linear weights removed."""
        return 1.0 - self.params_after / self.params_before

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("tensors")
        data["alphas"] = {str(k): v for k, v in self.alphas.items()}
        data["pruning_ratio"] = self.pruning_ratio
        data["tensors"] = sorted(self.tensors)
        return data


def build_plan(
    method: str,
    model_id: str,
    pruned: nn.Module,
    params_before: int,
    layers: list[int],
    alphas: dict[int, float] | None = None,
    details: dict | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> Plan:
    """The plan of a model that `method` has just pruned, counting what remains."""
    return Plan(
        method=method,
        model=model_id,
        layers=sorted(layers),
        params_before=params_before,
        params_after=decoder_linear_params(pruned),
        kv_cache_reduction=kv_cache_reduction(pruned),
        alphas=dict(alphas or {}),
        details=dict(details or {}),
        tensors=dict(tensors or {}),
    )


@dataclass
class PruneInputs:
    """What a method's planner receives: typed values, resolved from the config by the prune stage."""

    model: nn.Module  # the dense model, pruned in place
    source: str  # hub id or path of the model, recorded in the plan
    method: MethodConfig  # the method's own settings
    calibration: torch.Tensor | None = None  # (num_sequences, seq_len) token ids
    alphas: dict[int, float] | None = None  # HARP's alphas (HARP, HARP+FLAP)
    target_removed: int | None = None  # the budget, in decoder linear weights (budgeted methods)


def apply_plan(model: nn.Module, plan: Plan, same_weights: bool = True) -> nn.Module:
    """Re-apply `plan` to a freshly loaded dense model, in place, checking it fits the model.

    `same_weights=False` (the speed stage's random weights of the same architecture) skips the nonzero-count
    checks, which tie the plan to the checkpoint it was made on: its exact zeros are not in random weights."""
    method = methods.get(plan.method)
    size, dense = decoder_linear_size(model), dense_linear_params(model.config)
    if size != dense:
        raise HarpError(
            f"This model is already pruned ({size:,} of its {dense:,} decoder linear weights remain); "
            "apply a plan to a freshly loaded model."
        )
    check_depth(plan, model.config.num_hidden_layers)
    before = decoder_linear_params(model)
    if same_weights and before != plan.params_before:
        raise HarpError(
            f"The plan was made for a model with {plan.params_before} nonzero decoder linear weights, but this model "
            f"has {before}: it belongs to a different model ({plan.model}), or its weights were already masked."
        )
    method.applier(model, plan)
    after = decoder_linear_params(model)
    if same_weights and after != plan.params_after:
        raise HarpError(f"Applying the {plan.method} plan left {after} weights, the plan records {plan.params_after}.")
    return model


def save_plan(plan: Plan, out_dir: str | Path) -> Path:
    """Write `plan` into the folder `out_dir` (created if needed), each file atomically."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise HarpError(f"{out_dir} is a file; save_plan writes a plan into a folder, give a folder's path.")
    if plan.tensors:
        from safetensors.torch import save_file

        with atomic_path(artifacts.plan_tensors(out_dir)) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in plan.tensors.items()}, str(tmp))
    write_json(artifacts.plan(out_dir), plan.to_json())
    if not plan.tensors:  # a previous plan's tensors would otherwise count in its hash (harp.provenance)
        artifacts.plan_tensors(out_dir).unlink(missing_ok=True)
    return artifacts.plan(out_dir)


def check_depth(plan: Plan, depth: int) -> None:
    """Every layer the plan prunes exists in a `depth`-layer model (a plan of another model is one sentence)."""
    if outside := sorted(layer for layer in plan.layers if not 0 <= int(layer) < depth):
        raise HarpError(
            f"The {plan.method} plan prunes layer {outside[0]}, outside this {depth}-layer model: it was made for "
            f"another model ({plan.model}); rerun the prune stage for this one."
        )


def load_plan(path: str | Path, num_layers: int | None = None) -> Plan:
    """Load a plan (its folder, or its JSON file) and its tensors, checked: a damaged plan is one sentence, and so
    is a plan of a deeper model than `num_layers` (the stages check it before the model loads)."""
    path = Path(path)
    json_path = artifacts.plan(path) if path.is_dir() else path
    fix = "delete it and rerun the prune stage"
    data = read_plan_record(json_path)
    names = data.pop("tensors")
    data.pop("pruning_ratio", None)
    try:
        plan = Plan(**data)
    except TypeError as e:
        raise HarpError(f"{json_path} is not a valid plan ({e}); {fix}.") from None
    if num_layers is not None:
        check_depth(plan, num_layers)
    if names:
        plan.tensors = _load_tensors(artifacts.plan_tensors(json_path.parent), names, fix)
    return plan


def _load_tensors(path: Path, names: list[str], fix: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.exists():
        raise HarpError(f"The plan lists tensors but {path} is missing; {fix}.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise HarpError(f"{path} is damaged ({str(e).splitlines()[0][:120]}); {fix}.") from None
    if sorted(tensors) != sorted(names):
        raise HarpError(f"{path} holds other tensors than its plan lists; {fix}.")
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise HarpError(f"{path}: tensor {name} holds NaN or infinite values; {fix}.")
    return tensors
