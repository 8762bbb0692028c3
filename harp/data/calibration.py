"""Calibration sequences: random fixed-length token windows from a text source.

Sources: `corpus` (the embedded pydoc train split, offline), `wikitext2` (train split, as FLAP and
HARP use) and `c4` (the first shard of allenai/c4, as Wanda uses). Real datasets come through
`datasets`; offline and uncached they fail with one sentence, never a silent substitute.
"""

from __future__ import annotations

from pathlib import Path

import torch

from harp.config import TEXT_SOURCES
from harp.data.corpus import corpus_splits
from harp.errors import HarpError
from harp.io import atomic_path


def _load_hf(path: str, **kwargs):
    import datasets

    try:
        return datasets.load_dataset(path, **kwargs)
    except Exception as err:  # datasets raises many types for "not available offline"
        raise HarpError(
            f"Dataset {path!r} is not available ({type(err).__name__}); it is needed for this calibration "
            "source: download it once online, or use data.calibration.source=corpus."
        ) from None


def source_texts(source: str, split: str = "train") -> list[str]:
    """Documents of a calibration source."""
    if source == "corpus":
        splits = corpus_splits()  # its only other split is the held-out one
        return splits.train if split == "train" else splits.heldout
    if source == "wikitext2":
        ds = _load_hf("wikitext", name="wikitext-2-raw-v1", split=split)
        return ["\n\n".join(ds["text"])]
    if source == "c4":
        shard = "en/c4-train.00000-of-01024.json.gz" if split == "train" else "en/c4-validation.00000-of-00008.json.gz"
        ds = _load_hf("allenai/c4", data_files={split: shard}, split=split)
        return list(ds["text"][:5000])
    raise HarpError(f"Unknown calibration source {source!r}; choose one of {', '.join(TEXT_SOURCES)}.")


def calibration_ids(tokenizer, source: str, num_samples: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """`num_samples` windows of `seq_len` tokens drawn uniformly (seeded) from the source's token stream."""
    ids: list[int] = []
    for doc in source_texts(source):
        ids.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    stream = torch.tensor(ids, dtype=torch.long)
    if len(stream) <= seq_len:
        raise HarpError(f"Calibration source {source!r} has {len(stream)} tokens, fewer than seq_len={seq_len}.")
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(stream) - seq_len, (num_samples,), generator=gen)
    return torch.stack([stream[s : s + seq_len] for s in starts.tolist()])


def save_calibration(path: str | Path, ids: torch.Tensor, source: str, seed: int) -> None:
    with atomic_path(path) as tmp:
        torch.save({"input_ids": ids, "source": source, "seed": seed}, tmp)


def load_calibration(path: str | Path) -> torch.Tensor:
    """The calibration ids the calibrate stage wrote; a missing or corrupt file is one sentence."""
    path = Path(path)
    if not path.exists():
        raise HarpError(f"{path} does not exist; run the calibrate stage first.")
    try:
        return torch.load(path, weights_only=True)["input_ids"]
    except Exception as err:
        raise HarpError(
            f"{path} is unreadable ({type(err).__name__}); delete it and rerun the calibrate stage."
        ) from None
