"""Write a pruned model as a checkpoint that loads with stock transformers, and check it against harp's own.

The plan is applied in memory with harp's code (structured methods slice their weights there already); the
pruned model's weights are saved as they are, with `config.pruned_layers` saying which layers changed and
`modeling_pruned.py` rebuilding them. A plan that only zeroes weights, or removes nothing, changes no
shape: its export is a stock checkpoint with no modeling file. Before the folder appears, the export is
loaded back and must give harp's logits and greedy tokens; the measurements go into the model card.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harp.errors import HarpError
from harp.eval.speed import kv_cache_bytes
from harp.export import modeling_pruned
from harp.export.structure import TEMPLATE, drop_dead_norms, model_class, pruned_layers
from harp.io import atomic_dir
from harp.pruning.plan import Plan, apply_plan

PROMPT_TOKENS = 96  # the prompt on which the KV cache is measured and the logits compared
GREEDY_TOKENS = 8
# any text will do; repeated up to PROMPT_TOKENS tokens
PROMPT = (
    "The river rose through the night, and by morning the old bridge stood alone in a wide brown lake. "
    "People came down from the hills to look at it, and the children counted the boats that passed under it. "
)
PROVENANCE = "pruned_from"  # the config.json key recording the source model, method and plan hash


@dataclass
class Measured:
    """One model's size and cache, measured the same way for the dense model and the export."""

    parameters: int  # every parameter, a tied embedding once
    tensor_bytes: int  # bytes of those parameters
    kv_cache_bytes: int  # bytes of keys and values cached for a PROMPT_TOKENS-token prompt


@dataclass
class ExportSummary:
    dense: Measured
    export: Measured
    safetensors_bytes: int  # the export's weight files on disk
    max_logit_diff: float  # export against harp's pruned model, on the prompt
    pruned_layers: dict[str, dict]  # config.pruned_layers ({} for a stock checkpoint)
    model_class: str | None  # the class config.json's auto_map names; None: a stock checkpoint


def prompt_ids(tokenizer, device) -> torch.Tensor:
    ids = tokenizer(PROMPT)["input_ids"]
    ids = (ids * (PROMPT_TOKENS // max(len(ids), 1) + 1))[:PROMPT_TOKENS]
    return torch.tensor([ids], device=device)


@torch.no_grad()
def measure(model: nn.Module, ids: torch.Tensor) -> Measured:
    out = model(ids, use_cache=True)
    cache = out["cache"] if "cache" in out else out["past_key_values"]  # the field's name before transformers 5.24
    params = list(model.parameters())
    return Measured(
        parameters=sum(p.numel() for p in params),
        tensor_bytes=sum(p.numel() * p.element_size() for p in params),
        kv_cache_bytes=kv_cache_bytes(cache),
    )


def recorded_plan_hash(out_dir: Path) -> str | None:
    """The plan hash an existing export folder records, or None when it holds no readable export."""
    try:
        return json.loads((out_dir / "config.json").read_text())[PROVENANCE]["plan_hash"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_leftover(out_dir: Path, plan_hash: str) -> None:
    """Refuse to replace a folder that is not this plan's export (another plan's, or anything else)."""
    if not out_dir.exists():
        return
    found = recorded_plan_hash(out_dir)
    if found is None:
        raise HarpError(f"{out_dir} exists but holds no harp export; move it away or delete it, then rerun.")
    if found != plan_hash:
        raise HarpError(
            f"{out_dir} holds the export of another plan ({found}, this plan is {plan_hash}); delete it and rerun."
        )


def write_export(
    model: nn.Module,
    tokenizer,
    plan: Plan,
    out_dir: str | Path,
    provenance: dict,
    card: Callable[[ExportSummary], str],
) -> ExportSummary:
    """Prune the dense `model` with `plan` (in place) and write it to `out_dir` as a checkpoint that loads without
    harp, with `card(summary)` as its README.md; nothing appears at `out_dir` unless it loads back equal."""
    out_dir = Path(out_dir)
    ids = prompt_ids(tokenizer, model.get_input_embeddings().weight.device)
    dense = measure(model, ids)
    apply_plan(model, plan)
    drop_dead_norms(model)
    layers = pruned_layers(model)
    name = model_class(model) if layers else None
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        config = json.loads((tmp / "config.json").read_text())
        config[PROVENANCE] = provenance
        if name:
            shutil.copy(TEMPLATE, tmp / TEMPLATE.name)
            config |= {
                "architectures": [name],
                "auto_map": {"AutoModelForCausalLM": f"{TEMPLATE.stem}.{name}"},
                "pruned_layers": layers,
            }
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        exported, diff = _load_and_compare(model, tmp, name, ids)
        summary = ExportSummary(
            dense=dense,
            export=measure(exported, ids),
            safetensors_bytes=sum(f.stat().st_size for f in tmp.glob("*.safetensors")),
            max_logit_diff=diff,
            pruned_layers=layers,
            model_class=name,
        )
        del exported
        (tmp / "README.md").write_text(card(summary))
        _readable(tmp)
    return summary


@torch.no_grad()
def _load_and_compare(model: nn.Module, folder: Path, name: str | None, ids: torch.Tensor) -> tuple[nn.Module, float]:
    """Load the written folder (the shipped modeling class, or stock transformers) and compare it with `model`."""
    from transformers import AutoModelForCausalLM

    cls = getattr(modeling_pruned, name) if name else AutoModelForCausalLM
    exported, info = cls.from_pretrained(
        folder,
        dtype=model.dtype,
        attn_implementation=model.config._attn_implementation,
        output_loading_info=True,
    )
    exported = exported.to(ids.device).eval()
    if info["missing_keys"] or info["unexpected_keys"]:
        raise HarpError(
            f"The export does not load whole (missing {sorted(info['missing_keys'])[:3]}, unexpected "
            f"{sorted(info['unexpected_keys'])[:3]}); nothing was written."
        )
    expected, got = model(ids).logits.float(), exported(ids).logits.float()
    diff = (expected - got).abs().max().item()
    tolerance = 1e-4 if model.dtype == torch.float32 else 1e-2 * max(1.0, expected.abs().max().item())
    prefix = ids[:, : PROMPT_TOKENS // 6]
    greedy = {"max_new_tokens": GREEDY_TOKENS, "do_sample": False, "min_new_tokens": GREEDY_TOKENS}
    same_tokens = torch.equal(model.generate(prefix, **greedy), exported.generate(prefix, **greedy))
    if not diff <= tolerance or not same_tokens:
        raise HarpError(
            f"The written export differs from harp's pruned model (max |logit difference| {diff:.2e}, "
            f"same greedy tokens: {same_tokens}); nothing was written."
        )
    return exported, diff


def _readable(folder: Path) -> None:
    """Files as readable as any other output (some writers create owner-only files)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~mask)
