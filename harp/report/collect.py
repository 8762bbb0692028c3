"""Collect every stage's result files under `results/` into one tidy pandas DataFrame.

The frame is what tables, figures, the report page and the notebook read; it is written to
`results/all_results.csv` by the collect stage. One row per observation, a `kind` column says which:

- `eval`: one lm-eval task of one model/method (`task`, `group`, `metric`, `score` in [0, 1], `stderr`,
  `n_samples`, `num_fewshot`, `limit`, `fixture`, `tiny_model`, `versions` as a JSON string);
- `perplexity`: held-out perplexity (`task` = text source, `metric` = "perplexity", `score` = perplexity);
- `alpha`: one pruned layer of HARP's alphas.json (`layer`, `alpha`, `published_alpha` from
  conf/model/<model>.yaml, `searched`);
- `search`: one candidate of the greedy search trace (`step`, `layer`, `alpha`, `score` = perplexity);
- `speed`: one row of a speed.csv (its own columns: `variant`, `phase`, `seq_len`, `median_s`, ...).

Every row has `experiment` ("main" for `results/`, the ablation's name for `results/ablations/<name>/`),
`model`, `method`, `tiny_model` (true on every row of a model built here), and, where the method's
plan.json (or ppl.json) is there, `model_id`, `pruning_ratio` and `kv_cache_reduction`.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import yaml

from harp.errors import HarpError
from harp.io import read_json

MAIN = "main"
EVAL_KEYS = ("task", "group", "primary_metric", "score", "n_samples", "num_fewshot", "limit", "fixture", "tiny_model")
COLUMNS = ["kind", "experiment", "model", "method", "model_id", "task", "group", "metric", "score", "stderr",
           "n_samples", "num_fewshot", "limit", "fixture", "tiny_model", "pruning_ratio", "kv_cache_reduction",
           "plan_hash", "layer", "alpha", "published_alpha", "searched", "step", "versions"]
SPEED_COLUMNS = ["variant", "phase", "seq_len", "median_s", "tokens_per_s", "speedup", "bound", "peak_mem_bytes",
                 "kv_cache_bytes", "device", "dtype", "random_weights"]


def run_dirs(results_dir: Path) -> Iterator[tuple[str, Path]]:
    """`(experiment, run_dir)`: the main run, then each ablation under results/ablations/."""
    yield MAIN, results_dir
    for d in sorted((results_dir / "ablations").glob("*")):
        if d.is_dir() and not d.name.startswith("."):
            yield d.name, d


def _visible(paths) -> list[Path]:
    """Skip half-written outputs: atomic writes use temporary names that start with '.'."""
    return sorted(p for p in paths if not any(part.startswith(".") for part in p.parts[-4:]))


def published_alphas(conf_dir: Path | None, model: str) -> list[float] | None:
    """The authors' alphas (index 0 = last layer) from conf/model/<model>.yaml, if listed there."""
    path = conf_dir / "model" / f"{model}.yaml" if conf_dir else None
    if path is None or not path.exists():
        return None
    return yaml.safe_load(path.read_text()).get("published_alphas")


def _plan_info(method_dir: Path) -> dict:
    """Model id, pruning ratio and KV-cache reduction of a model/method, from plan.json or ppl.json."""
    for name in ("plan.json", "ppl.json"):
        path = method_dir / name
        if path.exists():
            data = read_json(path)
            info = {k: data.get(k) for k in ("pruning_ratio", "kv_cache_reduction")}
            return info | ({"model_id": data["model"]} if name == "plan.json" else {})
    return {}


def _eval_rows(path: Path) -> dict:
    data = read_json(path)
    if missing := [k for k in ("model", "method", "metrics", *EVAL_KEYS) if k not in data]:
        raise HarpError(f"{path} lacks the key(s) {', '.join(missing)}; rerun the evaluate stage that wrote it.")
    metric = data["primary_metric"]
    return {"task": data["task"], "group": data["group"], "metric": metric, "score": data["score"],
            "stderr": (data.get("stderr") or {}).get(metric), "n_samples": data["n_samples"],
            "num_fewshot": data["num_fewshot"], "limit": data["limit"], "fixture": data["fixture"],
            "tiny_model": data["tiny_model"], "plan_hash": data.get("plan_hash"),
            "versions": json.dumps(data.get("versions") or {}, sort_keys=True)}


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise HarpError(f"{path} is not a readable CSV ({str(err).splitlines()[0]}); rerun the stage that wrote it.") from None
    if missing := [c for c in columns if c not in frame.columns]:
        raise HarpError(f"{path} lacks the column(s) {', '.join(missing)}; rerun the stage that wrote it.")
    return frame


