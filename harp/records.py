"""Reading and writing the records the stages pass to each other (JSON, and CSV tables; torch-free): the one
reader per record.

Each reader checks the record's shape, types and finiteness before anything uses it, so a damaged or
hand-edited file is one sentence that names the file and the fix, never a traceback or a NaN result.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from harp.errors import HarpError
from harp.io import read_json, write_json

NUMBER = (int, float)
OPTIONAL_INT = (int, type(None))
EVAL_FIELDS = {
    "model": str,
    "method": str,
    "task": str,
    "category": str,
    "metrics": dict,
    "primary_metric": str,
    "score": NUMBER,
    "n_samples": int,
    "num_fewshot": OPTIONAL_INT,
    "limit": OPTIONAL_INT,
    "fixture": bool,
    "tiny_model": bool,
}
PERPLEXITY_FIELDS = {"perplexity": NUMBER, "tokens": int, "source": str, "model": str, "method": str}
# the speed benchmark's CSV (one row per variant, phase and length), after its model and method columns
SPEED_COLUMNS = ["variant", "phase", "seq_len", "median_s", "min_s", "max_s", "tokens_per_s", "speedup", "bound",
                 "peak_mem_bytes", "kv_cache_bytes", "device", "dtype", "random_weights"]  # fmt: skip
# the alpha search's trace (artifacts.search_trace): one row per tried (layer, alpha)
TRACE_COLUMNS = ["step", "layer", "alpha", "perplexity"]
# the mask_compare stage's CSV (attn_mask against wanda_qk): one row per method, ranking, sparsity and metric
MASK_COMPARE_COLUMNS = ["method", "rank_by", "sparsity", "layer", "metric", "value", "source", "tokens", "tiny_model"]
PLAN_FIELDS = {
    "method": str,
    "model": str,
    "layers": list,
    "params_before": int,
    "params_after": int,
    "kv_cache_reduction": NUMBER,
    "alphas": dict,
    "details": dict,
}


def check_fields(path: str | Path, data: Any, fields: dict[str, Any], fix: str) -> dict:
    """`data` as a JSON object holding `fields` (key -> type or tuple of types; numbers must be finite)."""
    if not isinstance(data, dict):
        raise HarpError(f"{path} holds {type(data).__name__}, not a JSON object; {fix}.")
    for key, kind in fields.items():
        if key not in data:
            raise HarpError(f"{path} lacks the key {key!r}; {fix}.")
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
            raise HarpError(f"{path}: {key} is {value!r}, not {_names(kind)}; {fix}.")
        if isinstance(value, float) and not math.isfinite(value):
            raise HarpError(f"{path}: {key} is {value}, not a finite number; {fix}.")
    return data


def _types(kind: Any) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: Any) -> str:
    return " or ".join("null" if t is type(None) else "a number" if t is float else t.__name__ for t in _types(kind))


def write_alphas(path: str | Path, alphas: dict[int, float], **summary: Any) -> None:
    """The search stage's record: the summary first, then `alphas` (layer -> alpha, keys as strings)."""
    write_json(path, summary | {"alphas": {str(k): v for k, v in alphas.items()}})


def read_csv_whole(path: str | Path, columns: list[str], what: str, fix: str) -> list[list[str]]:
    """The data rows of a CSV file harp wrote, checked whole before anything reads it: readable UTF-8, the
    header `columns`, at least one row, every row complete and the last one ended (a write cut short). Anything
    else is one sentence naming the file, what it should be (`what`) and the `fix`."""
    path = Path(path)
    if not path.exists():
        raise HarpError(f"{path} does not exist; {fix}.")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise HarpError(f"{path} is not UTF-8 text; {fix}.") from None
    except OSError as err:
        raise HarpError(f"{path} cannot be read ({err.strerror}); {fix}.") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != columns:
        raise HarpError(f"{path} is not {what} (its header is not {','.join(columns)}); {fix}.")
    if len(rows) == 1:
        raise HarpError(f"{path} holds no rows, only its header; {fix}.")
    short = next((i for i, row in enumerate(rows[1:], start=2) if len(row) != len(columns)), None)
    if short is not None or not text.endswith("\n"):
        raise HarpError(f"{path} is truncated (line {short or len(rows)} is incomplete); {fix}.")
    return rows[1:]


def check_alphas(path: str | Path, alphas: dict, fix: str) -> dict[int, float]:
    """A record's alphas (JSON: layer strings -> numbers) as {layer: alpha}: integer layers, finite alphas in [0, 1]."""
    checked = {}
    for layer, alpha in alphas.items():
        if not str(layer).isdigit() or not isinstance(alpha, NUMBER) or isinstance(alpha, bool):
            raise HarpError(f"{path}: the alpha of layer {layer!r} is {alpha!r}, not a number; {fix}.")
        if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
            raise HarpError(f"{path}: the alpha of layer {layer} is {alpha}, outside [0, 1]; {fix}.")
        checked[int(layer)] = float(alpha)
    return checked


def read_alphas_record(path: str | Path) -> dict[str, Any]:
    """The whole alphas record (the search stage), its `alphas` checked (`check_alphas`) as {layer: alpha}."""
    fix = "delete it and rerun the search stage"
    data = check_fields(path, read_json(path), {"alphas": dict}, fix)
    return data | {"alphas": check_alphas(path, data["alphas"], fix)}


def read_alphas(path: str | Path) -> dict[int, float]:
    return read_alphas_record(path)["alphas"]


def read_plan_record(path: str | Path) -> dict[str, Any]:
    """A plan's JSON (the prune stage) as written, its fields checked and its alphas as {layer: alpha}; the
    plan's tensors are `harp.pruning.plan.load_plan`'s to read."""
    fix = "delete it and rerun the prune stage"
    data = check_fields(path, read_json(path), PLAN_FIELDS | {"tensors": list}, fix)
    return data | {"alphas": check_alphas(path, data["alphas"], fix)}


def read_eval_result(path: str | Path) -> dict[str, Any]:
    """One task's result (the evaluate stage), its score a finite number."""
    return check_fields(path, read_json(path), EVAL_FIELDS, "delete it and rerun the evaluate stage")


def read_perplexity(path: str | Path) -> dict[str, Any]:
    """A perplexity record (the perplexity stage), its perplexity a finite number."""
    return check_fields(path, read_json(path), PERPLEXITY_FIELDS, "delete it and rerun the perplexity stage")


def finite(value: float, what: str, fix: str) -> float:
    """`value` if finite; a NaN or infinite result is an error, never a result."""
    if not math.isfinite(value):
        raise HarpError(f"{what} is {value}; {fix}.")
    return value
