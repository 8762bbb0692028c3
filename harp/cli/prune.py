"""Prune a model with the configured method and write its plan: `python -m harp.cli.prune method=harp`.

Writes the plan (JSON, plus a tensor file when the method has tensors) into `<experiment>/<model>/<method>/`.
The plan records the budget and the calibration set the method used.
"""

from __future__ import annotations

from dataclasses import asdict

from harp import artifacts, methods, provenance
from harp.cli._app import check_model, checked_calibration, load_for, log, save_config, stage
from harp.config import Config
from harp.pruning import budget
from harp.pruning.plan import PruneInputs, load_plan, save_plan
from harp.records import read_alphas


@stage("prune")
def main(cfg: Config, tracker) -> None:
    method = methods.get(cfg.method.name)
    files = cfg.prune_inputs()
    cfg.method.check_model(check_model(cfg).hidden_size)  # e.g. a 2:4 mask the model cannot take: before loading
    # the inputs first: a missing, damaged or mismatched one fails before the model loads
    reference = load_plan(files["reference"]) if "reference" in files else None
    if reference is not None:  # HARP's plan, made with HARP's settings: its record and upstream are checked
        provenance.check("plan", cfg, files["reference"], settings=False)
    calibration = checked_calibration(cfg) if "calibration" in files else None
    alphas = read_alphas(files["alphas"]) if "alphas" in files else None
    if alphas is not None:
        provenance.check("alphas", cfg, files["alphas"])
    harp_layers = cfg.layer_count()
    model, _ = load_for(cfg)
    inputs = PruneInputs(
        model=model,
        source=cfg.model.source,
        method=cfg.method,
        calibration=calibration,
        alphas=alphas,
        target_removed=budget.target_removed(model, cfg.budget, harp_layers, reference) if method.budgeted else None,
    )
    plan = method.planner(inputs)
    if method.budgeted:
        plan.details["budget_rule"] = budget.in_words(cfg.budget, harp_layers, cfg.model.num_layers)
    if "calibration" in files:
        plan.details["calibration"] = asdict(cfg.calibration_set())
    with provenance.recording("plan", cfg, artifacts.plan(cfg.method_dir), list(files.values())):
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
    if note := plan.details.get("budget", {}).get("note"):
        print(f"{cfg.method.name}: {note}")


if __name__ == "__main__":
    main()
