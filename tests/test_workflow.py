"""The Snakemake pipeline: the plan behind the DAG, dry runs of the paper and demo suites, clear config
errors, and an end-to-end smoke run of the tiny model that a second invocation leaves alone."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harp.artifacts import MAIN
from harp.errors import HarpError
from harp.workflow import Pipeline

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
WF = yaml.safe_load((ROOT / "workflow/config.yaml").read_text())


def pipeline(**config) -> Pipeline:
    return Pipeline(WF | config, conf_dir=ROOT / "conf")


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    assert "Job stats:" in output, output[-3000:]
    table = output[output.index("Job stats:") :]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


# --- the plan -------------------------------------------------------------------------------------------------
def test_demo_plan_runs_every_method_and_harp_for_each_ablation():
    p = pipeline()
    main = {m for (e, _, m) in p.variants if e == MAIN}
    assert main == set(WF["suites"]["demo"]["methods"])
    ablations = {e for (e, _, _) in p.variants if e != MAIN}
    assert ablations == set(WF["suites"]["demo"]["experiments"])
    assert {m for (e, _, m) in p.variants if e != MAIN} == {"harp"}
    assert p.variant("results/ablations/no_rescale", "tiny", "harp").cfg.method.rescale is False
    assert p.variant("results", "tiny", "harp").cfg.method.rescale is True
    assert len(p.tasks) == 27 and sorted(sum(p.eval_shards().values(), [])) == sorted(p.tasks)
    assert set(p.eval_shards()) == {"generation", "discriminative", "longbench"}
    assert p.built_models() == {"tiny": "results/models/tiny"}


def test_a_baseline_alone_brings_harp_its_budget_reference():
    p = pipeline(methods=["flap"], experiments=[])
    assert {m for (_, _, m) in p.variants} == {"flap", "harp"}
    assert p.prune_inputs("results", "tiny", "flap") == [
        "results/models/tiny",
        "results/tiny/calib/calibration.pt",
        "results/tiny/harp/plan.json",
    ]
    assert p.prune_inputs("results", "tiny", "harp") == ["results/models/tiny", "results/tiny/harp/alphas.json"]


def test_experiment_alone_runs_only_that_ablation_under_its_own_directory():
    p = pipeline(experiment="layers_2")
    assert set(p.variants) == {("layers_2", "tiny", "harp")}
    assert all(t.startswith("results/ablations/layers_2/tiny/") for t in p.targets())
    assert p.overrides("results/ablations/layers_2", "tiny").split()[-1] == "experiment=layers_2"


def test_paper_models_need_a_gpu_and_the_tiny_model_does_not():
    p = pipeline(suite="paper", experiments=[], methods=["dense"])
    assert p.resource("qwen2_7b", "gpu") == 1 and p.model_inputs("qwen2_7b") == []
    assert pipeline().resource("tiny", "gpu") == 0
    assert len(p.eval_shards()) == 27  # one job per task on a cluster


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"models": ["tinyy"]},
            "Unknown model 'tinyy' in the workflow config; known: gemma2_9b, llama3_1_8b, "
            "mistral_7b_v0_3, qwen2_7b, tiny. Did you mean 'tiny'?",
        ),
        ({"methods": ["flapp"]}, "Unknown method 'flapp'"),
        ({"experiments": ["no_rescaling"]}, "Did you mean 'no_rescale'?"),
        ({"experiment": "layers_12"}, "Cannot prune 12 layers of a 8-layer model"),
        ({"suite": "papers"}, "Unknown suite 'papers'"),
        ({"models": []}, "selects nothing to run"),
        ({"overrides": ["+eval.tasks.nq_opn=5"]}, "Unknown evaluation task 'nq_opn'"),
        ({"overrides": ["method.num_layer=3"]}, "num_layer"),
    ],
)
def test_bad_workflow_config_is_one_sentence(config, message):
    with pytest.raises(HarpError, match=re.escape(message)):
        pipeline(**config)


# --- snakemake itself -----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("suite", ["paper", "demo"])
def test_dry_run_lists_every_job_without_weights(tmp_path, suite):
    s = WF["suites"][suite]
    models, methods, experiments = len(s["models"]), len(s["methods"]), len(s["experiments"])
    runs = models * (methods + experiments)  # each ablation reruns HARP alone
    proc = snakemake(tmp_path, "-n", "--cores", "2", "--quiet", "rules", "--config", f"suite={suite}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout + proc.stderr)
    shards = 27 if s["eval_jobs"] == "task" else 3
    expected = {
        "calibrate": models * (1 + experiments),
        "search": models * (1 + experiments),
        "prune": runs,
        "perplexity": runs,
        "speed": models * len(s["speed_methods"]),
        "mask_compare": models if s.get("mask_compare") else 0,
        "collect": 1,
        "report": 1,
        "all": 1,
    }
    if suite == "demo":
        expected |= {"build_tiny": 1, "fixtures": 1}
    expected = {k: v for k, v in expected.items() if v}
    assert {k: v for k, v in counts.items() if not k.startswith("evaluate_") and k != "total"} == expected
    evals = {k: v for k, v in counts.items() if k.startswith("evaluate_")}
    assert len(evals) == shards and set(evals.values()) == {runs}
    assert counts["total"] == sum(expected.values()) + shards * runs


@pytest.mark.slow
@pytest.mark.parametrize(
    "config, message",
    [
        (["models=[tinyy]"], "Did you mean 'tiny'?"),
        (["tracking=sometimes"], "'sometimes' is not one of ['offline', 'online', 'disabled']"),
    ],
)
def test_snakemake_rejects_a_bad_config_before_any_job(tmp_path, config, message):
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--config", *config)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def smoke_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A working directory holding the (briefly trained) tiny model, so the smoke run does not rebuild it."""
    work = tmp_path_factory.mktemp("smoke")
    shutil.copytree(tiny_model_dir, work / "results/models/tiny")
    return work


