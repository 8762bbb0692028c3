"""HARP's greedy alpha search: `python -m harp.cli.search model=tiny [method.num_layers=4 ...]`.

Writes HARP's alphas and the search trace (every candidate tried) into `<experiment>/<model>/harp/`.
"""

from __future__ import annotations

import csv

from harp import artifacts, methods, provenance
from harp.cli._app import checked_calibration, load_for, log, save_config, stage
from harp.config import Config
from harp.errors import HarpError
from harp.io import atomic_path
from harp.records import TRACE_COLUMNS, write_alphas
from harp.search import search_alphas


@stage("search")
def main(cfg: Config, tracker) -> None:
    if not hasattr(cfg.method, "search"):
        raise HarpError(
            f"The search stage is HARP's; method={cfg.method.name} has no alphas to search (method={methods.SEARCHED})."
        )
    m = cfg.method
    layers = cfg.pruned_layers()
    out = artifacts.alphas(cfg.experiment_dir, cfg.model.name)
    alphas = cfg.fixed_alphas()
    summary = {
        "layers": layers,
        "order": m.search.order,
        "grid": m.search.grid,
        "published": cfg.model.published_alphas,
        "searched": alphas is None,
    }
    if alphas is None:
        calibration = checked_calibration(cfg)  # before the model: a damaged or wrong set fails fast
        model, _ = load_for(cfg)
        result = search_alphas(
            model,
            calibration,
            len(layers),
            grid=m.search.grid,
            order=m.search.order,
            batch_size=m.search.batch_size,
            layers=layers,
            progress=cfg.progress,
        )
        alphas = result.alphas
        summary |= {"dense_perplexity": result.dense_perplexity, "perplexity": result.perplexity}
        with (
            atomic_path(artifacts.search_trace(cfg.experiment_dir, cfg.model.name)) as tmp,
            tmp.open("w", newline="") as f,
        ):
            writer = csv.DictWriter(f, fieldnames=TRACE_COLUMNS)
            writer.writeheader()
            writer.writerows(result.trace)
        if tracker is not None:
            import wandb

            tracker.log(
                {"search_trace": wandb.Table(columns=TRACE_COLUMNS, data=[list(r.values()) for r in result.trace])}
            )
        log(
            tracker,
            {"calibration_perplexity/dense": result.dense_perplexity, "calibration_perplexity/harp": result.perplexity},
        )
    with provenance.recording("alphas", cfg, out, cfg.search_inputs()):
        write_alphas(out, alphas, **summary)
    if not summary["searched"]:  # fixed alphas: an earlier search's trace is not this run's
        artifacts.search_trace(cfg.experiment_dir, cfg.model.name).unlink(missing_ok=True)
    save_config(cfg, out.parent, "search")
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(alphas.items(), reverse=True))
    print(
        f"alphas (layer: alpha) {shown}"
        + (
            f"; calibration perplexity {summary['dense_perplexity']:.2f} dense -> {summary['perplexity']:.2f} pruned"
            if summary["searched"]
            else ""
        )
    )


if __name__ == "__main__":
    main()
