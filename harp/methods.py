"""The one table of pruning methods: each entry says what callers ask of a method, and its typed config.

An entry carries its row label, its config type (only the keys the method reads; a key it does not read
is refused by `harp.config.validate` naming the keys it has), which inputs the prune stage feeds it, whether
it removes a parameter budget, and whether it zeroes weights instead of removing structures. Workflow, stages
and report ask the entry; nobody compares a method's name.

Torch-free, so the workflow planner reads it without importing a model library; a method's module
(`make_plan(inputs) -> Plan`, `apply(model, plan)`, its scoring rule) is imported only when a plan is made or
re-applied. Every plan the pipeline writes therefore re-applies from the Python API after `import harp` alone.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from harp.config import DataConfig, MaskConfig, SearchConfig, at_least, choice, within
from harp.errors import HarpError
from harp.layers import POSITIONS


# ------------------------------------------------------------------ typed configs, one per kind of method
@dataclass
class MethodConfig:
    name: str = MISSING  # the registry's name of the method

    def check(self) -> None:
        """Rules across this method's keys, beyond each key's declared choice or range (none by default)."""

    def check_model(self, hidden_size: int) -> None:
        """Refuse, before loading, a model this method's settings cannot take (nothing to check by default)."""


@dataclass
class LayerChoice(MethodConfig):
    """HARP's layers and alphas (harp, and harp_flap which prunes HARP first)."""

    num_layers: Optional[int] = None  # HARP's L; null: the model's prune_layers
    layer_position: str = choice(*POSITIONS)  # top (paper) | middle | bottom | diagnosed (ablations)
    rescale: bool = True  # false: alpha = 1 everywhere (no search)
    alphas: Optional[list[float]] = within(None, 0.0, 1.0, closed_high=True)  # fixed, index 0 = last pruned layer
    published_alphas: bool = False  # true: the model's published alphas (skips search; experiment=published_alphas)


@dataclass
class HarpConfig(LayerChoice):
    search: SearchConfig = field(default_factory=SearchConfig)

    def check(self) -> None:
        if not self.search.grid:
            raise HarpError("method.search.grid is empty; give the candidate alphas, e.g. [0.0, 0.5, 1.0].")


@dataclass
class Calibrated(MethodConfig):
    calibration: Optional[DataConfig] = None  # this method's own calibration set; null: `data` (HARP's search)
    batch_size: int = at_least(8, 1)  # sequences per forward pass over the calibration data


@dataclass
class StructuredConfig(Calibrated):
    """Head and channel pruning (mag_sp, wanda_sp, flap, amp)."""

    target: str = choice("attention", "mlp", "attention+mlp")  # which structures compete for the budget
    allocation: str = choice("global", "uniform")  # one ranking | the same count in every layer
    counts: str = choice("reference", "budget")  # the reference code's count rule | the exact budget, within 1%
    statistics: str = choice("reference", "exact")  # as the reference code gathers them | one dense pass


@dataclass
class HarpFlapConfig(LayerChoice, Calibrated):
    mlp_ratio: Optional[float] = within(None, 0.0, 1.0)  # a fixed fraction of the MLP weights; null: fill the budget
    statistics: str = choice("reference", "exact")  # FLAP's running fluctuation estimate | the exact variance


@dataclass
class MaskMethodConfig(Calibrated):
    mask: MaskConfig = field(default_factory=MaskConfig)  # attn_mask and wanda_qk: q/k weight masks

    def check(self) -> None:
        self.mask.check()

    def check_model(self, hidden_size: int) -> None:
        self.mask.check_width(hidden_size)


# ------------------------------------------------------------------ the registry
# What the prune stage can feed a method: its calibration set, HARP's searched alphas, HARP's plan.
NEEDS = ("calibration", "alphas", "reference")


@dataclass(frozen=True)
class Method:
    name: str
    label: str  # row label in tables and figures
    module: str  # defines `make_plan(inputs: PruneInputs) -> Plan` and `apply(model, plan) -> None`
    config: type = MethodConfig  # its settings (conf/method/<name>.yaml fills them)
    needs: tuple[str, ...] = ()  # of NEEDS; a budgeted method also reads HARP's plan when the budget is match_harp
    budgeted: bool = False  # removes a parameter budget that the prune stage resolves (`harp.pruning.budget`)
    zeroes: bool = False  # zeroes weights in place (masks) instead of removing structures: the KV cache keeps its size
    searched: bool = False  # owns HARP's alpha search: its folder holds the alphas the others read
    unpruned: bool = False  # the reference row: nothing removed
    compared_with: str = ""  # the method its comparison stage measures it against (its folder holds the comparison)
    note: str = ""  # what its row means, for the tables' legend where the label alone does not say

    @property
    def planner(self) -> Callable:
        return importlib.import_module(self.module).make_plan

    @property
    def applier(self) -> Callable:
        return importlib.import_module(self.module).apply

    @property
    def chooses_layers(self) -> bool:
        """Prunes HARP's layers with HARP's alphas: an impossible L or alpha list fails when composed."""
        return issubclass(self.config, LayerChoice)

    def inputs(self, budget_kind: str) -> tuple[str, ...]:
        """What the prune stage reads for this method under a budget of `budget_kind`, in NEEDS order."""
        reference = self.budgeted and budget_kind == "match_harp"
        return tuple(n for n in NEEDS if n in self.needs or (n == "reference" and reference))


_CALIBRATED = ("calibration",)
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("dense", "Dense", "harp.pruning.dense", unpruned=True),
        Method("harp", "HARP", "harp.pruning.harp", HarpConfig, needs=("alphas",), searched=True),
        # the paper's HARP row: HARP, then FLAP MLP channels pruned up to the budget
        Method(
            "harp_flap",
            "HARP+MLP (to budget)",
            "harp.pruning.baselines.harp_flap",
            HarpFlapConfig,
            needs=("alphas", "calibration"),
            budgeted=True,
            note="HARP, then FLAP MLP-channel pruning up to the paper's budget (L/N of the attention weights), the "
            "paper's HARP row; HARP prunes attention only.",
        ),
        Method("mag_sp", "Mag-sp", "harp.pruning.baselines.mag_sp", StructuredConfig, budgeted=True),
        Method("wanda_sp", "Wanda-sp", "harp.pruning.baselines.wanda_sp", StructuredConfig, _CALIBRATED, True),
        Method("flap", "FLAP", "harp.pruning.baselines.flap", StructuredConfig, _CALIBRATED, True),
        Method(
            "amp", "AMP (no recovery fine-tuning)", "harp.pruning.baselines.amp", StructuredConfig, _CALIBRATED, True
        ),
        Method("attn_drop", "AttnDrop", "harp.pruning.baselines.attn_drop", Calibrated, _CALIBRATED, True),
        Method(
            "attn_mask",
            "Attn-mask",
            "harp.pruning.attn_mask",
            MaskMethodConfig,
            _CALIBRATED,
            budgeted=True,
            zeroes=True,
            compared_with="wanda_qk",
        ),
        Method("wanda_qk", "Wanda-qk", "harp.pruning.wanda_qk", MaskMethodConfig, _CALIBRATED, True, zeroes=True),
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


def _the(flag: str) -> str:
    return next(m.name for m in METHODS.values() if getattr(m, flag))


SEARCHED = _the("searched")  # the method whose folder holds the alpha search's outputs
UNPRUNED = _the("unpruned")  # the reference row
MASKS_COMPARED = _the("compared_with")  # the method whose folder holds the mask comparison (mask_compare)
MASK_BASELINE = METHODS[MASKS_COMPARED].compared_with  # what the comparison measures it against
