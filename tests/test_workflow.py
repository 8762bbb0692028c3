"""The Snakemake pipeline: the plan behind the DAG, dry runs of the paper and demo suites, clear config
errors, and an end-to-end smoke run of the tiny model that a second invocation leaves alone."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
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
    return Pipeline(WF | {"suite": "tiny"} | config, conf_dir=ROOT / "conf")


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
    assert main == set(WF["suites"]["tiny"]["methods"])
    ablations = {e for (e, _, _) in p.variants if e != MAIN}
    assert ablations == set(WF["suites"]["tiny"]["experiments"])
    assert {m for (e, _, m) in p.variants if e != MAIN} == {"harp"}
    assert p.variant("results/ablations/no_rescale", "tiny", "harp").cfg.method.rescale is False
    assert p.variant("results", "tiny", "harp").cfg.method.rescale is True
    assert len(p.tasks) == 27 and sorted(sum(p.eval_shards().values(), [])) == sorted(p.tasks)
    assert set(p.eval_shards()) == {"generation", "discriminative", "longbench"}
    assert p.built_models() == {"tiny": "results/models/tiny"}


def test_a_baseline_needs_harp_only_for_a_match_harp_budget_and_reads_its_own_calibration_set():
    p = pipeline(methods=["flap"], experiments=[])  # the paper's budget (L/N of the attention) needs no HARP
    assert {m for (_, _, m) in p.variants} == {"flap"}
    assert p.prune_inputs("results", "tiny", "flap") == [
        "results/models/tiny",
        "results/tiny/calib/corpus-1024x128-seed0.pt",  # FLAP's set (WikiText-2 1024 x 128; tiny reads its corpus)
    ]
    p = pipeline(methods=["wanda_sp"], experiments=[], overrides=["budget.kind=match_harp"])
    assert {m for (_, _, m) in p.variants} == {"wanda_sp", "harp"}
    assert p.prune_inputs("results", "tiny", "wanda_sp")[1:] == [
        "results/tiny/calib/corpus-128x128-seed0.pt",
        "results/tiny/harp/plan.json",
    ]
    p = pipeline(methods=["harp_flap", "mag_sp"], experiments=[])
    assert {m for (_, _, m) in p.variants} == {"harp_flap", "harp", "mag_sp"}
    assert p.prune_inputs("results", "tiny", "harp") == ["results/models/tiny", "results/tiny/harp/alphas.json"]
    assert p.prune_inputs("results", "tiny", "mag_sp") == ["results/models/tiny"]  # weights only
    assert p.search_inputs("results", "tiny") == ["results/models/tiny", "results/tiny/calib/corpus-32x128-seed0.pt"]


def test_experiment_alone_runs_only_that_ablation_under_its_own_directory():
    p = pipeline(experiment="layers_2")
    assert set(p.variants) == {("layers_2", "tiny", "harp")}
    assert all(t.startswith("results/ablations/layers_2/tiny/") for t in p.targets())
    assert p.command("results/ablations/layers_2", "tiny").overrides[-1] == "experiment=layers_2"


def test_published_alphas_run_harp_and_harp_flap_with_the_authors_alphas():
    p = pipeline(suite="paper", models=["qwen2_7b"], experiment="published_alphas")
    assert set(p.variants) == {("published_alphas", "qwen2_7b", m) for m in ("harp", "harp_flap")}
    cfg = p.variant("results/ablations/published_alphas", "qwen2_7b", "harp").cfg
    assert cfg.fixed_alphas() == {27: 0.9, 26: 0.3, 25: 0.3, 24: 0.2}  # no search: conf/model/qwen2_7b.yaml's
    assert "published_alphas" in WF["suites"]["paper"]["experiments"]
    assert "published_alphas" not in WF["suites"]["tiny"]["experiments"]  # the tiny model has none


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
            "mistral_7b_v0_3, qwen2_7b, smollm2, tiny. Did you mean 'tiny'?",
        ),
        ({"methods": ["flapp"]}, "Unknown method 'flapp'"),
        ({"experiments": ["no_rescaling"]}, "Did you mean 'no_rescale'?"),
        ({"experiment": "layers_12"}, "Cannot prune 12 layers of a 8-layer model"),
        ({"experiment": "published_alphas"}, "Model tiny has no published alphas (conf/model/tiny.yaml)"),
        ({"suite": "papers"}, "Unknown suite 'papers'"),
        ({"models": []}, "selects nothing to run"),
        ({"overrides": ["eval.tasks=[nq_opn]"]}, "Unknown evaluation task 'nq_opn'"),
        ({"overrides": ["eval.select=[winogrand]"]}, "eval.select names winogrand"),
        ({"overrides": ["method.num_layer=3"]}, "num_layer"),
        ({"overrides": ["eval.limit=-5"]}, "eval.limit is -5; it must be at least 1"),
        ({"method_overrides": {"harp": ["method.alphas=[0.5,1.5,0.2]"]}}, "method.alphas holds 1.5"),
        ({"overrides": ["method.search.grid=[0.5]"]}, "Method dense has no setting method.search"),
        ({"method_overrides": {"mag_sp": ["method.search.grid=[0.5]"]}}, "Method mag_sp has no setting"),
        ({"method_overrides": {"harpp": []}}, "Unknown method 'harpp'"),
        ({"overrides": ["budget.kind=half"]}, "budget.kind is 'half'; choose one of attention_fraction, ratio"),
        ({"overrides": ["budget.kind=ratio", "budget.value=1.5"]}, "budget.value (a ratio of the decoder linear"),
        ({"methods": ["wanda_sp"], "overrides": ["method.allocation=even"]}, "method.allocation is 'even'"),
    ],
)
def test_bad_workflow_config_is_one_sentence(config, message):
    with pytest.raises(HarpError, match=re.escape(message)):
        pipeline(**config)


# --- snakemake itself -----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("suite", ["paper", "tiny"])
def test_dry_run_lists_every_job_without_weights(tmp_path, suite):
    s = WF["suites"][suite]
    models, methods, experiments = len(s["models"]), len(s["methods"]), len(s["experiments"])
    # each ablation reruns HARP alone, unless experiment_methods gives it its own methods
    runs = models * (methods + sum(len(WF["experiment_methods"].get(e, ["harp"])) for e in s["experiments"]))
    proc = snakemake(tmp_path, "-n", "--cores", "2", "--quiet", "rules", "--config", f"suite={suite}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout + proc.stderr)
    shards = 27 if s["eval_jobs"] == "task" else 3
    expected = {
        # main: the search's set, Wanda-sp's, FLAP's and the mask methods'; one per searched ablation (no_rescale
        # searches nothing),
        # and the published-alphas run's harp_flap reads FLAP's set
        "calibrate": {"tiny": 9, "paper": 44}[suite],
        "search": models * (1 + experiments),
        "diagnose": models * 2,  # the main run's (Figure 0) and similarity_layers' (its layers)
        "prune": runs,
        "perplexity": runs,
        "speed": models * len(s["speed_methods"]),
        "mask_compare": models if s.get("mask_compare") else 0,
        "export": models * len(s.get("export_methods", [])),
        "collect": 1,
        "report": 1,
        "all": 1,
    }
    if suite == "tiny":
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
        (
            ["tracking=sometimes"],
            "config's tracking is invalid: 'sometimes' is not one of ['offline', 'online', 'disabled']",
        ),
        (["suitee=paper"], "Unknown workflow config key 'suitee'; known: suite, models"),
        (['overrides=["eval.select=[winogrand]"]'], "eval.select names winogrand, not among the configured"),
        (["results_dir=results.csv"], "results_dir results.csv is a file; point results_dir at a folder."),
        (["results_dir=results.csv/below"], "results_dir results.csv/below cannot be created (results.csv is a file)"),
    ],
)
def test_snakemake_rejects_a_bad_config_before_any_job(tmp_path, config, message):
    (tmp_path / "results.csv").write_text("a finished table\n")
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--config", *config)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
    assert (tmp_path / "results.csv").read_text() == "a finished table\n"
    err = proc.stderr.strip()  # one sentence (`error: ...`), not Snakemake's report (the schema: 144 lines)
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, proc.stderr


@pytest.fixture(scope="module")
def smoke_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A working directory holding the (briefly trained) tiny model, so the smoke run does not rebuild it; its
    path has a space, which every job's command must quote."""
    work = tmp_path_factory.mktemp("smoke") / "with space"
    shutil.copytree(tiny_model_dir, work / "results/models/tiny")
    return work


