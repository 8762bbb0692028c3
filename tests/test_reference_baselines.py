"""The baselines select what their reference code selects.

`tests/data/reference_baselines.json` holds the heads and MLP channels that FLAP's `lib/prune.py` (flap,
Wanda-sp, Mag-sp) and AMP's `prune_groups.py` removed per layer, and FLAP's compensation biases
(`reference_baselines.safetensors`), run unmodified on the seeded model and batch of
`tests/reference_model.py` (the JSON says how, with which commits). Each method's default settings, at the
same ratio, must remove the same units in every layer (Jaccard 1) and FLAP's biases must agree to 1e-3 of
their magnitude.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json

import pytest
import torch
from safetensors.torch import load_file

from harp import methods
from harp.config import BudgetConfig
from harp.pruning.budget import target_removed
from harp.pruning.plan import PruneInputs
from tests.helpers import ROOT, compose
from tests.reference_model import calibration_ids, fingerprint, reference_model

DATA = ROOT / "tests" / "data"
RECORD = json.loads((DATA / "reference_baselines.json").read_text())
ROWS = RECORD["results"]


@functools.cache
def fixture() -> tuple[torch.nn.Module, torch.Tensor]:
    """The references' model and batch, checked to be the very ones they ran on."""
    model, ids = reference_model(RECORD["model"]["seed"]), calibration_ids(RECORD["model"]["seed"])
    seen = fingerprint(model, ids)
    expected = RECORD["model"]
    assert (seen["weights_sha256"], seen["ids_sha256"]) == (expected["weights_sha256"], expected["ids_sha256"])
    assert torch.allclose(torch.tensor(seen["logits"]), torch.tensor(expected["logits"]), atol=1e-4)
    return model, ids


@functools.cache
def configured(method: str):
    return compose(f"method={method}").method


def jaccard(a: list[int], b: list[int]) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def plan_like(row: dict):
    """Plan `row`'s method with its default settings, the row's target and allocation, at the row's ratio
    (of the attention weights for heads only, of all decoder linear weights for heads and channels)."""
    dense, ids = fixture()
    model = copy.deepcopy(dense)
    spec = dataclasses.replace(
        configured(row["method"]), target=row["target"], allocation=row["allocation"], counts="reference"
    )
    kind = "attention_fraction" if row["target"] == "attention" else "ratio"
    target = target_removed(model, BudgetConfig(kind, row["ratio"]), 1)
    inp = PruneInputs(model=model, source="reference fixture", method=spec, calibration=ids, target_removed=target)
    return methods.get(row["method"]).planner(inp)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['method']}-{r['target']}-{r['allocation']}-{r['ratio']}" for r in ROWS])
def test_selection_and_biases_equal_the_reference_code(row):
    plan = plan_like(row)
    layers = [str(i) for i in range(RECORD["model"]["sizes"]["num_hidden_layers"])]
    found = [("removed_heads", "removed_groups")] + [("removed_channels", "removed_channels")] * (
        "removed_channels" in row
    )
    for theirs, ours in found:
        scores = {i: jaccard(plan.details[ours].get(i, []), row[theirs][i]) for i in layers}
        assert all(s == 1.0 for s in scores.values()), (theirs, scores)
    if row["method"] != "flap":
        assert plan.details["removed_channels"] == {} or "removed_channels" in row
    biases = load_file(DATA / RECORD["biases_file"])
    key = f"{row['method']}/{row['target']}/{row['allocation']}/{row['ratio']}"
    for name in row["biases"]:
        reference = biases[f"{key}/{name}"].double()
        ours = plan.tensors.get(name, torch.zeros_like(reference)).double()
        assert (ours - reference).abs().max() <= 1e-3 * reference.abs().max(), name
    assert plan.details["budget"]["counts"] == "reference"
