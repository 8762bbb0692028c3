"""Write the offline fixtures of the 27 evaluation tasks: `python -m harp.cli.fixtures`.

Writes `<eval.fixtures_dir>/` (default `results/fixtures/`): `data/<task>/<split>.jsonl`, the data alone (the
evaluate stage points lm-eval's task definitions at it where it lies, so the folder can move). Deterministic for
a given Python and lm-eval version.
"""

from __future__ import annotations

from pathlib import Path

from harp.cli._app import stage
from harp.config import Config
from harp.eval.fixtures import write_fixtures
from harp.io import atomic_dir


@stage("fixtures")
def main(cfg: Config, tracker) -> None:
    target = Path(cfg.eval.fixtures_dir).resolve()
    with atomic_dir(target) as tmp:
        tasks = write_fixtures(tmp)
    print(f"offline fixtures of {len(tasks)} tasks -> {target}")


if __name__ == "__main__":
    main()
