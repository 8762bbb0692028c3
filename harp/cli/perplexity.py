"""Perplexity of a model with its pruning plan: `python -m harp.cli.perplexity method=harp`.

Writes the perplexity record into `<experiment>/<model>/<method>/`.
"""

from __future__ import annotations

from harp import artifacts
from harp.cli._app import checked_plan, load_for, log, save_config, stage
from harp.config import Config
from harp.eval.perplexity import heldout_ids, perplexity
from harp.io import write_json
from harp.provenance import plan_hash
from harp.pruning.plan import apply_plan
from harp.records import finite


@stage("perplexity")
def main(cfg: Config, tracker) -> None:
    plan_dir = cfg.method_dir
    plan = checked_plan(cfg)
    model, tokenizer = load_for(cfg)
    apply_plan(model, plan)
    p = cfg.eval.perplexity
    source = cfg.text_source(p.source)
    ids = heldout_ids(tokenizer, source, p.max_tokens)
    result = perplexity(model, ids, p.window, p.stride, progress=cfg.progress)
    finite(
        result["perplexity"],
        f"The perplexity of {cfg.model.name}/{cfg.method.name}",
        "the model or its plan is damaged (check the plan's tensors; rerun the prune stage)",
    )
    result |= {
        "model": cfg.model.name,
        "method": cfg.method.name,
        "source": source,
        "tiny_model": cfg.model.toy,
        "plan_hash": plan_hash(plan_dir),
        "pruning_ratio": plan.pruning_ratio,
        "kv_cache_reduction": plan.kv_cache_reduction,
    }
    out = artifacts.perplexity(plan_dir)
    write_json(out, result)
    save_config(cfg, plan_dir, "perplexity")
    log(tracker, {"perplexity": result["perplexity"]})
    print(
        f"{cfg.model.name}/{cfg.method.name}: perplexity {result['perplexity']:.2f} on {source} "
        f"({result['tokens']} tokens) -> {out}"
    )


if __name__ == "__main__":
    main()
