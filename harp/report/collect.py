"""Collect every stage's result files under `results/` into one tidy pandas DataFrame.

The frame is what tables, figures, the report page and the notebook read; it is written to
the results folder by the collect stage (`harp.artifacts.all_results`). One row per observation, a `kind`
column says which:

- `eval`: one lm-eval task of one model/method (`task`, `category`, `metric`, `score` in [0, 1], `stderr`,
  `chance` (the score of uniform guessing among each document's choices; 0 for generation), `n_samples`,
  `num_fewshot`, `limit`, `fixture`, `tiny_model`, `versions` as a JSON string);
- `perplexity`: held-out perplexity (`task` = text source, `metric` = "perplexity", `score` = perplexity);
- `alpha`: one pruned layer of HARP's alphas (`layer`, `alpha`, `published_alpha` as the search
  stage recorded it, `searched`);
- `search`: one candidate of the greedy search trace (`step`, `layer`, `alpha`, `score` = perplexity);
- `speed`: one row of a speed benchmark (its own columns: `variant`, `phase`, `seq_len`, `median_s`, ...);
- `diagnostic`: one measurement of one layer by the diagnose stage (`layer`, `metric` = token_similarity,
  attention_entropy, passthrough_error or passthrough_alpha, `score`, `task` = calibration text source,
  `n_samples` = its tokens; no `method`: it describes the dense model);
- `mask_compare`: one number of the attn_mask / wanda_qk comparison (`method` the row's own, `rank_by`
  attn_mask's binarisation, `sparsity`, `layer` (empty: overall), `metric` = "attn_error" (relative
  Frobenius) or "perplexity", `score`, `task` = perplexity text source, `n_samples` = its tokens,
  `pruning_ratio` at that sparsity, `kv_cache_reduction` 0).

Every row has `experiment` ("main" for `results/`, the ablation's name for `results/ablations/<name>/`),
`model`, `method`, `tiny_model` (true on every row of a model built here), and, where the method's
plan (or perplexity record) is there, `model_id`, `pruning_ratio` and `kv_cache_reduction`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harp import artifacts, methods
from harp.diagnostics import MEASURES, read_diagnostics
from harp.errors import HarpError
from harp.layers import from_last
from harp.records import (
    MASK_COMPARE_COLUMNS,
    SPEED_COLUMNS,
    TRACE_COLUMNS,
    read_alphas_record,
    read_csv_whole,
    read_eval_result,
    read_perplexity,
    read_plan_record,
)

COLUMNS = [
    "kind",
    "experiment",
    "model",
    "method",
    "model_id",
    "task",
    "category",
    "metric",
    "score",
    "stderr",
    "chance",
    "n_samples",
    "num_fewshot",
    "limit",
    "fixture",
    "tiny_model",
    "pruning_ratio",
    "kv_cache_reduction",
    "plan_hash",
    "layer",
    "alpha",
    "published_alpha",
    "searched",
    "step",
    "sparsity",
    "rank_by",
    "versions",
]
NUMERIC = ["score", "stderr", "chance", "n_samples", "num_fewshot", "limit", "pruning_ratio", "kv_cache_reduction"]
NUMERIC += ["layer", "alpha", "published_alpha", "step", "sparsity"]


def _visible(paths) -> list[Path]:
    """Skip half-written outputs: atomic writes use temporary names that start with '.'."""
    return sorted(p for p in paths if not any(part.startswith(".") for part in p.parts[-4:]))


def _plan_info(method_dir: Path) -> dict:
    """Model id, pruning ratio and KV-cache reduction of a model/method, from its plan or perplexity record."""
    plan = artifacts.plan(method_dir)
    if plan.exists():
        data = read_plan_record(plan)
        return {"model_id": data["model"]} | {k: data.get(k) for k in ("pruning_ratio", "kv_cache_reduction")}
    if (ppl := artifacts.perplexity(method_dir)).exists():
        return {k: read_perplexity(ppl).get(k) for k in ("pruning_ratio", "kv_cache_reduction")}
    return {}


def _eval_rows(path: Path) -> dict:
    data = read_eval_result(path)
    metric = data["primary_metric"]
    return {
        "task": data["task"],
        "category": data["category"],
        "metric": metric,
        "score": data["score"],
        "stderr": (data.get("stderr") or {}).get(metric),
        "chance": data.get("chance"),
        "n_samples": data["n_samples"],
        "num_fewshot": data["num_fewshot"],
        "limit": data["limit"],
        "fixture": data["fixture"],
        "tiny_model": data["tiny_model"],
        "plan_hash": data.get("plan_hash"),
        "versions": json.dumps(data.get("versions") or {}, sort_keys=True),
    }


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise HarpError(
            f"{path} is not a readable CSV ({str(err).splitlines()[0]}); rerun the stage that wrote it."
        ) from None
    if missing := [c for c in columns if c not in frame.columns]:
        raise HarpError(f"{path} lacks the column(s) {', '.join(missing)}; rerun the stage that wrote it.")
    return frame


def _check_current(rows: list[dict], method_dir: Path) -> None:
    """Refuse a score measured on an earlier plan than the one in its folder (the plan was made again since)."""
    from harp.provenance import plan_hash

    if not artifacts.plan(method_dir).exists():
        return
    current = plan_hash(method_dir)
    for row in rows:
        if row.get("plan_hash") not in (None, current):
            stage = "perplexity" if row["kind"] == "perplexity" else "evaluate"
            raise HarpError(
                f"The {row['task']} score in {method_dir} was measured on an earlier plan ({row['plan_hash']}; the "
                f"plan there is now {current}): rerun the {stage} stage for it, or snakemake, which does."
            )


def _method_rows(experiment: str, model: str, method_dir: Path) -> list[dict]:
    base = {"experiment": experiment, "model": model, "method": method_dir.name} | _plan_info(method_dir)
    rows = [base | {"kind": "eval"} | _eval_rows(p) for p in _visible(artifacts.eval_dir(method_dir).glob("*.json"))]
    if (ppl_path := artifacts.perplexity(method_dir)).exists():
        ppl = read_perplexity(ppl_path)
        rows.append(
            base
            | {
                "kind": "perplexity",
                "task": ppl.get("source"),
                "category": "perplexity",
                "metric": "perplexity",
                "score": ppl["perplexity"],
                "n_samples": ppl.get("tokens"),
                "tiny_model": ppl.get("tiny_model"),
                "plan_hash": ppl.get("plan_hash"),
            }
        )
    _check_current(rows, method_dir)
    if (speed_path := artifacts.speed(method_dir)).exists():
        speed = _read_csv(speed_path, SPEED_COLUMNS)
        rows += [base | {"kind": "speed"} | {c: r[c] for c in SPEED_COLUMNS} for r in speed.to_dict("records")]
    if (compare_path := artifacts.mask_compare(method_dir)).exists():
        compared = _read_csv(compare_path, [*MASK_COMPARE_COLUMNS, "pruning_ratio"])
        rows += [
            base
            | {c: r[c] for c in ("method", "rank_by", "sparsity", "layer", "metric", "tiny_model", "pruning_ratio")}
            | {"kind": "mask_compare", "score": r["value"], "task": r["source"], "n_samples": r["tokens"]}
            | {"kv_cache_reduction": 0.0}
            for r in compared.to_dict("records")
        ]
    return rows


def _alpha_rows(experiment: str, model: str, expdir: Path) -> list[dict]:
    base = {"experiment": experiment, "model": model, "method": methods.SEARCHED}
    rows = []
    if (path := artifacts.alphas(expdir, model)).exists():
        data = read_alphas_record(path)
        alphas, published = data["alphas"], data.get("published")
        paired = from_last(alphas, published, "published alphas") if published and len(published) == len(alphas) else {}
        rows += [
            base
            | {
                "kind": "alpha",
                "layer": layer,
                "alpha": alpha,
                "published_alpha": paired.get(layer),
                "searched": bool(data.get("searched")),
            }
            for layer, alpha in sorted(alphas.items(), reverse=True)
        ]
    if (path := artifacts.search_trace(expdir, model)).exists():
        trace = _read_csv(path, TRACE_COLUMNS)
        rows += [
            base
            | {
                "kind": "search",
                "step": r["step"],
                "layer": r["layer"],
                "alpha": r["alpha"],
                "metric": "perplexity",
                "score": r["perplexity"],
            }
            for r in trace.to_dict("records")
        ]
    return rows


def _diagnostic_rows(experiment: str, model: str, path: Path) -> list[dict]:
    base = {"experiment": experiment, "model": model, "kind": "diagnostic"}
    return [
        base | {"layer": r["layer"], "metric": m, "score": r[m], "task": r["source"], "n_samples": r["tokens"]}
        for r in read_diagnostics(path)
        for m in MEASURES
    ]


def collect(results_dir: str | Path) -> pd.DataFrame:
    """Every result under `results_dir` as one tidy frame (see the module docstring for the columns)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise HarpError(f"{results_dir} is not a directory; run the pipeline first (snakemake).")
    rows: list[dict] = []
    for experiment, expdir in artifacts.experiments_on_disk(results_dir):
        method_dirs = _visible(d for d in expdir.glob("*/*") if d.is_dir() and artifacts.has_results(d))
        for method_dir in method_dirs:
            model = method_dir.parent.name
            rows += _method_rows(experiment, model, method_dir)
            if method_dir.name == methods.SEARCHED:
                rows += _alpha_rows(experiment, model, expdir)
        for model in sorted(d.name for d in expdir.glob("*") if artifacts.diagnostics(expdir, d.name).is_file()):
            rows += _diagnostic_rows(experiment, model, artifacts.diagnostics(expdir, model))
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS + SPEED_COLUMNS)
    # the tiny flag is a property of the model: put it on its alpha/search/speed rows too (captions, figure titles)
    tiny = frame.tiny_model.fillna(False).astype(bool).groupby(frame.model).transform("any")
    return frame.assign(tiny_model=tiny)


