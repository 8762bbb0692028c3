"""What every stage entry point shares: config validation, one-sentence errors, wandb, provenance."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import hydra
import yaml
from omegaconf import DictConfig

from harp import artifacts
from harp.config import Config, compose, register_configs, validate
from harp.errors import HarpError
from harp.io import atomic_path
from harp.tracking import run_name, tracked_run


def conf_dir() -> str:
    """`conf/` of the checkout we run in (the working directory), else the one beside the package."""
    for candidate in (Path.cwd() / "conf", Path(__file__).resolve().parents[2] / "conf"):
        if (candidate / "config.yaml").exists():
            return str(candidate)
    raise SystemExit("error: no conf/config.yaml found; run from the harp checkout.")


def stage(name: str, per_model: bool = True) -> Callable:
    """Turn `fn(cfg, tracker)` into the Hydra entry point of stage `name` (`tracker`: its wandb run or None).

    `per_model=False` marks stages over all results (collect, report): their wandb run is not
    filed under the default model and method.
    """
    register_configs()

    def wrap(fn: Callable[[Config, object], None]) -> Callable[[], None]:
        @hydra.main(config_path=conf_dir(), config_name="config", version_base="1.3")
        @functools.wraps(fn)
        def main(dcfg: DictConfig) -> None:
            from hydra.core.hydra_config import HydraConfig

            try:
                cfg = validate(dcfg, experiment=HydraConfig.get().runtime.choices.get("experiment"))
                if not cfg.progress:  # the libraries' own bars too (loading weights, lm-eval's requests)
                    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
                    os.environ["TQDM_DISABLE"] = "1"
                writable(Path(cfg.results_dir))
                with stage_lock(cfg, name, per_model), tracked_run(cfg, name, per_model) as tracker:
                    fn(cfg, tracker)
            except HarpError as err:
                print(f"error: {err}", file=sys.stderr)
                sys.exit(2)
            except KeyboardInterrupt:
                print(f"interrupted: {name} wrote nothing partial; rerun the same command to resume.", file=sys.stderr)
                sys.exit(130)

        @functools.wraps(fn)
        def entry() -> None:
            args = sys.argv[1:]
            if {"--help", "-h"} & set(args):  # the stage's own docstring, then Hydra's config help
                print((sys.modules[fn.__module__].__doc__ or "").strip() + "\n")
            elif not any(a.startswith("-") for a in args):  # a plain run: Hydra's errors as one sentence first
                try:
                    compose(conf_dir(), args)
                except HarpError as err:
                    print(f"error: {err}", file=sys.stderr)
                    sys.exit(2)
            main()

        return entry

    return wrap


def writable(results_dir: Path) -> None:
    """Fail before any work when the results folder cannot take outputs (a file, or no permission)."""
    if results_dir.exists() and not results_dir.is_dir():
        raise HarpError(f"results_dir {results_dir} is a file; point results_dir at a folder.")
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise HarpError(f"results_dir {results_dir} cannot be created ({err.strerror}); choose another.") from None
    if not os.access(results_dir, os.W_OK | os.X_OK):
        raise HarpError(f"results_dir {results_dir} is not writable; choose a folder you can write to.")


@contextmanager
def stage_lock(cfg: Config, name: str, per_model: bool = True) -> Iterator[None]:
    """Hold a lock on this job's outputs in the results folder while it runs, so a second run writing them (the
    same job, or one whose config differs in what does not move its outputs, such as `eval.limit` for
    perplexity) is refused instead of writing the same files. The outputs are named by the job's run name:
    model/method/stage/task group/experiment."""
    key = hashlib.sha256(run_name(cfg, name, per_model).encode()).hexdigest()[:16]
    path = artifacts.lock_file(cfg.results_dir, f"{name}-{key}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise HarpError(
                f"Another run is doing this {name} job now ({handle.read().strip() or 'unknown process'}, lock "
                f"{path}); wait for it to finish, or give this run its own results_dir."
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield


def save_config(cfg: Config, out_dir: Path, stage_name: str) -> None:
    """Record the resolved config beside a stage's outputs (provenance)."""
    with atomic_path(artifacts.stage_config(out_dir, stage_name)) as tmp:
        tmp.write_text(yaml.safe_dump(asdict(cfg), sort_keys=False))


def check_model(cfg: Config):
    """The configured model's HF config, after checking the model is there with the configured depth."""
    from harp.models.loading import load_config

    source = cfg.model.source
    if cfg.model.build and not Path(source).exists():
        raise HarpError(
            f"Model {cfg.model.name} is not built yet at {source}: run "
            f"`python -m harp.cli.build_{cfg.model.build} model={cfg.model.name}` (snakemake does it)."
        )
    config = load_config(source)
    if config.num_hidden_layers != cfg.model.num_layers:
        raise HarpError(
            f"{source} has {config.num_hidden_layers} decoder layers but "
            f"conf/model/{cfg.model.name}.yaml says {cfg.model.num_layers}."
        )
    return config


def load_for(cfg: Config):
    """`(model, tokenizer)` of the configured model, checked first."""
    from harp.models.loading import load_model

    check_model(cfg)
    return load_model(
        cfg.model.source,
        dtype=cfg.model.dtype,
        device=cfg.device,
        device_map=cfg.model.device_map,
        attn_implementation=cfg.model.attn_implementation,
    )


def log(tracker, metrics: dict) -> None:
    if tracker is not None:
        tracker.log(metrics)
