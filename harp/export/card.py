"""The model card (README.md) of an export: what was pruned, how it loads, what the pipeline measured on it."""

from __future__ import annotations

from dataclasses import dataclass, field

from harp.export.checkpoint import PROMPT_TOKENS, ExportSummary
from harp.pruning.plan import Plan


@dataclass
class CardFacts:
    """What the card says beyond the export's own measurements (gathered by the export stage)."""

    model_name: str  # the pipeline's name of the model (conf/model/<name>.yaml)
    source: str  # hub id or path of the dense model
    method: str
    label: str  # the method's table label
    zeroes: bool  # the method zeroes weights instead of removing them
    plan: Plan
    plan_hash: str
    command: str  # what reproduces the export
    tiny_model: bool
    perplexity: dict | None = None  # the perplexity stage's record of this plan, if measured
    scores: list[dict] = field(default_factory=list)  # the evaluate stage's records of this plan


def model_card(facts: CardFacts, summary: ExportSummary) -> str:
    plan, dense, export = facts.plan, summary.dense, summary.export
    parts = [
        _header(facts),
        f"# {facts.model_name} pruned with {facts.label}\n",
        f"`{facts.source}` pruned by harp's `{facts.method}` plan `{facts.plan_hash}`. It loads with transformers "
        "alone:\n",
        _usage(summary),
        "## What was pruned\n",
        _what(facts, summary),
        "| | dense | this export |\n|---|---:|---:|\n"
        f"| parameters | {dense.parameters:,} | {export.parameters:,} |\n"
        f"| parameter bytes | {dense.tensor_bytes:,} | {export.tensor_bytes:,} |\n"
        f"| KV cache of a {PROMPT_TOKENS}-token prompt (bytes) | {dense.kv_cache_bytes:,} "
        f"| {export.kv_cache_bytes:,} |\n"
        f"\nWeight files on disk: {summary.safetensors_bytes:,} bytes. Decoder linear weights: "
        f"{plan.params_before:,} -> {plan.params_after:,} nonzero ({100 * plan.pruning_ratio:.2f}% removed"
        + (f"; budget: {plan.details['budget_rule']}" if "budget_rule" in plan.details else "")
        + ").\n",
        _alphas(plan),
        _layers(summary),
        "## Measured by the pipeline\n",
        _measured(facts),
        "## Checked at export\n",
        f"Loaded back from this folder, the export's logits differ from harp's in-memory pruned model by at most "
        f"{summary.max_logit_diff:.2e} on a {PROMPT_TOKENS}-token prompt, and greedy decoding gives the same tokens.\n",
        "## Reproduce\n",
        f"From a harp checkout, after the prune stage of this model and method:\n\n```\n{facts.command}\n```\n",
    ]
    return "\n".join(part for part in parts if part)


def _header(facts: CardFacts) -> str:
    local = facts.source.startswith(("/", ".", "~")) or facts.tiny_model
    base = "" if local else f"base_model: {facts.source}\n"
    tags = "".join(f"- {tag}\n" for tag in dict.fromkeys(("pruned", "harp", facts.method)))
    return f"---\nlibrary_name: transformers\n{base}tags:\n{tags}---\n"


def _usage(summary: ExportSummary) -> str:
    remote = ", trust_remote_code=True" if summary.model_class else ""
    code = (
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder"{remote})\n'
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")\n```\n'
    )
    if summary.model_class:
        return code + (
            f"\n`trust_remote_code=True` runs `modeling_pruned.py` from this folder: `{summary.model_class}` builds "
            "the stock transformers model and shrinks the layers that `config.json`'s `pruned_layers` lists (read "
            "it first; it is short). The static KV cache is not supported.\n"
        )
    return code + "\nIt is a stock checkpoint: no custom code runs.\n"


def _what(facts: CardFacts, summary: ExportSummary) -> str:
    if facts.zeroes:
        return (
            f"{facts.label} zeroes weights without removing them: this checkpoint holds the zeros and is no smaller "
            "than the dense one, and its KV cache is the dense one's (sparse kernels would be needed for any "
            "saving).\n"
        )
    if not summary.pruned_layers:
        return "Nothing was pruned: this is the dense model, for comparison.\n"
    return "The removed weights are gone from the files, not zeroed.\n"


def _alphas(plan: Plan) -> str:
    if not plan.alphas:
        return ""
    rows = "".join(
        f"| {layer} | {alpha:g} | {'attention removed' if alpha == 0 else 'value pass-through, alpha folded'} |\n"
        for layer, alpha in sorted(plan.alphas.items())
    )
    return (
        "HARP's alphas (the rescaling of each pruned layer's attention branch):\n\n"
        f"| layer | alpha | |\n|---:|---:|---|\n{rows}"
    )


def _layers(summary: ExportSummary) -> str:
    if not summary.pruned_layers:
        return ""
    rows = []
    for layer, change in sorted(summary.pruned_layers.items(), key=lambda kv: int(kv[0])):
        heads = ""
        if "num_attention_heads" in change:
            heads = f"{change['num_attention_heads']} / {change['num_key_value_heads']}"
        biases = ", ".join(b for b in ("o_proj_bias", "down_proj_bias") if change.get(b))
        rows.append(
            f"| {layer} | {change.get('attention', 'softmax')} | {heads} | {change.get('intermediate_size', '')} "
            f"| {biases} |\n"
        )
    return (
        "Layers that differ from the stock model (`config.json`'s `pruned_layers`; blank: unchanged):\n\n"
        "| layer | attention | query / key-value heads | MLP channels | added biases |\n|---:|---|---|---:|---|\n"
        + "".join(rows)
    )


def _measured(facts: CardFacts) -> str:
    lines = []
    if facts.tiny_model:
        lines.append(
            "These come from harp's tiny self-trained demo model: they show the pipeline works, not how well the "
            "method does.\n"
        )
    if facts.perplexity:
        p = facts.perplexity
        lines.append(f"Perplexity {p['perplexity']:.3f} on {p['source']} ({p['tokens']:,} tokens).\n")
    if facts.scores:
        fixture = any(s["fixture"] for s in facts.scores)
        rows = "".join(
            f"| {s['task']} | {s['category']} | {s['primary_metric']} | {s['score']:.4f} | {s['n_samples']} |\n"
            for s in sorted(facts.scores, key=lambda s: (s["category"], s["task"]))
        )
        title = "Task scores (on harp's offline fixture data, not the real datasets)" if fixture else "Task scores"
        lines.append(f"{title}:\n\n| task | category | metric | score | samples |\n|---|---|---|---:|---:|\n{rows}")
    if not (facts.perplexity or facts.scores):
        lines.append("The pipeline measured no perplexity or task score of this plan before the export.\n")
    return "\n".join(lines)