def write_results(frame: pd.DataFrame, path: str | Path) -> None:
    from harp.io import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def load_results(path: str | Path) -> pd.DataFrame:
    """Read the collected table back (what the report stage and the notebook start from), checked whole
    (`records.read_csv_whole`) and every number a number."""
    fix = "rerun the collect stage (`python -m harp.cli.collect`)"
    read_csv_whole(path, COLUMNS + SPEED_COLUMNS, "the table the collect stage writes", fix)
    frame = pd.read_csv(path, keep_default_na=True)
    for column in NUMERIC:
        if not pd.api.types.is_numeric_dtype(frame[column]):  # pandas found a value that is not a number
            numbers = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column][numbers.isna() & frame[column].notna()].iloc[0]
            raise HarpError(f"{path}: the {column} column holds {bad!r}, not a number; {fix}.")
    return frame


def check_current(frame: pd.DataFrame, path: str | Path, results_dir: str | Path) -> None:
    """The collected table must describe the results on disk now: the same rows of each kind and run."""
    keys = ["kind", "experiment", "model", "method"]
    now = collect(results_dir)
    counts = lambda f: f[keys].value_counts(dropna=False).sort_index()  # noqa: E731  (diagnostics have no method)
    if not counts(frame).equals(counts(now)):
        raise HarpError(
            f"{path} does not match the results under {results_dir} ({len(frame)} rows, {len(now)} on disk); "
            "rerun the collect stage (`python -m harp.cli.collect`)."
        )
