"""The embedded offline corpus: CPython's `pydoc_data.topics`, split by topic into train and held-out.

Splitting by topic (not by character offset) keeps held-out text genuinely unseen: no document
straddles the boundary. The split is deterministic for a given Python version (the topics text
ships with the interpreter and changes between releases).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

HELDOUT_EVERY = 10  # every 10th topic, in sorted order, is held out


@dataclass(frozen=True)
class CorpusSplits:
    train: list[str]
    heldout: list[str]

    @property
    def heldout_text(self) -> str:
        return "\n\n".join(self.heldout)


@lru_cache(maxsize=1)
def corpus_splits() -> CorpusSplits:
    """Return the pydoc topics as documents, every `HELDOUT_EVERY`-th (sorted by name) held out."""
    from pydoc_data.topics import topics

    train, heldout = [], []
    for i, name in enumerate(sorted(topics)):
        text = topics[name].strip()
        if not text:
            continue
        (heldout if i % HELDOUT_EVERY == HELDOUT_EVERY // 2 else train).append(text)
    return CorpusSplits(train=train, heldout=heldout)
