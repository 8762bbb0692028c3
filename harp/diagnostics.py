"""The diagnose stage's record (torch-free): Theorem 1's premise measured per layer, and the layer ranking read from it.

One CSV per model and experiment (`harp.artifacts.diagnostics`), one row per decoder layer, written whole or not
at all. The reader checks the whole file before anything uses it (header, one complete row per layer, finite
values in range), so a damaged file is never half-read: it is one sentence telling the user to rerun the
diagnose stage, which recomputes it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from harp.errors import HarpError
from harp.io import atomic_path
from harp.records import read_csv_whole

# the measurements (harp.eval.layer_diagnostics defines each), then what they were measured on
MEASURES = ("token_similarity", "attention_entropy", "passthrough_error", "passthrough_alpha")
COLUMNS = ["layer", *MEASURES, "source", "sequences", "tokens"]
# range each measure must lie in (similarity is a cosine; entropy is normalised; the error is relative and
# least-squares fitted, so never above 1); alpha* is any finite number
RANGES = {
    "token_similarity": (-1.0, 1.0),
    "attention_entropy": (0.0, 1.0),
    "passthrough_error": (0.0, 1.0),
    "passthrough_alpha": (-math.inf, math.inf),
}
TOLERANCE = 1e-6  # float rounding at the ends of a range

# How `layer_position=diagnosed` ranks the layers: the highest token similarity first, Theorem 1's own quantity,
# so the experiment tests the paper's argument (prune where its premise holds best). Not the lowest pass-through
# error: relative to the attention output, it ignores how much that output weighs in the residual stream. On
# SmolLM2-135M it would pick layers 0 and 1, the two whose pruning costs most (conf/experiment/similarity_layers.yaml).
RANK_BY, RANK_LOWEST_FIRST = "token_similarity", False


def write_diagnostics(path: str | Path, rows: list[dict]) -> None:
    """Write the per-layer rows (keys: `COLUMNS`) atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_diagnostics(path: str | Path, num_layers: int | None = None) -> list[dict]:
    """The rows of a diagnostics file, checked whole: the header, layers 0..N-1 in order (N = `num_layers` when
    given), every value present, finite and in range, the file complete. Anything else is one sentence."""
    fix = "rerun the diagnose stage (`python -m harp.cli.diagnose`), which recomputes it"
    lines = read_csv_whole(path, COLUMNS, "a diagnostics file", fix)
    rows = [_typed(Path(path), number, dict(zip(COLUMNS, values)), fix) for number, values in enumerate(lines, 2)]
    if [r["layer"] for r in rows] != list(range(len(rows))):
        raise HarpError(f"{path} does not list the layers 0..{len(rows) - 1} in order; {fix}.")
    if num_layers is not None and len(rows) != num_layers:
        raise HarpError(f"{path} describes {len(rows)} layers but the model has {num_layers}; {fix}.")
    return rows


def _typed(path: Path, number: int, row: dict, fix: str) -> dict:
    kinds = {"layer": int, "source": str, "sequences": int, "tokens": int} | dict.fromkeys(MEASURES, float)
    try:
        typed = {c: kinds[c](row[c]) for c in COLUMNS}
    except ValueError:
        raise HarpError(f"{path}: line {number} holds a value that is not a number; {fix}.") from None
    for measure, (low, high) in RANGES.items():
        value = typed[measure]
        if not math.isfinite(value) or not low - TOLERANCE <= value <= high + TOLERANCE:
            raise HarpError(f"{path}: line {number}'s {measure} is {value}, outside [{low}, {high}]; {fix}.")
    return typed


def rank_layers(rows: list[dict]) -> list[int]:
    """Layer indices, best first by `RANK_BY` (ties: the higher layer first, as the paper's top-L choice)."""
    sign = 1.0 if RANK_LOWEST_FIRST else -1.0
    return [r["layer"] for r in sorted(rows, key=lambda r: (sign * r[RANK_BY], -r["layer"]))]


def read_ranking(path: str | Path, num_layers: int) -> list[int]:
    """The layers of a `num_layers`-layer model ranked by its diagnostics file, best first."""
    return rank_layers(read_diagnostics(path, num_layers))
