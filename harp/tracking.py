"""wandb for every stage run: project from config, group = model, job_type = stage.

Offline by default: runs land under `results/wandb/` and can be uploaded later with `wandb sync`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from harp.config import Config


@contextmanager
def tracked_run(cfg: Config, stage: str, per_model: bool = True) -> Iterator[object | None]:
    """A wandb run for one stage, or None when tracking is disabled.

    Per-model stages are grouped by model and named model/method/stage; the others by stage.
    """
    if not cfg.tracking.enabled or cfg.tracking.mode == "disabled":
        yield None
        return
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    Path(cfg.tracking.dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=cfg.tracking.project,
        entity=cfg.tracking.entity,
        group=cfg.model.name if per_model else stage,
        job_type=stage,
        name="/".join(
            filter(
                None,
                [cfg.model.name if per_model else None, cfg.method.name if per_model else None, stage, cfg.experiment],
            )
        ),
        config=asdict(cfg),
        dir=cfg.tracking.dir,
        mode=cfg.tracking.mode,
        tags=[t for t in (cfg.experiment, "tiny" if per_model and cfg.model.build else None) if t],
        reinit="create_new",
    )
    try:
        yield run
    finally:
        run.finish()
