"""Speed and memory, original vs pruned (the paper's Figure 3): `python -m harp.cli.speed method=harp`.

Writes the timings (CSV) into `<experiment>/<model>/<method>/`. The model is built from its architecture
with random weights (`speed.random_weights=true`, the default): `model.architecture` in
conf/model/<name>.yaml for the paper models (no download), the checkpoint's config.json otherwise.
The pruning is the method's plan; without one, HARP falls back to `method.alphas` or the model's
published alphas, so the paper models can be benchmarked on a bare GPU machine:
    python -m harp.cli.speed model=llama3_1_8b method=harp speed=gpu
"""

from __future__ import annotations

import pandas as pd
import torch

from harp import artifacts, methods
from harp.cli._app import checked_plan, log, save_config, stage
from harp.config import Config
from harp.errors import HarpError
from harp.eval.speed import benchmark, random_model
from harp.io import atomic_path
from harp.layers import from_last
from harp.models.adapters import ADAPTERS
from harp.models.loading import load_config, load_model, resolve_device
from harp.pruning.harp import apply_harp
from harp.pruning.plan import apply_plan
from harp.records import SPEED_COLUMNS

COLUMNS = ["model", "method", *SPEED_COLUMNS]


def architecture(cfg: Config):
    """The HF config to build: `model.architecture`, else the config.json of `model.source`."""
    from transformers import AutoConfig

    arch = cfg.model.architecture
    if arch is not None:
        kwargs = dict(arch)
        model_type = kwargs.pop("model_type", None)
        if model_type not in ADAPTERS:
            raise HarpError(
                f"model.architecture of {cfg.model.name} has model_type {model_type!r}; "
                f"supported: {', '.join(sorted(ADAPTERS))}."
            )
        config = AutoConfig.for_model(model_type, **kwargs)
    else:
        config = load_config(cfg.model.source)
    if config.num_hidden_layers != cfg.model.num_layers:
        raise HarpError(
            f"The architecture of {cfg.model.name} has {config.num_hidden_layers} decoder layers but "
            f"model.num_layers is {cfg.model.num_layers}."
        )
    return config


def pruning(cfg: Config):
    """`(prune, description)`: what to do to the original model; prune None means nothing (dense)."""
    plan_path = artifacts.plan(cfg.method_dir)
    if plan_path.exists():
        plan = checked_plan(cfg)
        if methods.get(plan.method).unpruned:
            return None, f"{plan_path} (dense)"
        same = not cfg.speed.random_weights  # random weights: the checkpoint's nonzero counts do not apply
        return (lambda model: apply_plan(model, plan, same_weights=same)), str(plan_path)
    if methods.get(cfg.method.name).unpruned:
        return None, f"{cfg.method.name} (nothing pruned)"
    if methods.get(cfg.method.name).searched:
        alphas = cfg.fixed_alphas()  # no rescaling, or given alphas; else the published ones, when there are
        if alphas is None and cfg.model.published_alphas is not None:
            alphas = from_last(cfg.pruned_layers(), cfg.model.published_alphas, "published alphas")
        if alphas is not None:
            return (lambda model: apply_harp(model, alphas)), f"alphas {alphas} (no {plan_path})"
    raise HarpError(f"{plan_path} does not exist; run the prune stage for method={cfg.method.name} first.")


def _table(df: pd.DataFrame) -> str:
    """Original vs pruned per phase and length, with measured speedup, bound and their ratio."""
    wide = df.pivot_table(index=["phase", "seq_len"], columns="variant", values="median_s")
    pruned = df[df.variant == "pruned"].set_index(["phase", "seq_len"])
    wide["speedup_%"] = 100 * pruned["speedup"]
    wide["bound_%"] = 100 * pruned["bound"]
    wide["measured/bound"] = (pruned["speedup"] / pruned["bound"]).where(pruned["bound"] > 0)
    return wide[["original", "pruned", "speedup_%", "bound_%", "measured/bound"]].to_string(float_format="%.3f")


@stage("speed")
def main(cfg: Config, tracker) -> None:
    sc = cfg.speed  # values checked by harp.config.check_values
    if sc.threads:
        torch.set_num_threads(sc.threads)
    device = resolve_device(sc.device)
    prune, source = pruning(cfg)
    config = architecture(cfg)
    limit = getattr(config, "max_position_embeddings", None)
    seq_lens = [n for n in sc.seq_lens if limit is None or n <= limit]
    if skipped := sorted(set(sc.seq_lens) - set(seq_lens)):
        print(f"skipping seq_lens {skipped}: beyond {cfg.model.name}'s {limit} positions")
    if not seq_lens:
        raise HarpError(f"No speed.seq_lens fit {cfg.model.name}'s {limit} positions.")
    if sc.random_weights:
        torch.manual_seed(cfg.seed)
        model = random_model(config, sc.dtype, device, cfg.model.attn_implementation)
    else:
        model, _ = load_model(
            cfg.model.source, dtype=sc.dtype, device=device, attn_implementation=cfg.model.attn_implementation
        )
    print(
        f"{cfg.model.name}/{cfg.method.name} on {device} ({sc.dtype}, "
        f"{'random' if sc.random_weights else 'checkpoint'} weights), pruning: {source}"
    )
    rows = benchmark(
        model,
        prune,
        seq_lens,
        repeats=sc.repeats,
        warmup=sc.warmup,
        decode_tokens=sc.decode_tokens,
        batch_size=sc.batch_size,
        device=device,
        seed=cfg.seed,
        progress=(lambda s: print(f"  {s}", flush=True)) if cfg.progress else (lambda _: None),
    )
    device_name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    df = pd.DataFrame(rows).assign(
        model=cfg.model.name,
        method=cfg.method.name,
        device=device_name,
        dtype=sc.dtype,
        random_weights=sc.random_weights,
    )[COLUMNS]
    out = artifacts.speed(cfg.method_dir)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    save_config(cfg, cfg.method_dir, "speed")
    print(_table(df))
    print(f"-> {out}")
    if tracker is not None:
        import wandb

        tracker.log({"speed": wandb.Table(dataframe=df)})
    for row in df[df.variant == "pruned"].itertuples():
        log(tracker, {"seq_len": row.seq_len, f"{row.phase}/speedup": row.speedup, f"{row.phase}/bound": row.bound})


if __name__ == "__main__":
    main()
