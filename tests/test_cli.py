"""The stage entry points on the tiny model: outputs, provenance, wandb runs and one-sentence errors."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers import run_stage


@pytest.fixture(scope="module")
def results(tiny_model_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    shutil.copytree(tiny_model_dir, results / "models" / "tiny")
    return results


def test_search_prune_perplexity_pipeline(results):
    small = ["data.num_samples=4", "data.seq_len=32", "method.search.grid=[0.0,0.5,1.0]"]
    for stage, extra in [
        ("calibrate", small),
        ("search", small),
        ("prune", small),  # the settings the alphas were made with (the plan's provenance check)
        ("prune", ["method=dense"]),
        ("perplexity", [*small, "eval.perplexity.max_tokens=600"]),
        ("perplexity", ["method=dense", "eval.perplexity.max_tokens=600"]),
    ]:
        proc = run_stage(stage, results, *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
    alphas = json.loads((results / "tiny/harp/alphas.json").read_text())
    assert sorted(map(int, alphas["alphas"])) == [5, 6, 7] and alphas["searched"]
    assert (results / "tiny/harp/search.csv").read_text().count("\n") == 1 + 3 * 3
    plan = json.loads((results / "tiny/harp/plan.json").read_text())
    assert plan["kv_cache_reduction"] == pytest.approx(3 / 8) and plan["params_after"] < plan["params_before"]
    ppl = {m: json.loads((results / f"tiny/{m}/ppl.json").read_text()) for m in ("dense", "harp")}
    assert ppl["dense"]["tiny_model"] and ppl["dense"]["tokens"] == ppl["harp"]["tokens"] == 599
    assert ppl["dense"]["perplexity"] != ppl["harp"]["perplexity"]
    assert (results / "tiny/harp/search.config.yaml").exists()  # provenance beside every output
    runs = list((results / "wandb").glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 6, runs  # one offline wandb run per stage invocation
    logged = b"".join(r.read_bytes() for r in runs)
    for key in (b"calibration_perplexity/harp", b"kv_cache_reduction", b"search_trace", b"perplexity"):
        assert key in logged


def test_fixed_alphas_and_no_rescale_skip_the_search(results):
    stale = results / "ablations/no_rescale/tiny/harp/search.csv"  # an earlier run's search trace
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("step,layer,alpha,perplexity\n0,7,0.5,150.0\n")
    proc = run_stage("search", results, "experiment=no_rescale", "tracking=disabled")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((results / "ablations/no_rescale/tiny/harp/alphas.json").read_text())
    assert data["alphas"] == {"7": 1.0, "6": 1.0, "5": 1.0} and not data["searched"]
    assert not stale.exists()  # collect would report it as this run's


def test_published_alphas_need_no_search_and_no_weights(tmp_path):
    proc = run_stage("search", tmp_path, "model=qwen2_7b", "experiment=published_alphas", "tracking=disabled")
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "ablations/published_alphas/qwen2_7b/harp/alphas.json").read_text())
    assert data["alphas"] == {"27": 0.9, "26": 0.3, "25": 0.3, "24": 0.2} and not data["searched"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["experiment=published_alphas"], "Model tiny has no published alphas (conf/model/tiny.yaml)"),
        (["model.source=/nonexistent/model", "model.build=null"], "does not exist"),
    ],
)
def test_bad_input_is_a_clear_error(results, overrides, message):
    """As a subprocess; test_hardening runs the other bad values in-process."""
    proc = run_stage("search", results, "tracking=disabled", *overrides)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_tiny_model_says_how_to_build_it(tmp_path):
    proc = run_stage("calibrate", tmp_path, "tracking=disabled")
    assert proc.returncode == 2
    assert "python -m harp.cli.build_tiny" in proc.stderr
