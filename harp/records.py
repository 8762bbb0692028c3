"""Reading and writing the JSON records the stages pass to each other (torch-free).

Each reader checks what it returns, so a damaged file is one sentence naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harp.errors import HarpError
from harp.io import read_json, write_json


def write_alphas(path: str | Path, alphas: dict[int, float], **summary: Any) -> None:
    """The search stage's record: the summary first, then `alphas` (layer -> alpha, keys as strings)."""
    write_json(path, summary | {"alphas": {str(k): v for k, v in alphas.items()}})


def read_alphas_record(path: str | Path) -> dict[str, Any]:
    """The whole alphas record, its `alphas` checked and converted to {layer: alpha}."""
    data = read_json(path)
    try:
        data["alphas"] = {int(k): float(v) for k, v in data["alphas"].items()}
    except (TypeError, KeyError, ValueError, AttributeError):
        raise HarpError(f"{path} holds no valid alphas; delete it and rerun the search stage.") from None
    return data


def read_alphas(path: str | Path) -> dict[int, float]:
    return read_alphas_record(path)["alphas"]
