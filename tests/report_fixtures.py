"""A synthetic results tree that follows the result-file contract (BRIEF), for the reporting tests."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import yaml

from harp.io import write_json
from harp.provenance import plan_hash
from tests.helpers import ROOT

MODELS = {  # name -> (hub id, decoder layers, pruned layers, tiny)
    "qwen2_7b": ("Qwen/Qwen2-7B", 28, 4, False),
    "tiny": ("results/models/tiny", 8, 3, True),
}
METHODS = ("dense", "harp", "wanda_sp", "harp_flap")
TASKS = {
    "generation": ("gsm8k", "triviaqa"),
    "discriminative": ("arc_challenge", "boolq", "piqa"),
    "longbench": ("longbench_qasper", "longbench_trec"),
}
ABLATIONS = {"no_rescale": ("qwen2_7b", "tiny"), "layers_bottom": ("qwen2_7b",)}
PUBLISHED = {"qwen2_7b": ("harp", "harp_flap")}  # experiment published_alphas: the tiny model has none
GRID = [round(0.1 * i, 1) for i in range(11)]
SEQ_LENS = (128, 256, 512, 1024)


def _plan(run_dir: Path, model: str, method: str) -> None:
    hub_id, num_layers, pruned, _ = MODELS[model]
    ratio = {"dense": 0.0, "harp": 0.025, "wanda_sp": 0.04, "harp_flap": 0.04}[method]
    kv = pruned / num_layers if method.startswith("harp") else 0.0
    layers = list(range(num_layers - pruned, num_layers)) if method.startswith("harp") else []
    write_json(
        run_dir / model / method / "plan.json",
        {
            "method": method,
            "model": hub_id,
            "layers": layers,
            "params_before": 1000,
            "params_after": round(1000 * (1 - ratio)),
            "kv_cache_reduction": kv,
            "alphas": {},
            "details": {},
            "pruning_ratio": ratio,
            "tensors": [],
        },
    )


def _evals(run_dir: Path, model: str, method: str, rng: random.Random, experiment: str | None) -> None:
    tiny = MODELS[model][3]
    for category, tasks in TASKS.items():
        for task in tasks:
            score = round(rng.uniform(0.05, 0.95), 6)
            metric = "exact_match,strict-match" if category == "generation" else "acc,none"
            write_json(
                run_dir / model / method / "eval" / f"{task}.json",
                {
                    "model": model,
                    "method": method,
                    "task": task,
                    "category": category,
                    "metrics": {metric: score},
                    "stderr": {metric: 0.01},
                    "primary_metric": metric,
                    "score": score,
                    "n_samples": 8 if tiny else 1000,
                    "num_fewshot": 0,
                    "limit": 8 if tiny else None,
                    "fixture": tiny,
                    "tiny_model": tiny,
                    "plan_hash": plan_hash(run_dir / model / method),
                    "versions": {"lm_eval": "0.4.13"},
                    "experiment": experiment,
                },
            )


def _ppl(run_dir: Path, model: str, method: str, rng: random.Random) -> None:
    write_json(
        run_dir / model / method / "ppl.json",
        {
            "perplexity": rng.uniform(5, 30),
            "tokens": 4096,
            "window": 512,
            "stride": 256,
            "model": model,
            "method": method,
            "source": "corpus",
            "tiny_model": MODELS[model][3],
            "plan_hash": plan_hash(run_dir / model / method),
            "pruning_ratio": 0.025,
            "kv_cache_reduction": 0.1,
        },
    )


def _alphas(run_dir: Path, model: str, rng: random.Random, searched: bool = True) -> None:
    _, num_layers, pruned, _ = MODELS[model]
    layers = list(range(num_layers - pruned, num_layers))
    alphas, trace = {}, []
    for step, layer in enumerate(reversed(layers)):
        curve = {a: 10 + (a - rng.choice(GRID)) ** 2 + rng.uniform(0, 0.01) for a in GRID}
        alphas[layer] = min(curve, key=curve.get)
        for a in GRID:
            trace.append({"step": step, "layer": layer, "alpha": a, "perplexity": curve[a]})
    harp_dir = run_dir / model / "harp"
    published = yaml.safe_load((ROOT / "conf" / "model" / f"{model}.yaml").read_text()).get("published_alphas")
    if not searched:  # the published_alphas experiment: the authors' alphas, no trace
        alphas = dict(zip(reversed(layers), published))
    write_json(
        harp_dir / "alphas.json",
        {
            "layers": layers,
            "order": "top_down",
            "grid": GRID,
            "published": published,
            "searched": searched,
            "alphas": {str(k): v for k, v in alphas.items()},
            "dense_perplexity": 9.0,
            "perplexity": 10.0,
        },
    )
    if not searched:
        return
    with (harp_dir / "search.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", "layer", "alpha", "perplexity"])
        writer.writeheader()
        writer.writerows(trace)


def _speed(run_dir: Path, model: str) -> None:
    rows = []
    for phase in ("prefill", "decode"):
        for seq_len in SEQ_LENS:
            base = seq_len / 1e4
            for variant, t in (("original", base), ("pruned", base * 0.8)):
                rows.append(
                    {
                        "model": model,
                        "method": "harp",
                        "variant": variant,
                        "phase": phase,
                        "seq_len": seq_len,
                        "median_s": t,
                        "min_s": 0.9 * t,
                        "max_s": 1.1 * t,
                        "tokens_per_s": seq_len / t,
                        "speedup": base / t,
                        "bound": 0.0 if variant == "original" else 0.3,
                        "peak_mem_bytes": 10**8,
                        "kv_cache_bytes": 10**6,
                        "device": "cpu",
                        "dtype": "float32",
                        "random_weights": False,
                    }
                )
    with (run_dir / model / "harp" / "speed.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_results(root: Path, seed: int = 0) -> Path:
    """Write the tree under `root/results` and return that directory."""
    rng = random.Random(seed)
    results = root / "results"
    for model in MODELS:
        for method in METHODS:
            _plan(results, model, method)
            _evals(results, model, method, rng, None)
            _ppl(results, model, method, rng)
        _alphas(results, model, rng)
        _speed(results, model)
    for experiment, models in ABLATIONS.items():
        run_dir = results / "ablations" / experiment
        for model in models:
            _plan(run_dir, model, "harp")
            _evals(run_dir, model, "harp", rng, experiment)
            _ppl(run_dir, model, "harp", rng)
    run_dir = results / "ablations" / "published_alphas"
    for model, methods in PUBLISHED.items():
        for method in methods:
            _plan(run_dir, model, method)
            _evals(run_dir, model, method, rng, "published_alphas")
            _ppl(run_dir, model, method, rng)
        _alphas(run_dir, model, rng, searched=False)
    # a half-written file from a killed stage must be ignored
    (results / "tiny" / "harp" / "eval" / ".boolq.json.x.tmp").write_text("{not json")
    return results
