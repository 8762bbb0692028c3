"""The evaluation stage: fixtures for all 27 tasks, every task through lm-eval, HARP plans, labels and errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harp.errors import HarpError
from harp.eval.tasks import with_fixtures
from tests.helpers import save_recorded_plan

SUITE = {t.name: t for t in with_fixtures()}  # the tasks with offline fixtures (BIG-bench rows are real data)

REPO = Path(__file__).resolve().parents[1]
CONTRACT = {
    "model",
    "method",
    "task",
    "category",
    "metrics",
    "stderr",
    "chance",
    "primary_metric",
    "score",
    "n_samples",
    "num_fewshot",
    "limit",
    "fixture",
    "tiny_model",
    "plan_hash",
    "seeds",
    "versions",
    "task_versions",
    "alternative_metric",
    "experiment",
}


@pytest.fixture(scope="module")
def fixtures_root(tmp_path_factory) -> Path:
    from harp.eval.fixtures import write_fixtures

    root = tmp_path_factory.mktemp("fixtures")
    assert write_fixtures(root) == sorted(SUITE)
    return root


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from harp.models.loading import load_model

    return load_model(str(tiny_model_dir), dtype="float32", device="cpu")


def test_fixtures_feed_every_task_definition(fixtures_root, tmp_path):
    """Every fixture task loads through its lm-eval definition and renders prompt, target and choices."""
    from harp.eval.lm_eval_driver import task_manager

    groups = {name: row for name, row in SUITE.items() if row.is_group}
    loaded = task_manager(list(SUITE), fixtures_root, None, tmp_path).load(list(SUITE))
    assert set(groups) <= set(loaded["groups"])
    assert len(loaded["tasks"]) == len(SUITE) - len(groups) + sum(len(r.subtasks) for r in groups.values())
    for name, task in loaded["tasks"].items():
        assert task.config.dataset_path == "json", name
        docs = list(task.eval_docs)
        assert len(docs) >= 8, name
        for doc in docs:
            assert task.doc_to_text(doc) not in (None, ""), name
            assert task.doc_to_target(doc) not in (None, "", []), name
            if task.config.output_type == "multiple_choice":
                choices = task.doc_to_choice(doc)
                assert len(choices) >= 2 and len(set(map(str, choices))) == len(choices), name


def test_a_moved_fixtures_folder_is_read_where_it_lies(fixtures_root, tmp_path):
    """The folder holds data alone; the task YAMLs are written at evaluation time and name the data where it is
    now, so a copied results folder evaluates its own data (and nothing in it is loaded as a task definition)."""
    from harp.eval.fixtures import fixture_task_yamls

    assert not list(fixtures_root.rglob("*.yaml"))
    moved = shutil.copytree(fixtures_root, tmp_path / "moved")
    yamls = fixture_task_yamls(moved, ["boolq", "mmlu"], tmp_path / "yamls")
    files = [
        f
        for y in yamls.glob("*.yaml")
        for f in yaml.safe_load(y.read_text()).get("dataset_kwargs", {}).get("data_files", {}).values()
    ]
    assert files and all(f.startswith(str(moved.resolve())) for f in files)
    (moved / "data" / "boolq" / "validation.jsonl").unlink()
    with pytest.raises(HarpError, match="No offline fixtures for boolq"):
        fixture_task_yamls(moved, ["boolq"], tmp_path / "again")


def test_fixtures_are_deterministic(fixtures_root, tmp_path):
    from harp.eval.fixtures import write_fixtures

    write_fixtures(tmp_path)
    for f in (fixtures_root / "data").rglob("*.jsonl"):
        assert f.read_text() == (tmp_path / f.relative_to(fixtures_root)).read_text(), f


def test_all_27_tasks_score_in_range(tiny, fixtures_root):
    """The expensive one: the whole suite through lm-eval on the tiny model, from fixtures."""
    from harp.eval.lm_eval_driver import evaluate_tasks

    model, tokenizer = tiny
    tasks = {name: (0 if name.startswith("longbench") else 2) for name in SUITE}
    results = dict(
        evaluate_tasks(
            model,
            tokenizer,
            tasks,
            window=256,
            longbench_window=256,
            batch_size="32",
            fixtures_root=fixtures_root,
            max_gen_toks=16,
        )
    )
    assert set(results) == set(SUITE)
    for name, r in results.items():
        assert r["n_samples"] >= 8 and r["score"] == r["metrics"][r["primary_metric"]], name  # the row's metric
        if SUITE[name].category != "longbench":  # a share of documents right: k of n
            assert abs(r["score"] * r["n_samples"] - round(r["score"] * r["n_samples"])) < 1e-6, (name, r)
    assert results["winogrande"]["num_fewshot"] == 2 and results["longbench_trec"]["num_fewshot"] == 0
    assert results["longbench_samsum"]["task_versions"] == {"longbench_samsum": 1.0}  # our definition, not lm-eval's
    assert 0 <= results["gsm8k"]["alternative_score"] <= 1 and results["piqa"]["alternative_metric"] == "acc,none"
    # uniform guessing: two solutions, four lettered choices, an open answer
    assert (results["piqa"]["chance"], results["arc_challenge"]["chance"], results["nq_open"]["chance"]) == (
        0.5,
        0.25,
        0,
    )
    # lm-eval's per-document log for the generation tasks (why a generation scores 0), none for the others
    for name, r in results.items():
        generates = SUITE[name].category in ("generation", "longbench")
        assert (r["samples"] is not None) == generates, name
    gsm8k = results["gsm8k"]["samples"]
    assert len({(row["doc_id"], row["filter"]) for row in gsm8k}) == len(gsm8k) > results["gsm8k"]["n_samples"]
    assert {row["doc_id"] for row in gsm8k} == set(range(results["gsm8k"]["n_samples"]))  # each document, each filter
    assert gsm8k[0]["prompt"] and "exact_match" in gsm8k[0] and gsm8k[0]["filtered"] is not None


def test_middle_truncation_keeps_both_ends(tiny):
    from harp.eval.longbench import truncate_middle

    _, tokenizer = tiny
    text = "BEGIN " + " ".join(f"w{i}" for i in range(400)) + " END"
    cut = truncate_middle(tokenizer, text, 32)
    assert cut.startswith("BEGIN") and cut.endswith("END") and len(tokenizer(cut)["input_ids"]) <= 34
    assert truncate_middle(tokenizer, "short text", 32) == "short text"


def _stage(module: str, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run(
        [sys.executable, "-m", module, *overrides, "tracking=disabled", "progress=false"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_harp_plan_evaluates_and_writes_contract(tiny_model_dir, tmp_path):
    """A HARP plan (layers 6, 7) through the evaluate stage: one labelled JSON per task."""
    from harp.models.loading import load_model
    from harp.pruning.harp import apply_harp
    from harp.pruning.params import decoder_linear_params
    from harp.pruning.plan import build_plan

    run = tmp_path / "results"
    model, _ = load_model(str(tiny_model_dir), dtype="float32", device="cpu")
    before = decoder_linear_params(model)
    alphas = {6: 0.5, 7: 0.3}
    apply_harp(model, alphas)
    common = [f"results_dir={run}", f"model.source={tiny_model_dir}", "method=harp", "eval=smoke"]
    save_recorded_plan(build_plan("harp", "tiny", model, before, [6, 7], alphas), run / "tiny" / "harp", *common)
    _stage("harp.cli.fixtures", *common)
    _stage("harp.cli.evaluate", *common)
    for task in ("winogrande", "nq_open"):
        data = json.loads((run / "tiny" / "harp" / "eval" / f"{task}.json").read_text())
        assert set(data) >= CONTRACT, CONTRACT - set(data)
        assert data["fixture"] is True and data["tiny_model"] is True and data["limit"] is None
        assert data["method"] == "harp" and data["num_fewshot"] == 5 and 0 <= data["score"] <= 1
        assert len(data["plan_hash"]) == 16 and data["versions"]["lm_eval"]
        assert data["seeds"]["fewshot_random_seed"] == 1234 and data["task_versions"][task] is not None
    assert (run / "tiny" / "harp" / "eval" / "evaluate_all.config.yaml").exists()  # smoke: two categories


def test_missing_real_dataset_offline_is_one_sentence(tiny, fixtures_root, tmp_path):
    from harp.eval.lm_eval_driver import evaluate_tasks

    model, tokenizer = tiny
    with pytest.raises(HarpError, match="real dataset of task piqa"):
        next(evaluate_tasks(model, tokenizer, {"piqa": 0}, window=256, longbench_window=256))
    with pytest.raises(HarpError, match="LongBench's data files trec.jsonl are not in"):
        next(
            evaluate_tasks(
                model, tokenizer, {"longbench_trec": 0}, window=256, longbench_window=256, longbench_data=tmp_path
            )
        )
    with pytest.raises(HarpError, match="No offline fixtures"):
        next(evaluate_tasks(model, tokenizer, {"piqa": 0}, window=256, longbench_window=256, fixtures_root=tmp_path))
    with pytest.raises(HarpError, match="Unknown evaluation task"):
        from harp.eval.tasks import selected

        selected({"hellaswag": 0}, None)