def _method_rows(experiment: str, model: str, method_dir: Path) -> list[dict]:
    base = {"experiment": experiment, "model": model, "method": method_dir.name} | _plan_info(method_dir)
    rows = [base | {"kind": "eval"} | _eval_rows(p) for p in _visible(method_dir.glob("eval/*.json"))]
    if (ppl_path := method_dir / "ppl.json").exists():
        ppl = read_json(ppl_path)
        rows.append(base | {"kind": "perplexity", "task": ppl.get("source"), "group": "perplexity",
                            "metric": "perplexity", "score": ppl["perplexity"], "n_samples": ppl.get("tokens"),
                            "tiny_model": ppl.get("tiny_model"), "plan_hash": ppl.get("plan_hash")})
    if (speed_path := method_dir / "speed.csv").exists():
        speed = _read_csv(speed_path, SPEED_COLUMNS)
        rows += [base | {"kind": "speed"} | {c: r[c] for c in SPEED_COLUMNS} for r in speed.to_dict("records")]
    return rows


def _alpha_rows(experiment: str, model: str, harp_dir: Path, conf_dir: Path | None) -> list[dict]:
    base = {"experiment": experiment, "model": model, "method": "harp"}
    rows = []
    if (path := harp_dir / "alphas.json").exists():
        data = read_json(path)
        published = published_alphas(conf_dir, model)
        from_last = sorted((int(k) for k in data["alphas"]), reverse=True)
        for i, layer in enumerate(from_last):
            pub = published[i] if published and len(published) == len(from_last) else None
            rows.append(base | {"kind": "alpha", "layer": layer, "alpha": float(data["alphas"][str(layer)]),
                                "published_alpha": pub, "searched": bool(data.get("searched"))})
    if (path := harp_dir / "search.csv").exists():
        trace = _read_csv(path, ["step", "layer", "alpha", "perplexity"])
        rows += [base | {"kind": "search", "step": r["step"], "layer": r["layer"], "alpha": r["alpha"],
                         "metric": "perplexity", "score": r["perplexity"]} for r in trace.to_dict("records")]
    return rows


def collect(results_dir: str | Path, conf_dir: str | Path | None = "conf") -> pd.DataFrame:
    """Every result under `results_dir` as one tidy frame (see the module docstring for the columns)."""
    results_dir = Path(results_dir)
    conf_dir = Path(conf_dir) if conf_dir else None
    if not results_dir.is_dir():
        raise HarpError(f"{results_dir} is not a directory; run the pipeline first (snakemake).")
    rows: list[dict] = []
    for experiment, run_dir in run_dirs(results_dir):
        markers = ("eval", "ppl.json", "plan.json", "speed.csv", "alphas.json")
        method_dirs = _visible(d for d in run_dir.glob("*/*") if d.is_dir() and any((d / m).exists() for m in markers))
        for method_dir in method_dirs:
            model = method_dir.parent.name
            rows += _method_rows(experiment, model, method_dir)
            if method_dir.name == "harp":
                rows += _alpha_rows(experiment, model, method_dir, conf_dir)
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS + SPEED_COLUMNS)
    # the tiny flag is a property of the model: put it on its alpha/search/speed rows too (captions, figure titles)
    tiny = frame.tiny_model.fillna(False).astype(bool).groupby(frame.model).transform("any")
    return frame.assign(tiny_model=tiny)


def write_results(frame: pd.DataFrame, path: str | Path) -> None:
    from harp.io import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def load_results(path: str | Path) -> pd.DataFrame:
    """Read `all_results.csv` back (what the report stage and the notebook start from)."""
    path = Path(path)
    if not path.exists():
        raise HarpError(f"{path} does not exist; run the collect stage first (`python -m harp.cli.collect`).")
    frame = pd.read_csv(path, keep_default_na=True)
    if "kind" not in frame.columns:
        raise HarpError(f"{path} has no `kind` column; it was not written by the collect stage.")
    return frame
