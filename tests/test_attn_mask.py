"""attn_mask and its Wanda-on-q/k baseline: the model's own attention matrix, monotone projected gradient
descent, exact per-row sparsity (and 2:4), the budget, bit-packed plans that re-apply exactly, bad input
before any model loads, and the comparison stage."""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from harp import methods
from harp.config import MaskConfig
from harp.errors import HarpError
from harp.eval.mask_compare import compare
from harp.methods import MaskMethodConfig
from harp.models.adapters import decoder_layers
from harp.pruning import attn_mask, qk_masks
from harp.pruning.params import decoder_linear_params
from harp.pruning.plan import PruneInputs, apply_plan, load_plan, save_plan
from tests.helpers import ROOT, compose, random_model

MASK_METHODS = ("attn_mask", "wanda_qk")
QUICK = dict(iterations=5)  # the default step and lambda, few steps


def calibration(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 128, (8, 32), generator=torch.Generator().manual_seed(seed))


def mask_plan(method: str, model, budget: int | None = None, **settings):
    inp = PruneInputs(
        model=model,
        source="random",
        method=MaskMethodConfig(name=method, mask=MaskConfig(**(QUICK | settings))),
        calibration=calibration(),
        target_removed=budget,
    )
    return methods.get(method).planner(inp)


def kept(plan, model) -> dict:
    """The plan's keep-masks, unpacked against the model's q/k shapes."""
    return {
        (layer, proj): qk_masks.unpack(
            plan.tensors[qk_masks.tensor_name(layer, proj)],
            getattr(qk_masks.attention_of(model, layer), proj).weight.shape,
        )
        for layer in plan.layers
        for proj in qk_masks.PROJECTIONS
    }


def test_attention_matrix_is_the_models_own(family):
    """RoPE, scaling (Gemma-2's query_pre_attn_scalar), softcapping and sliding windows as the model's eager kernel."""
    model = random_model(family, **({"sliding_window": 8} if family == "mistral" else {}))
    model.config._attn_implementation = "eager"
    ids = calibration()[:3, :20]
    inputs = qk_masks.capture_inputs(model, ids, list(range(6)))
    with torch.no_grad():
        reference = model(ids, output_attentions=True, use_cache=False).attentions
    for layer, x in inputs.items():
        mine = qk_masks.attention_matrix(qk_masks.attention_of(model, layer), x)
        torch.testing.assert_close(mine, reference[layer].float(), rtol=1e-5, atol=1e-6)


def test_loss_decreases_monotonically_from_the_dense_optimum():
    model = random_model("llama")
    layer = 3
    attn = qk_masks.attention_of(model, layer)
    x = qk_masks.capture_inputs(model, calibration(), [layer])[layer]
    lam = 1e-3
    with torch.enable_grad():
        mq, mk, trace = attn_mask.optimise_layer(attn, x, lam=lam, step_size=0.5, iterations=30)
    assert trace[0] == pytest.approx(lam / 2)  # L / N at all ones: the attention term is exactly 0
    assert all(b <= a for a, b in zip(trace, trace[1:])), trace
    assert trace[-1] < trace[0]
    assert mq.min() >= 0 and mk.max() <= 1 and mq.std() > 0  # projected onto [0, 1], and not uniform


def test_gradient_reaches_the_key_mask_through_every_head_of_its_group():
    """A key head feeds n_rep query heads: its mask's gradient is the sum of theirs (repeat_kv)."""
    model = random_model("llama")
    attn = qk_masks.attention_of(model, 2)
    x = qk_masks.capture_inputs(model, calibration(), [2])[2]
    target = qk_masks.attention_matrix(attn, x)
    hd, n_rep = attn.head_dim, attn.num_key_value_groups
    mq = torch.full(attn.q_proj.weight.shape, 0.9, requires_grad=True)
    mk = torch.full(attn.k_proj.weight.shape, 0.9, requires_grad=True)
    loss, _ = attn_mask.objective(attn, x, target, mq, mk, lam=0.0)
    (total,) = torch.autograd.grad(loss, mk)
    per_head = []
    for head in range(n_rep):  # query heads of key group 0, one at a time
        wq, wk = attn.q_proj.weight * mq, attn.k_proj.weight * mk
        diff = qk_masks.attention_matrix(attn, x, wq, wk)[:, head] - target[:, head]
        per_head.append(torch.autograd.grad(diff.pow(2).sum() / (2 * target[..., 0].numel()), mk)[0])
    torch.testing.assert_close(total[:hd], sum(per_head)[:hd], rtol=1e-4, atol=1e-9)
    assert all(g[:hd].abs().sum() > 0 for g in per_head)


