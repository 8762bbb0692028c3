"""What each intermediate artifact was made from: its producer records it, every consumer checks it first.

Beside a calibration set, HARP's alphas or a pruning plan, the stage that wrote it keeps a record
(`artifacts.provenance`): the content hash of the artifact, the settings that shaped it (`shaping`), and the
content hash of each upstream artifact it read, named relative to it so that a results folder can move.
A stage that reads the artifact recomputes those settings from its own config before it computes, and refuses
in one sentence, with the command that rebuilds the artifact, when the record is missing, the artifact changed
after it was written, a setting differs, or an upstream artifact changed since. Snakemake never meets these
refusals (it rebuilds from one config, in order); a stage run by hand does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harp import artifacts, methods
from harp.config import Config
from harp.errors import HarpError
from harp.io import read_json, write_json

STAGE = {"calibration": "calibrate", "alphas": "search", "plan": "prune"}  # the stage that writes each kind


def shaping(kind: str, cfg: Config) -> dict[str, Any]:
    """The settings of `cfg` that shape an artifact of `kind`, as flat `key: value` (JSON values).

    A consumer's config says only what it knows: HARP+FLAP reads HARP's alphas without HARP's search grid,
    so the alphas' grid is compared only where the consumer has one."""
    if kind == "calibration":
        found = {"model.name": cfg.model.name, "calibration": asdict(cfg.calibration_set())}
    elif kind == "alphas":
        found = {"model.name": cfg.model.name, "layers": cfg.pruned_layers(), "alphas": cfg.fixed_alphas()}
        if search := getattr(cfg.method, "search", None):
            found |= {"method.search.grid": search.grid, "method.search.order": search.order}
    elif kind == "plan":
        method = asdict(cfg.method)
        if "num_layers" in method:  # null means the model's L: the count itself is what shaped the plan
            method["num_layers"] = cfg.layer_count()
        found = {"model.name": cfg.model.name, "method": method}
        if methods.get(cfg.method.name).budgeted:
            found |= {"budget": asdict(cfg.budget), "layers": cfg.layer_count()}
    else:
        raise ValueError(f"no provenance kind {kind!r}")
    return json.loads(json.dumps(_flat(found)))  # as the record reads back: lists, string keys


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def files_of(kind: str, path: Path) -> list[Path]:
    """The files an artifact consists of: a plan (`path`: its JSON) has, for some methods, tensors beside it."""
    return [path, artifacts.plan_tensors(path.parent)] if kind == "plan" else [path]


def plan_hash(path: str | Path) -> str:
    """A short content hash of a saved plan (its folder or JSON file; JSON and tensors), which every measurement of
    the plan records, so that a result is tied to the plan it measured."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    digest = hashlib.sha256()
    for file in (artifacts.plan(directory), artifacts.plan_tensors(directory)):
        if file.exists():
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def content_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        if file.exists():
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


@contextmanager
def recording(kind: str, cfg: Config, path: Path, inputs: list[Path] = ()) -> Iterator[None]:
    """Write the artifact of `kind` at `path` inside the block; its record follows it only if the block succeeds.
    The old record goes first, so a run killed between the two leaves an artifact without a record (refused),
    never a new artifact under an old record."""
    record_path = artifacts.provenance(path)
    record_path.unlink(missing_ok=True)
    yield
    anchor = record_path.parent
    write_json(
        record_path,
        {
            "kind": kind,
            "sha256": content_hash(files_of(kind, path)),
            "settings": shaping(kind, cfg),
            "inputs": {os.path.relpath(p, anchor): content_hash([Path(p)]) for p in inputs},
        },
    )


def check(kind: str, cfg: Config, path: Path, settings: bool = True) -> None:
    """Refuse the artifact of `kind` at `path` unless its record matches its content, its upstream artifacts and
    (with `settings`) the settings `cfg` would make it with. Call after the artifact's own reader: a damaged file is
    its reader's sentence; a well-formed file that is not what this run asks for is this one's."""
    record_path = artifacts.provenance(path)
    rebuild = f"rebuild it with this run's settings: {_command(kind, cfg)}"
    if not record_path.exists():
        raise HarpError(
            f"{path} has no provenance record ({record_path.name}: written by an older harp, or its "
            f"{STAGE[kind]} job was stopped before it finished); {rebuild}."
        )
    record = read_json(record_path)
    if not isinstance(record, dict) or not {"sha256", "settings", "inputs"} <= set(record):
        raise HarpError(f"{record_path} is not a provenance record; delete it and {rebuild}.")
    if content_hash(files_of(kind, path)) != record["sha256"]:
        raise HarpError(f"{path} changed after the {STAGE[kind]} stage wrote it (its record differs); {rebuild}.")
    if settings:
        want, made = shaping(kind, cfg), record["settings"]
        for key, value in want.items():
            if made.get(key, value) != value:
                raise HarpError(
                    f"{path} was made with {key}={_shown(made[key])} but this run asks for {key}={_shown(value)}; "
                    f"run with the settings it was made with, or {rebuild}."
                )
    anchor = record_path.parent
    for name, digest in record["inputs"].items():
        upstream = anchor / name
        if content_hash([upstream]) != digest:
            state = "changed" if upstream.exists() else "is gone"
            raise HarpError(f"{path} was made from {upstream.resolve()}, which {state} since; {rebuild}.")


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) or value is None else str(value)


def _command(kind: str, cfg: Config) -> str:
    """The stage that writes `kind`, with the overrides of this run (HARP's search for the alphas)."""
    args = sys.argv[1:]
    if kind == "alphas" and cfg.method.name != methods.SEARCHED:
        args = [a for a in args if not a.startswith(("method=", "method."))] + [f"method={methods.SEARCHED}"]
    return "`" + " ".join(["python", "-m", f"harp.cli.{STAGE[kind]}", *map(shlex.quote, args)]) + "`"