QUICK = ["data.num_samples=4", "data.seq_len=32", "method.search.grid=[0.0,0.5,1.0]", "eval.perplexity.max_tokens=600"]
SMOKE = ["--cores", "2", "--config", "suite=smoke", f"overrides={json.dumps(QUICK)}"]


@pytest.mark.slow
def test_smoke_run_end_to_end_then_nothing_to_do(smoke_dir):
    proc = snakemake(smoke_dir, *SMOKE)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = smoke_dir / "results"
    for method in ("dense", "harp"):
        for task in ("winogrande", "nq_open"):
            record = json.loads((results / f"tiny/{method}/eval/{task}.json").read_text())
            assert record["fixture"] and record["tiny_model"] and 0 <= record["score"] <= 1
        assert (results / f"tiny/{method}/ppl.json").exists()
        assert (results / f"tiny/{method}/prune.config.yaml").exists()  # the resolved config beside the output
    assert sorted(json.loads((results / "tiny/harp/alphas.json").read_text())["alphas"]) == ["5", "6", "7"]
    assert (results / "report.md").stat().st_size > 0 and list((results / "tables").glob("*.tex"))
    runs = list((results / "wandb/wandb").glob("offline-run-*"))
    assert len(runs) == 11, runs  # fixtures, calibrate, search, 2 x (prune, evaluate, perplexity), collect, report

    again = snakemake(smoke_dir, *SMOKE, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_smoke_run_resumes_only_what_is_missing(smoke_dir):
    (smoke_dir / "results/tiny/harp/ppl.json").unlink()
    proc = snakemake(smoke_dir, *SMOKE, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts == {"perplexity": 1, "collect": 1, "report": 1, "all": 1, "total": 4}


@pytest.mark.slow
def test_ablation_writes_under_its_own_directory_and_leaves_the_main_run(smoke_dir):
    main = smoke_dir / "results/tiny/harp/plan.json"
    before = main.stat().st_mtime_ns
    proc = snakemake(smoke_dir, *SMOKE, "experiment=no_rescale")
    assert proc.returncode == 0, proc.stderr[-4000:]
    ablation = smoke_dir / "results/ablations/no_rescale/tiny/harp"
    assert json.loads((ablation / "alphas.json").read_text())["alphas"] == {"7": 1.0, "6": 1.0, "5": 1.0}
    assert len(list((ablation / "eval").glob("*.json"))) == 2
    assert main.stat().st_mtime_ns == before
    assert "no_rescale" in (smoke_dir / "results/all_results.csv").read_text()


@pytest.mark.slow
def test_slurm_profile_dry_run_asks_one_gpu_per_paper_model_job(tmp_path):
    proc = snakemake(
        tmp_path,
        "--workflow-profile",
        str(ROOT / "workflow/profiles/slurm"),
        "-n",
        "--default-resources",
        "slurm_account=acct",
        "slurm_partition=gpu",
        "--config",
        "suite=paper",
        "models=[qwen2_7b]",
        "methods=[dense,harp]",
        "experiments=[]",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    search = out[out.index("rule search:") :].split("\nrule ")[0].split("[")[0]  # that job's block alone
    assert "gpu=1" in search and "slurm_partition=gpu" in search and "mem_mb=64000" in search
