"""HARP's greedy alpha search: `python -m harp.cli.search model=tiny [method.num_layers=4 ...]`.

Writes `<run_dir>/<model>/harp/alphas.json` and `search.csv` (every candidate tried).
"""
from __future__ import annotations

import csv

from harp.cli._app import load_for, log, save_config, stage
from harp.cli.calibrate import load_calibration
from harp.config import Config
from harp.errors import HarpError
from harp.io import atomic_path, read_json, write_json
from harp.pruning.harp import top_layers
from harp.search import search_alphas


def alphas_path(cfg: Config):
    return cfg.model_dir / "harp" / "alphas.json"


def load_alphas(cfg: Config) -> dict[int, float]:
    return {int(k): float(v) for k, v in read_json(alphas_path(cfg))["alphas"].items()}


def fixed_alphas(cfg: Config, layers: list[int]) -> dict[int, float] | None:
    """Alphas that need no search: no rescaling (all 1) or a given list (index 0 = last layer)."""
    m = cfg.method
    if not m.rescale:
        return {i: 1.0 for i in layers}
    if m.alphas is not None:
        if len(m.alphas) != len(layers):
            raise HarpError(f"method.alphas has {len(m.alphas)} values for {len(layers)} pruned layers.")
        return dict(zip(sorted(layers, reverse=True), map(float, m.alphas)))
    return None


@stage("search")
def main(cfg: Config, run) -> None:
    if not cfg.method.name.startswith("harp"):
        raise HarpError(f"The search stage is HARP's; method={cfg.method.name} has no alphas to search.")
    m = cfg.method
    num_layers = m.num_layers if m.num_layers is not None else cfg.model.prune_layers
    layers = top_layers(cfg.model.num_layers, num_layers, m.layer_position)
    out_dir = alphas_path(cfg).parent
    alphas = fixed_alphas(cfg, layers)
    summary = {"layers": layers, "order": m.search.order, "grid": m.search.grid,
               "published": cfg.model.published_alphas, "searched": alphas is None}
    if alphas is None:
        model, _ = load_for(cfg)
        result = search_alphas(model, load_calibration(cfg), num_layers, grid=m.search.grid, order=m.search.order,
                               batch_size=m.search.batch_size, layers=layers, progress=cfg.progress)
        alphas = result.alphas
        summary |= {"dense_perplexity": result.dense_perplexity, "perplexity": result.perplexity}
        with atomic_path(out_dir / "search.csv") as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["step", "layer", "alpha", "perplexity"])
            writer.writeheader()
            writer.writerows(result.trace)
        if run is not None:
            import wandb

            run.log({"search_trace": wandb.Table(columns=["step", "layer", "alpha", "perplexity"],
                                                 data=[list(r.values()) for r in result.trace])})
        log(run, {"calibration_perplexity/dense": result.dense_perplexity,
                  "calibration_perplexity/harp": result.perplexity})
    write_json(alphas_path(cfg), summary | {"alphas": {str(k): v for k, v in alphas.items()}})
    save_config(cfg, out_dir, "search")
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(alphas.items(), reverse=True))
    print(f"alphas (layer: alpha) {shown}" + (f"; calibration perplexity {summary['dense_perplexity']:.2f} dense -> "
                                              f"{summary['perplexity']:.2f} pruned" if summary["searched"] else ""))


if __name__ == "__main__":
    main()
