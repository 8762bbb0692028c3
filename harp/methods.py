"""The one table of pruning methods: name, table label, the module that plans and re-applies it, what it reads.

Torch-free, so the workflow planner reads `needs` without importing a model library; a method's module
(`make_plan(inputs) -> Plan`, `apply(model, plan)`) is imported only when a plan is made or re-applied. Every
plan the pipeline writes therefore re-applies from the Python API after `import harp` alone.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from harp.errors import HarpError

# What the prune stage can feed a method: its calibration set, HARP's searched alphas, HARP's plan.
NEEDS = ("calibration", "alphas", "reference")


@dataclass(frozen=True)
class Method:
    name: str
    label: str  # row label in tables and figures
    module: str  # defines `make_plan(inputs: PruneInputs) -> Plan` and `apply(model, plan) -> None`
    needs: tuple[str, ...] = ()  # of NEEDS; a budgeted method also reads HARP's plan when the budget is match_harp
    budgeted: bool = False  # removes a parameter budget that the prune stage resolves (`harp.pruning.budget`)
    zeroes: bool = False  # zeroes weights in place (masks) instead of removing structures: the KV cache keeps its size

    @property
    def planner(self) -> Callable:
        return importlib.import_module(self.module).make_plan

    @property
    def applier(self) -> Callable:
        return importlib.import_module(self.module).apply

    def inputs(self, budget_kind: str) -> tuple[str, ...]:
        """What the prune stage reads for this method under a budget of `budget_kind`, in NEEDS order."""
        reference = self.budgeted and budget_kind == "match_harp"
        return tuple(n for n in NEEDS if n in self.needs or (n == "reference" and reference))


_CALIBRATED = ("calibration",)
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("dense", "Dense", "harp.pruning.dense"),
        Method("harp", "HARP", "harp.pruning.harp", needs=("alphas",)),
        # the paper's HARP row: HARP, then FLAP MLP channels pruned up to the budget
        Method(
            "harp_flap",
            "HARP+MLP (to budget)",
            "harp.pruning.baselines.harp_flap",
            needs=("alphas", "calibration"),
            budgeted=True,
        ),
        Method("mag_sp", "Mag-sp", "harp.pruning.baselines.mag_sp", budgeted=True),
        Method("wanda_sp", "Wanda-sp", "harp.pruning.baselines.wanda_sp", needs=_CALIBRATED, budgeted=True),
        Method("flap", "FLAP", "harp.pruning.baselines.flap", needs=_CALIBRATED, budgeted=True),
        Method("amp", "AMP (no recovery fine-tuning)", "harp.pruning.baselines.amp", needs=_CALIBRATED, budgeted=True),
        Method("attn_drop", "AttnDrop", "harp.pruning.baselines.attn_drop", needs=_CALIBRATED, budgeted=True),
        Method("attn_mask", "Attn-mask", "harp.pruning.attn_mask", needs=_CALIBRATED, budgeted=True, zeroes=True),
        Method("wanda_qk", "Wanda-qk", "harp.pruning.wanda_qk", needs=_CALIBRATED, budgeted=True, zeroes=True),
    )
}


def get(name: str) -> Method:
    """The method called `name`; an unknown name is one sentence with the closest known one."""
    if name not in METHODS:
        close = difflib.get_close_matches(name, list(METHODS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise HarpError(f"Unknown pruning method {name!r}; known: {', '.join(METHODS)}.{hint}")
    return METHODS[name]


def label(name: str) -> str:
    """The table label of a method (its name when it is not in the table)."""
    return METHODS[name].label if name in METHODS else name
