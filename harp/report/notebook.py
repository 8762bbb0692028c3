"""The results notebook (notebooks/results.ipynb) executed on a results folder, so its plots ship with the run."""

from __future__ import annotations

import os
from pathlib import Path

from harp.errors import HarpError
from harp.io import atomic_path

SOURCE = Path(__file__).resolve().parents[2] / "notebooks" / "results.ipynb"
TIMEOUT_S = 300


def execute_notebook(results_dir: Path, out: Path, source: Path = SOURCE) -> bool:
    """Run `source` top to bottom on `results_dir` (HARP_RESULTS_DIR) and write it with its outputs to `out`.

    False when nbclient or a Python kernel is not installed (the notebook is then skipped, like the PDF without
    pdflatex); a cell that fails is one sentence naming it.
    """
    try:
        import nbformat
        from jupyter_client.kernelspec import NoSuchKernel
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError:
        return False
    notebook = nbformat.read(source, as_version=4)
    previous = os.environ.get("HARP_RESULTS_DIR")
    os.environ["HARP_RESULTS_DIR"] = str(Path(results_dir).resolve())
    try:
        client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3")
        client.execute(cwd=str(source.parent))
    except NoSuchKernel:
        return False
    except CellExecutionError as err:
        raise HarpError(f"{source.name} fails on {results_dir}: {str(err).strip().splitlines()[-1]}") from None
    finally:
        if previous is None:
            os.environ.pop("HARP_RESULTS_DIR", None)
        else:
            os.environ["HARP_RESULTS_DIR"] = previous
    with atomic_path(out) as tmp:
        nbformat.write(notebook, str(tmp))
    return True