@pytest.fixture
def smoke_run(smoke_dir) -> Path:
    """The smoke pipeline complete in `smoke_dir` (a no-op once it is), whatever test ran before."""
    proc = snakemake(smoke_dir, *SMOKE)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return smoke_dir


QUICK = ["data.num_samples=4", "data.seq_len=32", "eval.perplexity.max_tokens=600"]
GRID = "method_overrides=" + json.dumps({"harp": ["method.search.grid=[0.0,0.5,1.0]"]})
SMOKE = ["--cores", "2", "--config", "suite=smoke", f"overrides={json.dumps(QUICK)}", GRID]


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
    assert len(runs) == 12, runs  # fixtures, calibrate, diagnose, search, 2 x (prune, evaluate, perplexity), collect,
    # report
    assert len((results / "tiny/diagnostics.csv").read_text().splitlines()) == 1 + 8  # Figure 0's, one row per layer
    assert (results / "figures/fig0_layers.png").exists()
    assert "(pipeline check, not paper numbers)" in proc.stdout + proc.stderr  # the results table, printed at the end

    html = smoke_dir / "report.html"  # Snakemake's own report holds the tables and figures
    made = snakemake(smoke_dir, *SMOKE, "--report", str(html))
    assert made.returncode == 0, made.stderr[-4000:]
    assert html.stat().st_size > 0  # a zip when large, html otherwise: either names the figure
    assert b"fig0_layers" in html.read_bytes()

    again = snakemake(smoke_dir, *SMOKE, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_smoke_run_resumes_only_what_is_missing(smoke_run):
    (smoke_run / "results/tiny/harp/ppl.json").unlink()
    proc = snakemake(smoke_run, *SMOKE, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts == {"perplexity": 1, "collect": 1, "report": 1, "all": 1, "total": 4}


@pytest.mark.slow
def test_an_override_reruns_only_the_stages_that_consume_it(smoke_run):
    limited = ["--cores", "2", "--config", "suite=smoke", f"overrides={json.dumps([*QUICK, 'eval.limit=50'])}", GRID]
    proc = snakemake(smoke_run, *limited, "-n", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert job_counts(proc.stdout + proc.stderr) == {"evaluate_all": 2, "collect": 1, "report": 1, "all": 1, "total": 5}
    untracked = snakemake(smoke_run, *SMOKE, "tracking=disabled", "-n")
    assert "Nothing to be done" in untracked.stdout + untracked.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_a_killed_run_resumes_by_running_the_same_command_again(smoke_run, sig):
    """Killed while evaluating (Ctrl-C, or SIGKILL to the whole process group); `make demo`'s two steps (release
    a dead run's lock, run snakemake) finish the work."""
    shutil.rmtree(smoke_run / "results/tiny/dense/eval")
    log = smoke_run / "results/tiny/dense/logs/evaluate_all.log"
    log.unlink(missing_ok=True)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(smoke_run), *SMOKE]
    run = subprocess.Popen(
        cmd,
        cwd=smoke_run,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell ignores SIGINT
    )
    deadline = time.time() + 300
    while not log.exists() and time.time() < deadline and run.poll() is None:
        time.sleep(0.5)
    assert log.exists(), "the evaluation job never started"
    os.killpg(run.pid, sig)
    run.wait(timeout=120)
    unlock = subprocess.run(
        [sys.executable, "-m", "harp.cli.unlock", str(smoke_run)], env=env, capture_output=True, text=True
    )
    assert unlock.returncode == 0, unlock.stderr
    assert ("releasing the lock" in unlock.stdout) == (sig == signal.SIGKILL)
    proc = snakemake(smoke_run, *SMOKE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p.name for p in (smoke_run / "results/tiny/dense/eval").glob("*.json")} == {
        "winogrande.json",
        "nq_open.json",
    }


@pytest.mark.slow
def test_ablation_writes_under_its_own_directory_and_leaves_the_main_run(smoke_run):
    main = smoke_run / "results/tiny/harp/plan.json"
    before = main.stat().st_mtime_ns
    proc = snakemake(smoke_run, *SMOKE, "experiment=no_rescale")
    assert proc.returncode == 0, proc.stderr[-4000:]
    ablation = smoke_run / "results/ablations/no_rescale/tiny/harp"
    assert json.loads((ablation / "alphas.json").read_text())["alphas"] == {"7": 1.0, "6": 1.0, "5": 1.0}
    assert len(list((ablation / "eval").glob("*.json"))) == 2
    assert main.stat().st_mtime_ns == before
    assert "no_rescale" in (smoke_run / "results/all_results.csv").read_text()


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


def test_method_overrides_change_that_method_alone():
    """HARP's grid for a whole run: HARP's search and prune settings change, no other method's job reruns."""
    base, narrowed = pipeline(), pipeline(method_overrides={"harp": ["method.search.grid=[0.0,0.5,1.0]"]})
    expdir = base.experiment_dir(MAIN)
    assert narrowed.variant(expdir, "tiny", "harp").cfg.method.search.grid == [0.0, 0.5, 1.0]
    assert base.settings("search", expdir, "tiny") != narrowed.settings("search", expdir, "tiny")
    for method in base.methods:
        if method != "harp":
            for stage in ("prune", "evaluate", "perplexity"):
                assert base.settings(stage, expdir, "tiny", method) == narrowed.settings(stage, expdir, "tiny", method)


def test_a_suite_can_set_overrides_and_measure_ablations_by_perplexity_alone():
    """The demo's shape: suite-level overrides reach every job (the run's own --config overrides win), and with
    ablation_eval false an ablation asks for its plan and perplexity, no task scores."""
    suite = WF["suites"]["tiny"] | {"overrides": ["data.num_samples=8"], "ablation_eval": False}
    p = Pipeline(WF | {"suite": "mine", "suites": {"mine": suite}, "overrides": ["eval.limit=3"]}, ROOT / "conf")
    cfg = p.variant(p.experiment_dir(MAIN), "tiny", "harp").cfg
    assert cfg.data.num_samples == 8 and cfg.eval.limit == 3
    ablation = str(p.variant(p.experiment_dir("no_rescale"), "tiny", "harp").cfg.method_dir)
    main = str(p.variant(p.experiment_dir(MAIN), "tiny", "harp").cfg.method_dir)
    assert any(t.startswith(ablation) and t.endswith("ppl.json") for t in p.targets())
    assert not any(t.startswith(ablation + "/eval/") for t in p.targets())
    assert any(t.startswith(main + "/eval/") for t in p.targets())
