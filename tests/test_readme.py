"""Every command the README shows runs as written: dry where it would be long (`make -n`, `snakemake -n`, a Hydra
stage's `--cfg job`, which composes and checks its overrides and prints the config without running the stage,
an argparse tool's `--help`)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

ARGPARSE = {"download", "bigbench_check", "bench_search", "bench_attn_mask", "unlock"}  # the tools without Hydra


def readme_commands() -> list[str]:
    """The commands of the README's bash blocks and of its inline `python -m harp.cli...`/`snakemake ...` code."""
    text = (ROOT / "README.md").read_text()
    blocks = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    inline = re.findall(r"`((?:python -m harp\.cli|snakemake )[^`\n]*)`", text)
    commands = []
    for line in [*blocks, *inline]:
        line = re.sub(r"\s+#.*$", "", line).strip()
        commands += [part.strip() for part in line.split("&&") if part.strip()]
    # placeholders (`<stage>`, `--cores N`) are not commands; conda is not installed where the tests run; a report
    # needs a finished run (the smoke test in test_workflow.py builds one)
    skip = ("<", "deployment-method conda", "--report")
    runnable = [c for c in commands if not any(k in c for k in skip) and not c.endswith(" N")]
    return list(dict.fromkeys(runnable))


def dry(command: str, workdir: Path) -> list[tuple[list[str], Path]]:
    """The dry form(s) of one README command, with the directory each runs in."""
    words = shlex.split(command)
    bin_dir = Path(sys.executable).parent
    if words[0] == "make":
        return [(["make", "-n", *words[1:]], ROOT)]
    if words[0] == "snakemake":
        args = [w for w in words[1:] if w not in ("-n",)]
        return [([str(bin_dir / "snakemake"), "--quiet", "-n", "-s", str(ROOT / "Snakefile"), *args], workdir)]
    assert words[:2] == ["python", "-m"], command
    module, args = words[2], words[3:]
    if module.rsplit(".", 1)[-1] in ARGPARSE:
        return [([sys.executable, "-m", module, *args, "--help"], ROOT)]
    if "-m" in args:  # a Hydra multirun: each of its sweeps, composed alone
        args.remove("-m")
        sweep = next(a for a in args if "," in a.partition("=")[2] and not a.partition("=")[2].startswith("["))
        key, _, values = sweep.partition("=")
        runs = [[a if a != sweep else f"{key}={v}" for a in args] for v in values.split(",")]
        return [([sys.executable, "-m", module, *run, "--cfg", "job"], ROOT) for run in runs]
    return [([sys.executable, "-m", module, *args, "--cfg", "job"], ROOT)]


def test_the_readme_shows_commands():
    commands = readme_commands()
    assert {"make demo", "make test"} <= set(commands) and len(commands) > 20


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_runs_as_written(command, tmp_path):
    for argv, cwd in dry(command, tmp_path):
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{' '.join(argv)}\n{done.stdout[-1500:]}{done.stderr[-3000:]}"