@pytest.mark.parametrize("method", MASK_METHODS)
def test_binarised_mask_has_the_exact_sparsity_per_row(method):
    model = random_model("llama")
    plan = mask_plan(method, model, sparsity=0.25)
    width = model.config.hidden_size
    for keep in kept(plan, model).values():
        assert (keep.sum(-1) == width - width // 4).all()
    plan = mask_plan(method, random_model("llama"), sparsity=0.5, pattern="2:4")
    for keep in kept(plan, model).values():
        assert (keep.reshape(keep.shape[0], -1, 4).sum(-1) == 2).all()
    assert plan.details["sparsity"] == 0.5
    if method == "attn_mask":
        assert plan.details["loss_rose_in"] == [] and set(plan.details["loss_per_entry"]) == {str(i) for i in range(6)}


def test_binarisation_keeps_the_highest_scores_and_breaks_ties_by_the_tiebreak():
    score = torch.tensor([[0.9, 0.0, 0.5, 0.0, 1.0, 0.2, 0.0, 0.7]])
    tiebreak = torch.tensor([[0.0, 3.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0]])
    keep = qk_masks.keep_mask(score, torch.tensor([2]), "unstructured", tiebreak)
    assert keep.tolist() == [[True, True, True, False, True, True, False, True]]  # the zeros with tiebreaks 1, 2 go
    keep = qk_masks.keep_mask(score, None, "2:4")
    assert keep.tolist() == [[True, False, True, False, True, False, False, True]]


def test_packing_round_trips_any_shape():
    keep = torch.rand(7, 13, generator=torch.Generator().manual_seed(0)) > 0.5
    packed = qk_masks.pack(keep)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(7 * 13 / 8)
    assert torch.equal(qk_masks.unpack(packed, keep.shape), keep)
    with pytest.raises(HarpError, match="holds 12 bytes, not the 13 of a"):
        qk_masks.unpack(packed, torch.Size([7, 14]))


@pytest.mark.parametrize("method", MASK_METHODS)
def test_budget_picks_one_sparsity_for_every_row_and_removes_exactly_the_budget(method):
    model = random_model("llama")
    before = decoder_linear_params(model)
    budget = 12_345
    plan = mask_plan(method, model, budget=budget)
    assert plan.params_before - plan.params_after == budget == before - decoder_linear_params(model)
    removed = torch.cat([(~k).sum(-1) for k in kept(plan, model).values()])
    assert removed.max() - removed.min() <= 1  # the same s everywhere, up to rounding
    everything = sum(m.numel() for m in kept(plan, model).values())
    with pytest.raises(HarpError, match="is not below the"):
        mask_plan(method, random_model("llama"), budget=everything)


def test_masked_layers_setting_and_removal_counts():
    model = random_model("llama")
    plan = mask_plan("wanda_qk", model, sparsity=0.5, layers=[1, 4])
    assert plan.layers == [1, 4] and sorted(plan.tensors) == sorted(
        qk_masks.tensor_name(i, p) for i in (1, 4) for p in qk_masks.PROJECTIONS
    )
    untouched = decoder_layers(model)[0].self_attn.q_proj.weight
    assert torch.count_nonzero(untouched) == untouched.numel()
    counts = qk_masks.removal_counts(rows=7, width=10, total=23)
    assert counts.sum() == 23 and set(counts.tolist()) == {3, 4}
    with pytest.raises(HarpError, match="decoder layers 0..5"):
        mask_plan("wanda_qk", random_model("llama"), sparsity=0.5, layers=[6])


@pytest.mark.parametrize("method", MASK_METHODS)
def test_plan_reapplies_to_a_fresh_model_with_identical_logits(family, method, tmp_path):
    pruned = random_model(family)
    plan = mask_plan(method, pruned, sparsity=0.5)
    assert plan.kv_cache_reduction == 0.0
    masked = sum(getattr(decoder_layers(pruned)[0].self_attn, p).weight.numel() for p in qk_masks.PROJECTIONS)
    assert plan.params_before - plan.params_after == 6 * masked // 2  # the zeros count as removed
    save_plan(plan, tmp_path)
    assert (tmp_path / "plan.safetensors").stat().st_size < 6 * masked // 8 + 2000  # one bit per weight
    fresh = apply_plan(random_model(family), load_plan(tmp_path))
    ids = calibration(1)[:2, :12]
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, pruned(ids).logits)
    if family == "qwen2":  # biases are not masked
        assert torch.equal(
            fresh.model.layers[0].self_attn.q_proj.bias, random_model(family).model.layers[0].self_attn.q_proj.bias
        )


