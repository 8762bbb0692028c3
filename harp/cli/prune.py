"""Prune a model with the configured method and write its plan: `python -m harp.cli.prune method=harp`.

Writes the plan (JSON, plus a tensor file when the method has tensors) into `<experiment>/<model>/<method>/`.
"""

from __future__ import annotations

from harp import artifacts, methods
from harp.cli._app import check_model, load_for, log, save_config, stage
from harp.config import Config
from harp.data.calibration import load_calibration
from harp.pruning.budget import target_removed
from harp.pruning.plan import PruneInputs, load_plan, save_plan
from harp.records import read_alphas


@stage("prune")
def main(cfg: Config, tracker) -> None:
    method = methods.get(cfg.method.name)
    cfg.method.mask.check_width(check_model(cfg).hidden_size)  # a 2:4 mask the model cannot take fails before loading
    model, _ = load_for(cfg)
    expdir, name = cfg.experiment_dir, cfg.model.name
    reference = (
        load_plan(artifacts.method_dir(expdir, name, artifacts.SEARCHED_METHOD))
        if "reference" in method.needs
        else None
    )
    inputs = PruneInputs(
        model=model,
        source=cfg.model.source,
        method=cfg.method,
        calibration=load_calibration(artifacts.calibration(expdir, name)) if "calibration" in method.needs else None,
        alphas=read_alphas(artifacts.alphas(expdir, name)) if "alphas" in method.needs else None,
        target_removed=target_removed(model, cfg.method.ratio, reference) if method.budgeted else None,
    )
    plan = method.planner(inputs)
    out = save_plan(plan, cfg.method_dir)
    save_config(cfg, cfg.method_dir, "prune")
    log(
        tracker,
        {
            "params_before": plan.params_before,
            "params_after": plan.params_after,
            "pruning_ratio": plan.pruning_ratio,
            "kv_cache_reduction": plan.kv_cache_reduction,
        },
    )
    print(
        f"{cfg.method.name}: {plan.params_before:,} -> {plan.params_after:,} decoder linear weights "
        f"({100 * plan.pruning_ratio:.2f}% removed), KV cache -{100 * plan.kv_cache_reduction:.1f}% -> {out}"
    )


if __name__ == "__main__":
    main()
