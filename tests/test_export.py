"""Exported checkpoints: every method's export loads with stock transformers in a Python where harp cannot be
imported, gives harp's pruned logits and greedy tokens, is smaller by the plan's removed weights, caches no keys
or values in its attention-free layers; the export stage's card, and its one-sentence refusals."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harp import artifacts, methods
from harp.config import BudgetConfig
from harp.errors import HarpError
from harp.export.card import CardFacts, model_card
from harp.export.checkpoint import PROMPT_TOKENS, check_leftover, prompt_ids, write_export
from harp.models.loading import load_model
from harp.provenance import plan_hash
from harp.pruning.budget import target_removed
from harp.pruning.params import decoder_linear_params, kv_cache_reduction
from harp.pruning.plan import Plan, PruneInputs, apply_plan, load_plan
from tests.helpers import FAMILIES, compose, random_model, run_stage, save_recorded_plan

ALPHAS = {7: 0.5, 6: 0.0, 5: 0.3}  # HARP's three top layers of the tiny model: one of them removed entirely
MASK_ITERATIONS = 5  # attn_mask's optimisation, shortened: the export does not care how good the mask is
BF16 = "gemma2_bfloat16"
PROMPT_TEXT = "The river rose through the night, and by morning the old bridge stood alone in a wide brown lake."


def tiny_plan(model, name: str, source: str) -> Plan:
    """`name`'s plan of the tiny model, from its planner at the paper's budget (L = 3 of 8 layers)."""
    spec = compose(f"method={name}").method
    if getattr(spec, "mask", None) is not None:  # the mask methods
        spec = dataclasses.replace(spec, mask=dataclasses.replace(spec.mask, iterations=MASK_ITERATIONS))
    method = methods.get(name)
    inputs = PruneInputs(
        model=model,
        source=source,
        method=spec,
        calibration=torch.randint(0, model.config.vocab_size, (8, 32), generator=torch.Generator().manual_seed(0)),
        alphas=dict(ALPHAS),
        target_removed=target_removed(model, BudgetConfig(), 3) if method.budgeted else None,
    )
    return method.planner(inputs)


def family_plan(model) -> Plan:
    """A plan using every kind of change the modeling file knows, layer 0 included: HARP pass-through (layer 0)
    and removal (4), fewer heads with a compensation bias (1), a removed block left as a bias (2) or as
    nothing (5), fewer MLP channels with and without a bias (1, 3)."""
    hidden = model.config.hidden_size
    gen = torch.Generator().manual_seed(3)
    details = {
        "removed_groups": {"1": [0], "2": [0, 1], "5": [0, 1]},
        "removed_channels": {"1": [1, 5, 7], "3": [0, 2]},
    }
    tensors = {
        "layers.1.self_attn.o_proj.bias": torch.randn(hidden, generator=gen),
        "layers.2.self_attn.o_proj.bias": torch.randn(hidden, generator=gen),
        "layers.3.mlp.down_proj.bias": torch.randn(hidden, generator=gen),
    }
    before = decoder_linear_params(model)
    plan = Plan("harp_flap", "random", list(range(6)), before, before, 0.0, {0: 0.5, 4: 0.0}, details, tensors)
    pruned = copy.deepcopy(model)
    methods.get("harp_flap").applier(pruned, plan)
    plan.params_after, plan.kv_cache_reduction = decoder_linear_params(pruned), kv_cache_reduction(pruned)
    return plan


def export(model, tokenizer, plan: Plan, out: Path, name: str, attn_implementation: str | None = None) -> dict:
    """Export through the stage's own function; returns what the test compares: harp's pruned logits and tokens,
    the plan's counts, the export's measurements."""
    facts = CardFacts("tiny", plan.model, plan.method, methods.label(plan.method), methods.get(plan.method).zeroes,
                      plan, "0" * 16, "python -m harp.cli.export", tiny_model=True)  # fmt: skip
    summary = write_export(model, tokenizer, plan, out, {"plan_hash": "0" * 16}, lambda s: model_card(facts, s))
    ids = prompt_ids(tokenizer, "cpu")
    with torch.no_grad():  # `model` is harp's in-memory pruned model now
        logits = model(ids).logits
        tokens = model.generate(ids[:, :16], max_new_tokens=8, min_new_tokens=8, do_sample=False)
    torch.save({"ids": ids, "logits": logits, "tokens": tokens}, out.parent / f"{name}.reference.pt")
    return {
        "folder": str(out),
        "name": name,
        "attn_implementation": attn_implementation,
        "removed": plan.params_before - plan.params_after,
        "params_after": plan.params_after,
        "zeroes": methods.get(plan.method).zeroes,
        "attention_free": [i for i, c in summary.pruned_layers.items() if "attention" in c],
        "pruned_parameters": sum(p.numel() for p in model.parameters()),
        "dense": dataclasses.asdict(summary.dense),
        "summary_export": dataclasses.asdict(summary.export),
        "safetensors_bytes": summary.safetensors_bytes,
        "max_logit_diff": summary.max_logit_diff,
    }


# Loads every export with transformers alone: harp is blocked from import, and the working directory is not the
# checkout (harp is also installed in the environment, so only the blocker keeps it out).
LOADER = r"""
import sys

