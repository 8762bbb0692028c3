"""Prune a model with the configured method and write its plan: `python -m harp.cli.prune method=harp`.

Writes `<run_dir>/<model>/<method>/plan.json` (+ `plan.safetensors` when the method has tensors).
"""
from __future__ import annotations

from harp.cli._app import load_for, log, save_config, stage
from harp.cli.calibrate import load_calibration
from harp.cli.search import load_alphas
from harp.config import Config
from harp.errors import HarpError
from harp.pruning import baselines  # noqa: F401  (registers the baseline planners)
from harp.pruning.plan import load_plan, save_plan
from harp.pruning.registry import PruneInputs, get_planner

KNOWN_NEEDS = ("calibration", "alphas", "reference")


def reference_plan_path(cfg: Config):
    return cfg.model_dir / "harp" / "plan.json"


@stage("prune")
def main(cfg: Config, run) -> None:
    needs = set(cfg.method.needs)
    if unknown := needs - set(KNOWN_NEEDS):
        raise HarpError(f"method.needs lists {sorted(unknown)}; known inputs: {', '.join(KNOWN_NEEDS)}.")
    planner = get_planner(cfg.method.name)
    model, tokenizer = load_for(cfg)
    inputs = PruneInputs(
        model=model, tokenizer=tokenizer, cfg=cfg,
        calibration=load_calibration(cfg) if "calibration" in needs else None,
        alphas=load_alphas(cfg) if "alphas" in needs else None,
        reference=load_plan(reference_plan_path(cfg)) if "reference" in needs else None,
    )
    plan = planner(inputs)
    save_plan(plan, cfg.method_dir)
    save_config(cfg, cfg.method_dir, "prune")
    log(run, {"params_before": plan.params_before, "params_after": plan.params_after,
              "pruning_ratio": plan.pruning_ratio, "kv_cache_reduction": plan.kv_cache_reduction})
    print(f"{cfg.method.name}: {plan.params_before:,} -> {plan.params_after:,} decoder linear weights "
          f"({100 * plan.pruning_ratio:.2f}% removed), KV cache -{100 * plan.kv_cache_reduction:.1f}% "
          f"-> {cfg.method_dir / 'plan.json'}")


if __name__ == "__main__":
    main()
