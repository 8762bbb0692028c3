"""Write the offline fixtures of the 27 evaluation tasks: `python -m harp.cli.fixtures`.

Writes `<eval.fixtures_dir>/` (default `results/fixtures/`): `data/<task>/<split>.jsonl` and
`tasks/*.yaml` (lm-eval task definitions repointed at that data). Deterministic for a given Python
and lm-eval version; the YAMLs hold absolute paths, so rerun this after moving the directory.
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
        tasks = write_fixtures(tmp, final=target)
    print(f"offline fixtures of {len(tasks)} tasks -> {target}")


if __name__ == "__main__":
    main()
