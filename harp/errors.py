"""One exception type for mistakes a user can fix; entry points print it as one sentence."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


class HarpError(Exception):
    """A user-facing error: bad input, a missing model or dataset, an impossible setting."""


@contextmanager
def one_sentence() -> Iterator[None]:
    """A HarpError inside the block ends the program as `error: <sentence>` with exit code 2: every stage, and the
    Snakefile while it reads the workflow (Snakemake's WorkflowError would add its file, line and source lines)."""
    try:
        yield
    except HarpError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
