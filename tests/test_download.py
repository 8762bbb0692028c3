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
