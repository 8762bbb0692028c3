"""BIG-bench rows built from task.json the way the HF `bigbench` builder builds `hails/bigbench`, and lm-eval's own
task definitions reading them. Expected strings are written by hand from the builder's rule (harp.data.bigbench)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from harp.data import bigbench
from harp.errors import HarpError

# Hand-made task.json files under real lm-eval task names (write_task_yaml includes lm-eval's definition).
GENERAL = {  # default prefixes, choices appended
    "name": "general_knowledge",
    "examples": [
        {"input": "Which comes first?", "target_scores": {"gamma": 0, "alpha": 1, "delta": 0, "beta": 0}},
        {"input": "Which comes first?", "target_scores": {"gamma": 0, "alpha": 1, "delta": 0, "beta": 0}},  # dup
        {"input": "Pick one. ", "target_scores": {" yes ": 1.0, "no": 0.0, "maybe": 0.0}, "target": " yes "},
    ],
}
WINOWHY = {  # its own prefixes, choices not appended
    "name": "winowhy",
    "task_prefix": "Decide.\n",
    "example_input_prefix": "\nSentence: ",
    "example_output_prefix": "\nAnswer: ",
    "append_choices_to_input": False,
    "examples": [{"input": "The sky is green.", "target_scores": {"correct": 0, "incorrect": 1}}],
}
METAPHOR = {  # "false" as a string is truthy in the builder: choices are appended, with its choice_prefix
    "name": "metaphor_boolean",
    "choice_prefix": "\n- ",
    "append_choices_to_input": "false",
    "examples": [{"input": "Is it?", "target_scores": {"no": 0, "yes": 1}}],
}
# numpy RandomState(42).permutation of n sorted choices: n=2 -> [1, 0], n=3 -> [0, 1, 2], n=4 -> [1, 3, 0, 2]
EXPECTED_GENERAL = [
    {
        "idx": 0,
        "inputs": "Q: Which comes first?\n  choice: beta\n  choice: gamma\n  choice: alpha\n  choice: delta\nA:",
        "targets": ["alpha"],
        "multiple_choice_targets": ["gamma", "alpha", "delta", "beta"],
        "multiple_choice_scores": [0, 1, 0, 0],
    },
    {
        "idx": 1,
        "inputs": "Q: Pick one. \n  choice:  yes \n  choice: maybe\n  choice: no\nA:",
        "targets": ["yes"],
        "multiple_choice_targets": ["yes", "no", "maybe"],
        "multiple_choice_scores": [1, 0, 0],
    },
]


def _archive(tmp_path: Path, tasks: dict[str, dict], monkeypatch) -> Path:
    """A small archive laid out like BIG-bench's sdist, with its sha256 pinned in place of the real one."""
    path = tmp_path / "bigbench.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, task_json in tasks.items():
            data = json.dumps(task_json).encode()
            info = tarfile.TarInfo(bigbench.member_name(name))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(bigbench, "ARCHIVE_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    return path


def test_rows_follow_the_builders_rule():
    assert bigbench.hf_rows(GENERAL) == EXPECTED_GENERAL
    assert bigbench.hf_rows(WINOWHY) == [
        {
            "idx": 0,
            "inputs": "Decide.\n\nSentence: The sky is green.\nAnswer:",
            "targets": ["incorrect"],
            "multiple_choice_targets": ["correct", "incorrect"],
            "multiple_choice_scores": [0, 1],
        }
    ]
    assert bigbench.hf_rows(METAPHOR)[0]["inputs"] == "Q: Is it?\n- yes\n- no\nA:"


def test_refuses_what_the_hub_rows_cannot_hold():
    with pytest.raises(HarpError, match="split into subtasks"):
        bigbench.hf_rows({"name": "abstract_narrative_understanding"})
    with pytest.raises(HarpError, match="scores a choice 0.5"):
        bigbench.hf_rows({"name": "x", "examples": [{"input": "q", "target_scores": {"a": 1, "b": 0.5}}]})


def test_chance_is_uniform_guessing_over_the_scored_documents():
    rows = [{"multiple_choice_targets": list("abcd")}, {"multiple_choice_targets": []}]
    rows += [{"multiple_choice_targets": list("ab")}, {"multiple_choice_targets": list("abc")}]
    assert bigbench.chance(rows) == pytest.approx((1 / 4 + 1 / 2 + 1 / 3) / 3)  # the choiceless row is not scored
    assert bigbench.chance(rows, limit=2) == pytest.approx((1 / 4 + 1 / 2) / 2)
    with pytest.raises(HarpError, match="No multiple-choice documents"):
        bigbench.chance(rows[1:2])


def test_majority_is_always_giving_the_most_frequent_correct_answer():
    rows = [{"multiple_choice_targets": ["yes", "no"], "targets": [t]} for t in ("yes", "no", "yes", "yes")]
    assert bigbench.majority(rows) == 0.75
    assert bigbench.majority(rows, limit=2) == 0.5


def test_build_writes_rows_provenance_and_a_yaml_lm_eval_reads(tmp_path, monkeypatch):
    archive = _archive(tmp_path, {"general_knowledge": GENERAL, "winowhy": WINOWHY}, monkeypatch)
    out = tmp_path / "data"
    records = bigbench.build_tasks(["winowhy", "general_knowledge"], out, archive)
    assert bigbench.read_rows(out, "general_knowledge") == EXPECTED_GENERAL
    prov = json.loads((out / "general_knowledge.provenance.json").read_text())
    assert prov == records["general_knowledge"]
    assert (prov["rows"], prov["split"], prov["archive_sha256"]) == (2, "default", bigbench.ARCHIVE_SHA256)
    assert prov["chance"] == pytest.approx((1 / 4 + 1 / 3) / 2)

    from lm_eval.tasks import TaskManager

    assert not list(out.rglob("*.yaml"))  # the rows alone: no task definition is kept (or loaded) from results
    yamls = bigbench.write_task_yamls(out, ["general_knowledge", "winowhy"], tmp_path / "yamls")
    tm = TaskManager(include_defaults=False, include_path=str(yamls))
    name = "bigbench_general_knowledge_multiple_choice"
    task = tm.load([name])["tasks"][name]
    docs = list(task.test_docs())
    assert [task.doc_to_text(d) for d in docs] == [r["inputs"] for r in EXPECTED_GENERAL]
    assert [task.doc_to_choice(d) for d in docs] == [r["multiple_choice_targets"] for r in EXPECTED_GENERAL]
    assert [task.doc_to_target(d) for d in docs] == [1, 0]  # lm-eval's template a: index of targets[0]


def test_missing_archive_task_or_wrong_archive_is_one_sentence(tmp_path, monkeypatch):
    with pytest.raises(HarpError, match=r"absent\.tar\.gz is missing: fetch it with `make data`") as err:
        bigbench.archive_path(tmp_path / "absent.tar.gz")
    assert "\n" not in str(err.value)
    archive = _archive(tmp_path, {"general_knowledge": GENERAL}, monkeypatch)
    with pytest.raises(HarpError, match="has no JSON task winowhy") as err:
        bigbench.build_tasks(["general_knowledge", "winowhy"], tmp_path / "data", archive)
    assert not (tmp_path / "data" / "general_knowledge.jsonl").exists()  # nothing written before the check
    with pytest.raises(HarpError, match="lm-eval has no multiple-choice BIG-bench task no_such_task"):
        bigbench.build_tasks(["no_such_task"], tmp_path / "data", archive)
    monkeypatch.setattr(bigbench, "ARCHIVE_SHA256", "0" * 64)
    with pytest.raises(HarpError, match="not that of PyPI's bigbench==1.0.0"):
        bigbench.build_tasks(["general_knowledge"], tmp_path / "data", archive)


@pytest.mark.real_data
def test_the_demo_tasks_convert_from_the_real_archive(tmp_path):
    """The BIG-bench rows of the task table from PyPI's archive: at least 70 scored documents each (general_knowledge
    has 70), chance computed from the rows."""
    from harp.eval.tasks import SUITE

    if not bigbench.DEFAULT_ARCHIVE.is_file():
        pytest.skip(f"{bigbench.DEFAULT_ARCHIVE} is absent (make data fetches it)")
    folders = [t.bigbench for t in SUITE.values() if t.bigbench]
    records = bigbench.build_tasks(folders, tmp_path)
    for folder in folders:
        rows = bigbench.read_rows(tmp_path, folder)
        assert records[folder]["multiple_choice_rows"] >= 70 and records[folder]["chance"] == bigbench.chance(rows)
