"""harp.cli.download: what a suite reads from outside, listed before anything is fetched."""

from __future__ import annotations

import pytest

from harp.cli import download
from tests.helpers import ROOT


def test_dry_run_lists_the_paper_models_marks_the_gated_ones_and_the_datasets(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    download.main(["--dry-run", "--config", "suite=paper"])
    out = capsys.readouterr().out
    models = {line.split()[1]: line for line in out.splitlines() if line.startswith("model ")}
    assert set(models) == {"meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B-v0.3", "Qwen/Qwen2-7B", "google/gemma-2-9b"}
    assert [m for m, line in models.items() if "GATED" in line] == [
        "meta-llama/Llama-3.1-8B",
        "mistralai/Mistral-7B-v0.3",
        "google/gemma-2-9b",
    ]
    assert "16.1 GB at bfloat16" in models["meta-llama/Llama-3.1-8B"]  # 8.03B weights x 2 bytes
    assert "unzipped into data/longbench" in out  # where the fetch puts it, the LongBench stage's default
    for dataset in ("allenai/ai2_arc", "cais/mmlu", "openai/gsm8k", "THUDM/LongBench/data.zip", "wikitext"):
        assert dataset in out


def test_a_malformed_config_pair_is_one_sentence(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit) as exit_:
        download.main(["--dry-run", "--config", "suite"])
    assert exit_.value.code == 2 and "is not KEY=VALUE" in capsys.readouterr().err


def test_the_dry_run_estimates_gpu_hours_and_disk_per_model(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    download.main(["--dry-run", "--config", "suite=paper"])
    out = capsys.readouterr().out
    assert "GPU hours, estimated on one H100 SXM" in out and "not measured; how: harp/estimate.py" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()[:1] and "GB" in line}
    assert {"llama3_1_8b", "mistral_7b_v0_3", "qwen2_7b", "gemma2_9b", "total"} <= set(rows)
    assert rows["llama3_1_8b"][-1] == "16.1GB" and float(rows["llama3_1_8b"][-2]) > 1


def test_the_estimate_prices_a_task_by_its_tokens():
    """One dense model, one discriminative task: the evaluation is its documents x tokens read at 2 FLOPs per weight
    at the assumed share of peak; nothing else is evaluated."""
    from harp import estimate
    from harp.eval.tasks import suite_task

    wf = download.workflow_config(["suite=paper", "models=[qwen2_7b]", "methods=[dense]", "experiments=[]"])
    wf["overrides"] = ["eval.tasks=[boolq]"]
    p = download.Pipeline(wf, conf_dir=str(ROOT / "conf"))
    params = 7_000_000_000
    (e,) = estimate.estimate(p, {"qwen2_7b": (params, 2 * params)})
    work = suite_task("boolq").work
    assert e.evaluate_s == pytest.approx(2 * params * work.documents * work.read / (estimate.PEAK_FLOPS * estimate.MFU))
    assert e.jobs == 4  # calibrate (HARP's set, none used by dense), prune, perplexity, one evaluation
    assert e.disk_bytes == 2 * params
