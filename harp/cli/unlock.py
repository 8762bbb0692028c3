"""Release Snakemake's lock on this checkout when the run that held it was killed (`make demo` runs this first).

    python -m harp.cli.unlock            # in the checkout

A run killed hard (SIGKILL, an out-of-memory kill) leaves `.snakemake/locks/` behind and the next `snakemake`
refuses to start. This removes those locks, as `snakemake --unlock` would, only when no snakemake process works
in this directory, so it never breaks into a live run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def live_snakemake(workdir: Path) -> list[int]:
    """Pids of the snakemake processes whose working directory is `workdir` (Linux: read from /proc)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "snakemake" in command and Path(os.readlink(proc / "cwd")).resolve() == workdir.resolve():
                pids.append(int(proc.name))
        except OSError:  # a process that ended meanwhile, or one we may not inspect
            continue
    return [pid for pid in pids if pid != os.getpid()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", nargs="?", default=".", type=Path, help="the checkout (default: here)")
    args = parser.parse_args(argv)
    locks = list((args.workdir / ".snakemake" / "locks").glob("*"))
    if not locks:
        return 0
    if pids := live_snakemake(args.workdir):
        print(f"snakemake is running in {args.workdir} (pid {', '.join(map(str, pids))}); its lock stays.")
        return 0
    print(f"releasing the lock of a killed run in {args.workdir} (no snakemake is running there)")
    for lock in locks:  # what `snakemake --unlock` removes, without parsing the workflow again
        lock.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