def test_mask_plan_does_not_fit_a_pruned_layer():
    model = random_model("llama")
    plan = mask_plan("wanda_qk", model, sparsity=0.5)
    import harp

    harp.apply_harp(model2 := random_model("llama"), {5: 0.5})
    with pytest.raises(HarpError, match="already pruned"):
        apply_plan(model2, plan)
    with pytest.raises(HarpError, match="no query/key projections"):  # the applier's own check
        methods.get("wanda_qk").applier(model2, plan)


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.mask.sparsity=1.0", "method.mask.sparsity is 1.0; it must lie in [0.0, 1.0)"),
        ("method.mask.sparsity=-0.1", "is -0.1; it must lie in [0.0, 1.0)"),
        ("method.mask.compare=[0.5,1.2]", "method.mask.compare holds 1.2; it must lie in [0.0, 1.0)"),
        ("method.mask.step_size=0.0", "step_size is 0.0; it must be positive"),
        ("method.mask.iterations=0", "method.mask.iterations is 0"),
        ("method.mask.pattern=4:8", "method.mask.pattern is '4:8'"),
        ("method.mask.rank_by=size", "method.mask.rank_by is 'size'"),
        ("method.mask.sparsity=0.3", None),
    ],
)
def test_bad_settings_are_one_sentence(override, message):
    if message is None:  # a valid value
        assert compose("method=attn_mask", override).method.mask.sparsity == 0.3
        with pytest.raises(HarpError, match="sparsity must be 0.5"):
            compose("method=attn_mask", "method.mask.pattern=2:4", override)
        return
    with pytest.raises(HarpError, match=re.escape(message)):
        compose("method=attn_mask", override)


