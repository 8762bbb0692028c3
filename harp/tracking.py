"""wandb for every stage run: project from config, group = model, job_type = stage.

Offline by default: runs land under `results/wandb/` and can be uploaded later with `wandb sync`.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from urllib.parse import urlparse

from harp.config import Config
from harp.errors import HarpError


def logged_in() -> bool:
    """Whether wandb has credentials (the environment or ~/.netrc), checked before any work instead of after."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def run_name(cfg: Config, stage: str, per_model: bool = True) -> str:
    """model/method/stage[/task group][/experiment]: one name per job, so runs of one method's evaluation
    shards (one per task or category) are told apart."""
    from harp.eval.tasks import job_group

    group = job_group(cfg.eval.tasks, cfg.eval.select) if stage == "evaluate" else None
    model, method = (cfg.model.name, cfg.method.name) if per_model else (None, None)
    return "/".join(filter(None, [model, method, stage, group, cfg.experiment]))


@contextmanager
def tracked_run(cfg: Config, stage: str, per_model: bool = True) -> Iterator[object | None]:
    """A wandb run for one stage, or None when tracking is disabled.

    Per-model stages are grouped by model and named model/method/stage; the others by stage.
    """
    if not cfg.tracking.enabled or cfg.tracking.mode == "disabled":
        yield None
        return
    if cfg.tracking.mode == "online" and not logged_in():
        raise HarpError(
            "tracking=online needs a wandb login: run `wandb login` (or set WANDB_API_KEY), or use "
            "tracking=offline and upload later with `wandb sync`."
        )
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    Path(cfg.tracking.dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=cfg.tracking.project,
        entity=cfg.tracking.entity,
        group=cfg.model.name if per_model else stage,
        job_type=stage,
        name=run_name(cfg, stage, per_model),
        config=asdict(cfg),
        dir=cfg.tracking.dir,
        mode=cfg.tracking.mode,
        tags=[t for t in (cfg.experiment, "tiny-model" if per_model and cfg.model.toy else None) if t],
        reinit="create_new",
    )
    try:
        yield run
    finally:
        run.finish()