class NoHarp:
    def find_spec(self, name, path=None, target=None):
        if name == "harp" or name.startswith("harp."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")

sys.meta_path.insert(0, NoHarp())
import json, torch
from transformers import AutoModelForCausalLM

results = {}
for item in json.loads(sys.argv[1]):
    kwargs = {"attn_implementation": item["attn_implementation"]} if item["attn_implementation"] else {}
    model = AutoModelForCausalLM.from_pretrained(item["folder"], trust_remote_code=True, **kwargs).eval()
    ref = torch.load(item["folder"] + "/../" + item["name"] + ".reference.pt")
    with torch.no_grad():
        logits = model(ref["ids"]).logits
        tokens = model.generate(ref["ids"][:, :16], max_new_tokens=8, min_new_tokens=8, do_sample=False)
        cache = model(ref["ids"], use_cache=True)["cache"]
    results[item["name"]] = {
        "class": type(model).__name__,
        "max_logit_diff": (logits - ref["logits"]).abs().max().item(),
        "same_tokens": torch.equal(tokens, ref["tokens"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "decoder_linear": sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear)),
        "cached_layers": [i for i, layer in enumerate(cache.layers) if getattr(layer, "keys", None) is not None],
        "cache_length": cache.get_seq_length(),
        "kv_cache_bytes": sum(
            t.numel() * t.element_size()
            for layer in cache.layers
            for t in (getattr(layer, "keys", None), getattr(layer, "values", None))
            if t is not None
        ),
    }
try:
    import harp
    results["harp_importable"] = True
except ModuleNotFoundError:
    results["harp_importable"] = False
results["harp_modules"] = sorted(m for m in sys.modules if m.split(".")[0] == "harp")
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A results folder holding the tiny model's architecture with random weights and a small tokenizer, where the
    stages look for the tiny model: the round trip needs its shapes, not its training (which takes minutes)."""
    from transformers import LlamaForCausalLM

    from harp.models.tiny import TinyConfig, train_tokenizer

    results = tmp_path_factory.mktemp("results")
    tokenizer = train_tokenizer([PROMPT_TEXT] * 4, 512)
    ids = {f"{k}_token_id": tokenizer.eos_token_id for k in ("bos", "eos", "pad")}
    config = TinyConfig(hidden_size=96, intermediate_size=256, num_heads=4).llama_config(len(tokenizer), **ids)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(results / "models" / "tiny")
    tokenizer.save_pretrained(results / "models" / "tiny")
    return results


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory) -> dict:
    """Every method's plan of the tiny model saved where the stages keep it and exported, plus one plan per family
    on a random model; then all exports loaded in one harp-free subprocess."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # models this small run faster on one thread than on two contending ones
    try:
        return _export_all(tiny, tmp_path_factory)
    finally:
        torch.set_num_threads(threads)


def _export_all(tiny: Path, tmp_path_factory) -> dict:
    from transformers import AutoModelForCausalLM

    from harp.models.tiny import train_tokenizer

    source = str(tiny / "models" / "tiny")
    items = []
    for name in methods.METHODS:
        model, tokenizer = load_model(source, device="cpu")
        mdir = artifacts.method_dir(tiny, "tiny", name)
        save_recorded_plan(tiny_plan(model, name, source), mdir, f"results_dir={tiny}", f"method={name}")
        model, tokenizer = load_model(source, device="cpu")
        items.append(export(model, tokenizer, load_plan(mdir), artifacts.export_dir(mdir), name))
    families = tmp_path_factory.mktemp("families")
    tokenizer = train_tokenizer([PROMPT_TEXT] * 4, 300)
    for family in FAMILIES:
        model = random_model(family, vocab_size=len(tokenizer))
        attn = "eager" if family == "gemma2" else None
        items.append(export(model, tokenizer, family_plan(model), families / family / "export", family, attn))
    # Gemma-2 in bfloat16, loaded as the stages load it: HARP's alpha folded into a norm must stay float32
    model = random_model("gemma2", vocab_size=len(tokenizer))
    plan = family_plan(model)
    model.save_pretrained(families / "gemma2_source")
    model = AutoModelForCausalLM.from_pretrained(
        families / "gemma2_source", dtype=torch.bfloat16, attn_implementation="eager"
    )
    items.append(export(model.eval(), tokenizer, plan, families / BF16 / "export", BF16, "eager"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "HF_MODULES_CACHE": str(families / "hf_modules"),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(items)],
        cwd=families,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.splitlines()[-1])
    return {"items": {i["name"]: i for i in items}, "loaded": loaded}


def test_harp_is_not_importable_where_the_exports_load(exported):
    assert exported["loaded"]["harp_importable"] is False and exported["loaded"]["harp_modules"] == []


@pytest.mark.parametrize("name", [*methods.METHODS, *FAMILIES, BF16])
def test_every_export_gives_harps_logits_and_tokens_and_drops_the_removed_weights(exported, name):
    item, loaded = exported["items"][name], exported["loaded"][name]
    assert loaded["max_logit_diff"] <= 1e-4 and item["max_logit_diff"] <= 1e-4
    assert loaded["same_tokens"]
    structural = bool(item["removed"]) and not item["zeroes"]
    assert loaded["class"].startswith("Pruned") == structural, loaded["class"]
    if item["zeroes"]:  # zeros kept: the stock model, as large as the dense one, and the whole KV cache
        assert item["removed"] > 0 and loaded["parameters"] == item["dense"]["parameters"]
        assert loaded["kv_cache_bytes"] == item["dense"]["kv_cache_bytes"]
    else:  # removed weights are gone: the shapes hold exactly the plan's remaining weights, and harp's parameters
        assert loaded["decoder_linear"] == item["params_after"]
        assert loaded["parameters"] == item["pruned_parameters"]
    if name in ("harp", "mag_sp", "wanda_sp", "attn_drop"):  # no bias added: smaller by exactly the plan's weights
        assert item["dense"]["parameters"] - loaded["parameters"] == item["removed"]
    assert loaded["parameters"] == item["summary_export"]["parameters"]
    assert loaded["kv_cache_bytes"] == item["summary_export"]["kv_cache_bytes"]


@pytest.mark.parametrize("name", ["harp", "harp_flap", *FAMILIES, BF16])
def test_attention_free_layers_cache_nothing_and_the_cache_keeps_its_length(exported, name):
    item, loaded = exported["items"][name], exported["loaded"][name]
    assert item["attention_free"], name
    free = {int(i) for i in item["attention_free"]}
    assert free.isdisjoint(loaded["cached_layers"]) and loaded["cached_layers"]
    assert loaded["cache_length"] == PROMPT_TOKENS  # layer 0 is attention-free in the families' plans
    layers = len(loaded["cached_layers"]) + len(free)
    kept = item["dense"]["kv_cache_bytes"] * (layers - len(free)) // layers
    if name in ("harp", "harp_flap"):  # every layer caches the same: the attention-free ones' share is saved
        assert loaded["kv_cache_bytes"] == kept
    assert loaded["kv_cache_bytes"] < item["dense"]["kv_cache_bytes"]


def test_safetensors_shrink_by_the_removed_weights(exported):
    harp_item = exported["items"]["harp"]
    dense_file = Path(exported["items"]["dense"]["folder"]) / "model.safetensors"
    shrink = dense_file.stat().st_size - harp_item["safetensors_bytes"]
    assert abs(shrink - 4 * harp_item["removed"]) < 4096  # float32; the file headers differ by a little
    mask_file = Path(exported["items"]["attn_mask"]["folder"]) / "model.safetensors"
    assert abs(mask_file.stat().st_size - dense_file.stat().st_size) < 4096


def test_the_card_and_config_say_what_was_pruned(exported):
    folder = Path(exported["items"]["harp"]["folder"])
    card = (folder / "README.md").read_text()
    assert "trust_remote_code=True" in card and "| 6 | 0 | attention removed |" in card
    assert "value_passthrough" in card and "tiny self-trained demo model" in card
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {"AutoModelForCausalLM": "modeling_pruned.PrunedLlamaForCausalLM"}
    assert config["pruned_layers"] == {
        "5": {"attention": "value_passthrough"},
        "6": {"attention": "removed"},
        "7": {"attention": "value_passthrough"},
    }
    assert "import harp" not in (folder / "modeling_pruned.py").read_text()
    mask = Path(exported["items"]["attn_mask"]["folder"])
    assert "no smaller than the dense one" in (mask / "README.md").read_text()
    assert not (mask / "modeling_pruned.py").exists()
    assert "auto_map" not in json.loads((mask / "config.json").read_text())


def test_the_export_stage_writes_the_card_with_the_plans_measurements(tiny, exported):
    mdir = artifacts.method_dir(tiny, "tiny", "harp")
    phash = plan_hash(mdir)
    record = {"perplexity": 123.456, "tokens": 600, "source": "corpus", "model": "tiny", "method": "harp"}
    (mdir / "ppl.json").write_text(json.dumps(record | {"plan_hash": phash}))
    out = artifacts.export_dir(mdir)
    (out / "config.json").write_text(json.dumps({"pruned_from": {"plan_hash": phash}}))  # this plan's: replaced
    proc = run_stage("export", tiny, "tracking=disabled")
    assert proc.returncode == 0, proc.stderr[-2000:]
    card = (out / "README.md").read_text()
    assert f"plan `{phash}`" in card and "Perplexity 123.456 on corpus (600 tokens)" in card
    assert f"python -m harp.cli.export model=tiny method=harp results_dir={tiny}" in card
    assert json.loads((out / "config.json").read_text())["pruned_from"]["plan_hash"] == phash
    assert (mdir / "export.config.yaml").exists()


def test_an_export_left_from_another_plan_or_anything_else_is_refused_and_left_alone(tiny, exported):
    out = artifacts.export_dir(artifacts.method_dir(tiny, "tiny", "flap"))
    config = (out / "config.json").read_text()  # the fixture's export records a made-up plan hash
    with pytest.raises(HarpError, match="holds the export of another plan .*; delete it and rerun"):
        check_leftover(out, plan_hash(out.parent))
    with pytest.raises(HarpError, match="exists but holds no harp export"):
        check_leftover(tiny / "models", "0" * 16)
    assert (out / "config.json").read_text() == config


def test_a_missing_plan_or_a_plan_of_another_model_is_one_sentence(tiny, exported):
    from harp.cli._app import checked_plan

    cfg = compose("method=amp", f"results_dir={tiny / 'elsewhere'}")
    with pytest.raises(HarpError, match="There is no amp plan of tiny .* run the prune stage first"):
        checked_plan(cfg)
    cfg = compose("method=harp", f"results_dir={tiny}", "method.num_layers=2")
    with pytest.raises(HarpError, match="was made with method.num_layers=3 but this run asks for method.num_layers=2"):
        checked_plan(cfg)
    plan = load_plan(artifacts.method_dir(tiny, "tiny", "harp"))
    other = random_model("llama", num_layers=8)  # same family and depth, other weights and sizes
    with pytest.raises(HarpError, match="belongs to a different model"):
        apply_plan(other, plan)


def test_the_demo_exports_harp_and_flap_once_their_scores_are_in():
    import yaml

    from harp.workflow import Pipeline
    from tests.helpers import ROOT

    wf = yaml.safe_load((ROOT / "workflow/config.yaml").read_text()) | {"suite": "tiny", "experiments": []}  # main run
    p = Pipeline(wf, conf_dir=ROOT / "conf")
    assert [t for t in p.targets() if t.endswith("/export")] == ["results/tiny/harp/export", "results/tiny/flap/export"]
    inputs = p.export_inputs("results", "tiny", "flap")
    assert {"results/tiny/flap/plan.json", "results/tiny/flap/ppl.json"} <= set(inputs)
    assert len([i for i in inputs if i.startswith("results/tiny/flap/eval/")]) == len(p.tasks) == 27