def test_two_four_needs_a_width_divisible_by_four():
    MaskConfig(pattern="2:4", sparsity=0.5).check_width(64)
    with pytest.raises(HarpError, match="multiple of 4, but it is 66"):
        MaskConfig(pattern="2:4", sparsity=0.5).check_width(66)
    model = random_model("llama", hidden_size=66, num_attention_heads=6, head_dim=16)
    with pytest.raises(HarpError, match="multiple of 4"):
        mask_plan("attn_mask", model, sparsity=0.5, pattern="2:4")


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.mask.sparsity=1.5", "must lie in [0.0, 1.0)"),
        ("method.mask.step_size=-1", "must be positive"),
        ("method.mask.iterations=0", "it must be at least 1"),
        ("method.mask.pattern=1:3", "method.mask.pattern is '1:3'"),
    ],
)
def test_bad_input_fails_before_any_model_loads(tmp_path, override, message):
    """No model is built under tmp_path: a check after loading would complain about the model instead."""
    cmd = [sys.executable, "-m", "harp.cli.prune", "method=attn_mask", override, f"results_dir={tmp_path}"]
    env = os.environ | {"PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    proc = subprocess.run(cmd + ["tracking=disabled"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1


def test_workflow_rejects_two_four_on_a_published_width_before_any_job():
    import yaml

    from harp.workflow import Pipeline

    two_four = ["method.mask.pattern=2:4", "method.mask.sparsity=0.5"]
    wf = yaml.safe_load((ROOT / "workflow/config.yaml").read_text())
    wf |= {"models": ["llama3_1_8b"], "methods": ["attn_mask"], "experiments": [], "mask_compare": False}
    assert Pipeline(wf | {"overrides": two_four}, conf_dir=ROOT / "conf").variants  # 4096 divides by 4
    with pytest.raises(HarpError, match="multiple of 4, but it is 4098"):
        Pipeline(wf | {"overrides": [*two_four, "model.architecture.hidden_size=4098"]}, conf_dir=ROOT / "conf")


def test_comparison_on_a_tiny_random_model():
    model = random_model("llama", num_layers=3)
    heldout = torch.randint(0, 128, (200,), generator=torch.Generator().manual_seed(2))
    settings = MaskConfig(iterations=10, compare=[0.3, 0.7])
    dense = [p.detach().clone() for p in model.parameters()]
    rows, seconds = compare(model, calibration(), heldout, settings, window=64, stride=32)
    assert set(seconds) == {"attn_mask", "wanda_qk"}
    assert all(torch.equal(a, b) for a, b in zip(dense, model.parameters()))  # the model is left dense
    variants = [("wanda_qk", None), ("attn_mask", "mask"), ("attn_mask", "masked_weight")]
    errors = {
        (r["method"], r["rank_by"], r["sparsity"], r["layer"]): r["value"] for r in rows if r["metric"] == "attn_error"
    }
    assert len(errors) == 3 * 2 * (3 + 1)
    assert all(v > 0 for v in errors.values())
    for method, rank in variants[::2]:  # ranked by M alone, the error need not grow with s (see attn_mask)
        assert errors[(method, rank, 0.3, None)] < errors[(method, rank, 0.7, None)]
    ppl = {(r["method"], r["rank_by"], r["sparsity"]): r["value"] for r in rows if r["metric"] == "perplexity"}
    assert set(ppl) == {("dense", None, 0.0)} | {(m, r, s) for m, r in variants for s in (0.3, 0.7)}
    assert all(math.isfinite(v) and v > 1 for v in ppl.values())
    ratio = {r["sparsity"]: r["pruning_ratio"] for r in rows if r["method"] == "wanda_qk"}
    assert ratio[0.7] > ratio[0.3] > 0


@pytest.mark.slow
def test_comparison_stage_collect_and_report_table(tiny_model_dir, tmp_path):
    """The stage on the (briefly trained) tiny model, as the demo runs it, then its row kind and table."""
    from harp.report.collect import collect
    from harp.report.latex import document
    from harp.report.tables import build_tables, to_markdown, write_tables

    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny")
    small = ["data.num_samples=4", "data.seq_len=32", "tracking=disabled", "progress=false"]
    env = os.environ | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for stage, extra in (
        ("calibrate", ["method=attn_mask"]),
        ("mask_compare", ["method=attn_mask", "method.mask.iterations=5", "eval.perplexity.max_tokens=300"]),
    ):
        cmd = [sys.executable, "-m", f"harp.cli.{stage}", f"results_dir={tmp_path}", *small, *extra]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    frame = collect(tmp_path)
    rows = frame[frame.kind == "mask_compare"]
    assert set(rows.method) == {"dense", *MASK_METHODS} and set(rows.sparsity) == {0.0, 0.3, 0.5, 0.7}
    assert set(rows.rank_by.dropna()) == {"mask", "masked_weight"}
    assert rows.tiny_model.all() and (rows.kv_cache_reduction == 0).all()
    (table,) = [t for t in build_tables(frame) if t.name == "tiny_mask_compare"]
    assert list(table.frame.columns[:2]) == ["s (%)", "Method"] and "L7" in table.frame and len(table.frame) == 10
    assert list(table.frame.Method[:4]) == ["Dense", "Wanda-qk", "Attn-mask (mask)", "Attn-mask (mask x weight)"]
    overall = rows[rows.layer.isna() & (rows.metric == "attn_error")]
    shown = table.frame.set_index(["s (%)", "Method"])["All"]
    for method, rank, label in (
        ("wanda_qk", None, "Wanda-qk"),
        ("attn_mask", "masked_weight", "Attn-mask (mask x weight)"),
    ):
        value = overall[
            (overall.sparsity == 0.5) & (overall.method == method) & (overall.rank_by.fillna("") == (rank or ""))
        ]
        assert shown[(50, label)] == round(100 * value.score.item(), 1)
    text = to_markdown(table)
    assert "Lower attention error at each s: 30% " in text and "TINY MODEL" in text
    assert "KV cache keeps its size" in text
    if shutil.which("pdflatex"):  # the caption and labels are valid LaTeX
        (tex,) = write_tables([table], tmp_path / "tables")
        doc = tex.parent / "doc.tex"
        doc.write_text(document([tex.stem]))
        cmd = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name]
        done = subprocess.run(cmd, cwd=doc.parent, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:]


def test_workflow_plans_the_comparison_where_the_suite_asks():
    import yaml

    from harp.workflow import Pipeline

    wf = yaml.safe_load((ROOT / "workflow/config.yaml").read_text()) | {"suite": "tiny", "methods": ["attn_mask"]}
    wf["experiments"] = []
    p = Pipeline(wf, conf_dir=ROOT / "conf")
    assert {m for (_, _, m) in p.variants} == {"attn_mask"}  # the paper's budget needs no HARP plan
    assert "results/tiny/attn_mask/mask_compare.csv" in p.targets()
    assert "method=attn_mask" in p.command("results", "tiny", "attn_mask").overrides
    for off in ({"mask_compare": False}, {"methods": ["dense"]}):  # not asked, or attn_mask not run
        assert not any("mask_compare" in t for t in Pipeline(wf | off, conf_dir=ROOT / "conf").targets())
