"""Atomic writes: a stage's output appears whole or not at all, so a killed run is never taken as done."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _clear_leftovers(path: Path) -> None:
    """Remove temporaries of `path` that a killed run left behind. Safe because every output file has one
    writing job (stage_lock refuses a second run of that job), and a job writes each of its files once."""
    for old in path.parent.glob(f".{path.name}.*.tmp"):
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; outputs are for everyone
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_leftovers(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def writable(results_dir: Path, create: bool = True) -> None:
    """Fail before any work when the results folder cannot take outputs (a file, no permission, a file above it).
    `create=False` (the workflow's plan, also of a dry run) checks the nearest existing folder instead of creating."""
    from harp.errors import HarpError

    if results_dir.exists() and not results_dir.is_dir():
        raise HarpError(f"results_dir {results_dir} is a file; point results_dir at a folder.")
    if create:
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise HarpError(f"results_dir {results_dir} cannot be created ({err.strerror}); choose another.") from None
    existing = next(p for p in (results_dir, *results_dir.parents) if p.exists())
    if not existing.is_dir():
        raise HarpError(f"results_dir {results_dir} cannot be created ({existing} is a file); choose another.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise HarpError(f"results_dir {results_dir} is not writable; choose a folder you can write to.")


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file written by a stage; a corrupt or missing file is a user-facing error."""
    from harp.errors import HarpError

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise HarpError(f"{path} does not exist; run the stage that writes it first.") from None
    except json.JSONDecodeError as e:
        raise HarpError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}); delete it and rerun the stage that writes it."
        ) from None
    except UnicodeDecodeError:
        raise HarpError(f"{path} is not UTF-8 text; delete it and rerun the stage that writes it.") from None
    except OSError as e:
        raise HarpError(f"{path} cannot be read ({e.strerror or type(e).__name__}).") from None
