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

from harp import artifacts, provenance
from harp.config import Config, compose, register_configs, validate
from harp.errors import HarpError, one_sentence
from harp.io import atomic_path, writable
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
                with one_sentence():
                    cfg = validate(dcfg, experiment=HydraConfig.get().runtime.choices.get("experiment"))
                    if not cfg.progress:  # the libraries' own bars too (loading weights, lm-eval's requests)
                        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
                        os.environ["TQDM_DISABLE"] = "1"
                    writable(Path(cfg.results_dir))
                    with stage_lock(cfg, name, per_model), tracked_run(cfg, name, per_model) as tracker:
                        fn(cfg, tracker)
            except KeyboardInterrupt:
                print(f"interrupted: {name} wrote nothing partial; rerun the same command to resume.", file=sys.stderr)
                sys.exit(130)

        @functools.wraps(fn)
        def entry() -> None:
            args = sys.argv[1:]
            if {"--help", "-h"} & set(args):  # the stage's own docstring, then Hydra's config help
                print((sys.modules[fn.__module__].__doc__ or "").strip() + "\n")
            elif not any(a.startswith("-") for a in args):  # a plain run: Hydra's errors as one sentence first
                with one_sentence():
                    compose(conf_dir(), args)
            main()

        return entry

    return wrap


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
    check_context(cfg, getattr(config, "max_position_embeddings", None))
    return config


def check_context(cfg: Config, context: int | None) -> None:
    """Refuse sequences longer than the model's context (its positions beyond it were never trained)."""
    own = getattr(cfg.method, "calibration", None) is not None
    lengths = {
        "method.calibration.seq_len" if own else "data.seq_len": cfg.calibration_set().seq_len,
        "eval.perplexity.window": cfg.eval.perplexity.window,
        "model.max_length": cfg.model.max_length,
    }
    for key, length in lengths.items():
        if context and length > context:
            raise HarpError(
                f"{key}={length} is longer than the context of {cfg.model.name} ({context} tokens); "
                f"choose at most {context}."
            )


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


def checked_calibration(cfg: Config):
    """The configured method's calibration ids, checked: readable, of the configured shape, and made for this model
    and set (its provenance record). Read before the model loads, so a wrong set fails fast."""
    from harp.data.calibration import load_calibration

    path, want = cfg.calibration_file(), cfg.calibration_set()
    ids = load_calibration(path)
    if tuple(ids.shape) != (want.num_samples, want.seq_len):
        raise HarpError(
            f"{path} holds {' x '.join(map(str, ids.shape))} token ids but this run asks for {want.num_samples} x "
            f"{want.seq_len}; delete it and rerun the calibrate stage."
        )
    provenance.check("calibration", cfg, path)
    return ids


def checked_plan(cfg: Config):
    """The configured model and method's plan, which must exist, fit the model, and have been made with this run's
    settings from the upstream artifacts as they are now (its provenance record)."""
    from harp.pruning.plan import load_plan

    mdir, name = cfg.method_dir, cfg.model.name
    path = artifacts.plan(mdir)
    if not path.exists():
        raise HarpError(
            f"There is no {cfg.method.name} plan of {name} at {path}: run the prune stage first "
            f"(python -m harp.cli.prune model={name} method={cfg.method.name})."
        )
    plan = load_plan(mdir, cfg.model.num_layers)
    provenance.check("plan", cfg, path)  # its model and method among its settings (not its path: results move)
    return plan


def log(tracker, metrics: dict) -> None:
    if tracker is not None:
        tracker.log(metrics)
