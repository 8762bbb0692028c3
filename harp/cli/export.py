"""Export a pruned model that loads without harp: `python -m harp.cli.export model=tiny method=harp`.

Writes `<experiment>/<model>/<method>/export/`, a Hugging Face folder: the weights with the pruned ones
removed (not zeroed), config, tokenizer, a short modeling file that rebuilds the pruned layers from the stock
transformers classes (`AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)`), and a model
card with the plan and the perplexity and task scores the pipeline measured on it. Methods that only zero
weights export a stock checkpoint, no smaller than the dense one. The folder appears only once it has loaded
back and matched harp's pruned model.
"""

from __future__ import annotations

import shlex

from harp import artifacts, methods
from harp.cli._app import check_model, checked_plan, load_for, log, save_config, stage
from harp.config import Config
from harp.export.card import CardFacts, model_card
from harp.export.checkpoint import PROMPT_TOKENS, check_leftover, write_export
from harp.provenance import plan_hash
from harp.records import read_eval_result, read_perplexity


def measured(cfg: Config, phash: str) -> tuple[dict | None, list[dict]]:
    """The perplexity and task records the pipeline wrote for this very plan (records of an older plan are left out)."""
    mdir = cfg.method_dir
    path = artifacts.perplexity(mdir)
    ppl = read_perplexity(path) if path.exists() else None
    scores = [read_eval_result(p) for p in sorted(artifacts.eval_dir(mdir).glob("*.json"))]
    same = lambda record: record is not None and record.get("plan_hash") == phash  # noqa: E731
    return (ppl if same(ppl) else None), [s for s in scores if same(s)]


def command() -> str:
    """This run's command line, naming its model, method and experiment even where they were the defaults."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    groups = ("model", "method", "experiment")
    chosen = [f"{g}={hydra.runtime.choices[g]}" for g in groups if hydra.runtime.choices.get(g)]
    given = [o for o in hydra.overrides.task if o.split("=", 1)[0].lstrip("+~") not in groups]
    return shlex.join(["python", "-m", "harp.cli.export", *chosen, *given])


@stage("export")
def main(cfg: Config, tracker) -> None:
    method = methods.get(cfg.method.name)
    check_model(cfg)
    plan = checked_plan(cfg)
    mdir = cfg.method_dir
    phash, out = plan_hash(mdir), artifacts.export_dir(mdir)
    check_leftover(out, phash)  # before the model loads
    perplexity, scores = measured(cfg, phash)
    facts = CardFacts(
        model_name=cfg.model.name,
        source=cfg.model.source,
        method=cfg.method.name,
        label=method.label,
        zeroes=method.zeroes,
        plan=plan,
        plan_hash=phash,
        command=command(),
        tiny_model=cfg.model.toy,
        perplexity=perplexity,
        scores=scores,
    )
    model, tokenizer = load_for(cfg)
    provenance = {"source_model": plan.model, "method": plan.method, "plan_hash": phash, "exported_by": "harp"}
    summary = write_export(model, tokenizer, plan, out, provenance, lambda s: model_card(facts, s))
    save_config(cfg, mdir, "export")
    dense, export = summary.dense, summary.export
    log(
        tracker,
        {
            "export/parameters": export.parameters,
            "export/dense_parameters": dense.parameters,
            "export/safetensors_bytes": summary.safetensors_bytes,
            "export/kv_cache_bytes": export.kv_cache_bytes,
            "export/dense_kv_cache_bytes": dense.kv_cache_bytes,
            "export/max_logit_diff": summary.max_logit_diff,
        },
    )
    print(
        f"{cfg.model.name}/{cfg.method.name}: {dense.parameters:,} -> {export.parameters:,} parameters, KV cache of "
        f"{PROMPT_TOKENS} tokens {dense.kv_cache_bytes:,} -> {export.kv_cache_bytes:,} bytes, max |logit diff| "
        f"{summary.max_logit_diff:.1e} -> {out}"
    )


if __name__ == "__main__":
    main()
