"""The standalone LaTeX document of every table, and its PDF when pdflatex is installed.

The document only `\\input`s the table files beside it, so what compiles here is what a paper inputs.
pdflatex runs in a temporary directory; its log is kept (it explains a failure) and parsed for boxes that
overflow the page, which the report stage reports and the tests forbid.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harp.errors import HarpError
from harp.io import atomic_path
from harp.report.tables import latex_escape

# T1: `<`, `>` and `|` print as themselves (OT1 has no such glyphs: `L<i>` came out as "L¡i¿"); booktabs: rules;
# graphicx: \resizebox (tables scaled down to the page); rotating: sidewaystable (the widest tables, landscape)
PACKAGES = ("[T1]{fontenc}", "{booktabs}", "{graphicx}", "{rotating}")
OVERFULL = re.compile(r"^Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)", re.M)
TOO_LARGE = re.compile(r"Float too large for page by (\d+(?:\.\d+)?)pt", re.M)
TIMEOUT_S = 300


def document(names: list[str], notes: str = "") -> str:
    """A document that opens with the `notes` the tables share (LaTeX-escaped here) and inputs the tables `names`
    (file stems beside it), one page each."""
    preamble = "\n".join(f"\\usepackage{p}" for p in PACKAGES)
    opening = f"\\noindent\\textbf{{Notes to every table.}} {latex_escape(notes)}\n\\clearpage\n" if notes else ""
    inputs = "\n".join(f"\\input{{{name}}}\n\\clearpage" for name in names)
    return f"\\documentclass{{article}}\n{preamble}\n\\begin{{document}}\n{opening}{inputs}\n\\end{{document}}\n"


def overflows(log: str) -> list[str]:
    """Every overfull line wider than 1 pt and every float taller than the page, as pdflatex logged them."""
    wide = [f"an overfull line {w} pt too wide" for w in OVERFULL.findall(log) if float(w) > 1.0]
    return wide + [f"a float {h} pt taller than the page" for h in TOO_LARGE.findall(log)]


def _first_error(log: str, returncode: int) -> str:
    errors = [line[2:].strip() for line in log.splitlines() if line.startswith("! ")]
    return errors[0] if errors else f"exit status {returncode}"


def build_pdf(tex: Path, log: Path) -> Path | None:
    """Compile `tex` into the PDF beside it and keep pdflatex's log at `log`; None when pdflatex is missing.

    A LaTeX error raises a `HarpError` naming its first error and the log; the PDF is then not written.
    """
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        return None
    with tempfile.TemporaryDirectory(prefix="harp-latex-") as out:
        command = [pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape"]
        try:
            done = subprocess.run(
                [*command, f"-output-directory={out}", tex.name],
                cwd=tex.parent,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise HarpError(f"pdflatex did not finish {tex.name} within {TIMEOUT_S} s; no PDF was written.") from None
        written = Path(out) / tex.with_suffix(".log").name
        text = written.read_text(errors="replace") if written.exists() else done.stdout
        with atomic_path(log) as tmp:
            tmp.write_text(text)
        pdf = Path(out) / tex.with_suffix(".pdf").name
        if done.returncode != 0 or not pdf.exists():
            raise HarpError(
                f"pdflatex could not build {pdf.name} from {tex.name} ({_first_error(text, done.returncode)}); "
                f"see the log {log}."
            )
        with atomic_path(tex.with_suffix(".pdf")) as tmp:
            shutil.copyfile(pdf, tmp)
    return tex.with_suffix(".pdf")
