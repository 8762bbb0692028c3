"""Build the embedded default model: `python -m harp.cli.build_tiny` (writes conf model.source)."""

from __future__ import annotations

from pathlib import Path

from harp.cli._app import log, stage
from harp.config import Config
from harp.errors import HarpError
from harp.models.tiny import TinyConfig, build_tiny


@stage("build_tiny")
def main(cfg: Config, tracker) -> None:
    if cfg.model.build != "tiny":
        raise HarpError(f"model={cfg.model.name} is downloaded, not built; build_tiny only builds model=tiny.")
    summary = build_tiny(
        Path(cfg.model.source), TinyConfig(seed=cfg.seed, num_layers=cfg.model.num_layers), progress=cfg.progress
    )
    log(tracker, {"heldout_perplexity": summary["heldout_perplexity"], "parameters": summary["parameters"]})
    print(
        f"tiny model: {summary['parameters'] / 1e6:.2f}M parameters, held-out perplexity "
        f"{summary['heldout_perplexity']:.1f} after {summary['config']['steps']} steps "
        f"({summary['train_seconds']} s) -> {cfg.model.source}"
    )


if __name__ == "__main__":
    main()
