"""Bad input never costs a finished result: every case below is one sentence, a non-zero exit, no traceback,
and every file of a finished run byte-identical afterwards.

A small finished run of the tiny model (calibration, search, HARP/dense/FLAP plans, perplexity, two
evaluated tasks, collect, report) is built once; each case then runs a stage in this process, as
`python -m harp.cli.<stage>` would, against it (damaged files are restored after their case).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import harp
from harp.errors import HarpError
from harp.models.adapters import decoder_layers
from tests.helpers import ROOT, random_model

QUICK = (
    "data.num_samples=4",
    "data.seq_len=32",
    "eval=smoke",
    "eval.perplexity.max_tokens=600",
    "tracking=disabled",
    "progress=false",
)
GRID = "method.search.grid=[0.0,0.5,1.0]"  # HARP's quick grid, for the runs of HARP's settings
FLAP_SET = ("method=flap", "method.calibration.num_samples=8", "method.calibration.seq_len=32")


def stage(name: str, results: Path, *overrides: str) -> int:
    """Run a stage's entry point in this process; its exit code (0 when it returns)."""
    module = importlib.import_module(f"harp.cli.{name}")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        grid = () if any(o.startswith("method=") for o in overrides) else (GRID,)
        mp.setattr(sys, "argv", [name, f"results_dir={results}", *QUICK, *grid, *overrides])
        try:
            module.main()
        except SystemExit as exit_:
            return exit_.code or 0
    return 0


def snapshot(results: Path) -> dict[str, str]:
    """Content hash of every finished output (logs, locks, wandb and caches aside)."""
    skip = {"wandb", "logs", ".locks", ".cache"}
    return {
        str(p.relative_to(results)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(results.rglob("*"))
        if p.is_file() and not skip & set(p.relative_to(results).parts)
    }


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    results = tmp_path_factory.mktemp("finished") / "results"
    shutil.copytree(tiny_model_dir, results / "models" / "tiny")
    for name, extra in [
        ("fixtures", ()),
        ("calibrate", ()),
        ("calibrate", FLAP_SET),
        ("search", ()),
        ("prune", ()),
        ("prune", ("method=dense",)),
        ("prune", FLAP_SET),
        ("perplexity", ()),
        ("evaluate", ()),
        ("collect", ()),
        ("report", ()),
    ]:
        assert stage(name, results, *extra) == 0, (name, extra)
    return results, snapshot(results)


def fails(capsys, code: int, message: str, finished, name: str, *overrides: str) -> None:
    """`name` with `overrides` exits with `code` and one line holding `message`, and loses nothing."""
    results, before = finished
    capsys.readouterr()
    assert stage(name, results, *overrides) == code
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err, err
    if code == 2:
        assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert snapshot(results) == before


# --- values: refused where the config is composed, before any work ----------------------------------------
@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("evaluate", ["eval.limit=-5"], "eval.limit is -5; it must be at least 1"),
        ("evaluate", ["eval.limit=0"], "eval.limit is 0"),
        ("evaluate", ["eval.batch_size=abc"], "eval.batch_size is 'abc'"),
        ("evaluate", ["eval.select=[]"], "eval.select is empty"),
        ("calibrate", ["data.num_samples=0"], "data.num_samples is 0"),
        ("perplexity", ["eval.perplexity.stride=0"], "eval.perplexity.stride is 0"),
        ("perplexity", ["eval.perplexity.window=1"], "eval.perplexity.window is 1"),
        ("perplexity", ["eval.perplexity.max_tokens=1"], "eval.perplexity.max_tokens is 1"),
        ("search", ["method.alphas=[nan,0.5,0.2]"], "method.alphas holds nan; it must lie in [0.0, 1.0]"),
        ("search", ["method.alphas=[1.5,0.5,0.2]"], "method.alphas holds 1.5"),
        ("search", ["method.num_layers=9"], "Cannot prune 9 layers of a 8-layer model"),
        ("search", ["method.num_layers=0"], "Cannot prune 0 layers"),
        ("search", ["method.layer_position=side"], "method.layer_position is 'side'"),
        ("prune", ["budget.kind=half"], "budget.kind is 'half'"),
        ("prune", ["method=wanda_sp", "method.allocation=even"], "method.allocation is 'even'"),
        ("prune", ["method=flap", "method.counts=exact"], "method.counts is 'exact'"),
        ("prune", ["method=flap", "method.statistics=variance"], "method.statistics is 'variance'"),
        ("speed", ["speed.repeats=0"], "speed.repeats is 0"),
        ("prune", ["device=gpu"], "device=gpu is not a device; use auto, cpu, cuda or cuda:<index>"),
        ("calibrate", ["data.source=wikitxt2"], "data.source is 'wikitxt2'; choose one of wikitext2, c4, corpus"),
        ("perplexity", ["eval.perplexity.source=c5"], "eval.perplexity.source is 'c5'"),
        ("speed", ["speed.device=tpu"], "speed.device=tpu is not a device"),
        ("prune", ["method.alphas=[0.5]"], "1 method.alphas were given for 3 pruned layers"),
    ],
)
def test_bad_values_are_one_sentence(capsys, finished, name, overrides, message):
    fails(capsys, 2, message, finished, name, *overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["experiment=no_rescal"], "Unknown experiment 'no_rescal' (conf/experiment/); known: bottom_layers"),
        (["experiment=no_rescal"], "Did you mean 'no_rescale'?"),
        (["model=llama9"], "Unknown model 'llama9' (conf/model/)"),
        (["method.num_layer=3"], "Method harp has no setting method.num_layer; its settings are name, num_layers"),
        (["method=mag_sp", "method.search.grid=[0.5]"], "Method mag_sp has no setting method.search; its settings"),
        (["method=mag_sp", "+method.search.grid=[0.5]"], "Method mag_sp has no setting method.search; its settings"),
        (["+method.foo=1"], "Method harp has no setting method.foo"),
        (["method.num_layers=[1"], "The override method.num_layers=[1 is malformed"),
    ],
)
def test_unknown_names_fail_and_write_nothing(capsys, finished, overrides, message):
    fails(capsys, 2, message, finished, "search", *overrides)


def test_results_dir_must_be_a_writable_folder(capsys, finished, tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("")
    for path, message in ((afile, "is a file"), (afile / "below", "cannot be created")):
        capsys.readouterr()
        assert stage("calibrate", finished[0], f"results_dir={path}") == 2
        assert message in capsys.readouterr().err


def test_online_tracking_without_credentials_says_how_to_log_in(capsys, finished, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    fails(capsys, 2, "tracking=online needs a wandb login: run `wandb login`", finished, "collect", "tracking=online")


# --- damaged artifacts: one reader per record names the file and the fix ------------------------------------
@contextlib.contextmanager
def damaged(path: Path, content: bytes | None):
    """`path` replaced by `content` (deleted when None) for the block, then restored byte for byte."""
    original = path.read_bytes()
    path.unlink()
    if content is not None:
        path.write_bytes(content)
    try:
        yield
    finally:
        path.write_bytes(original)


def nan_tail(path: Path) -> bytes:
    """The safetensors file with its last float32 value set to NaN (header intact)."""
    data = bytearray(path.read_bytes())
    data[-4:] = b"\xff\xff\xff\x7f"
    return bytes(data)


CASES = [  # (file relative to results, its damaged content, stage, overrides, message)
    ("tiny/harp/plan.json", b"\xff\xfe\x00binary", "perplexity", [], "is not UTF-8 text"),
    ("tiny/harp/alphas.json", b"null", "prune", [], "holds NoneType, not a JSON object"),
    ("tiny/harp/alphas.json", b'{"layers": [5, 6, 7]}', "prune", [], "lacks the key 'alphas'"),
    ("tiny/harp/alphas.json", b'{"alphas": {"7": "high"}}', "prune", [], "the alpha of layer '7' is 'high'"),
    ("tiny/harp/alphas.json", b'{"alphas": {"7": 1.5}}', "prune", [], "outside [0, 1]"),
    ("tiny/flap/plan.safetensors", b"garbage", "perplexity", FLAP_SET[:1], "plan.safetensors is damaged"),
    ("tiny/flap/plan.safetensors", None, "perplexity", FLAP_SET[:1], "is missing"),
    ("tiny/harp/eval/winogrande.json", b"null", "collect", [], "holds NoneType"),
    ("tiny/harp/eval/winogrande.json", b"\x80\x81", "collect", [], "is not UTF-8 text"),
    ("tiny/harp/ppl.json", b'{"perplexity": "low"}', "collect", [], "perplexity is 'low', not int or a number"),
    ("all_results.csv", b"", "report", [], "is not the table the collect stage writes"),
    ("all_results.csv", b"\x00\x01\x02\xff", "report", [], "is not UTF-8 text"),
    ("tiny/calib/corpus-4x32-seed0.pt", b"not a tensor", "search", ["method.search.grid=[0.0,1.0]"], "is unreadable"),
]


@pytest.mark.parametrize("rel, content, name, overrides, message", CASES)
def test_damaged_files_are_one_sentence(capsys, finished, rel, content, name, overrides, message):
    with damaged(finished[0] / rel, content):
        fails(capsys, 2, message, (finished[0], snapshot(finished[0])), name, *overrides)
    assert snapshot(finished[0]) == finished[1]


def test_flipped_bytes_in_plan_tensors_are_refused_not_turned_into_nan(capsys, finished):
    path = finished[0] / "tiny/flap/plan.safetensors"
    with damaged(path, nan_tail(path)):
        fails(
            capsys, 2, "holds NaN or infinite values", (finished[0], snapshot(finished[0])), "perplexity", *FLAP_SET[:1]
        )


def test_a_plan_whose_layers_lie_outside_the_model_is_refused(capsys, finished):
    path = finished[0] / "tiny/harp/plan.json"
    record = json.loads(path.read_text())
    with damaged(path, json.dumps(record | {"layers": [5, 6, 99]}).encode()):
        message = "prunes layer 99, outside this 8-layer model"
        fails(capsys, 2, message, (finished[0], snapshot(finished[0])), "perplexity")


def test_eval_results_with_a_string_score_are_refused(capsys, finished):
    path = finished[0] / "tiny/harp/eval/winogrande.json"
    record = json.loads(path.read_text()) | {"score": "high"}
    with damaged(path, json.dumps(record).encode()):
        fails(capsys, 2, "score is 'high', not int or a number", (finished[0], snapshot(finished[0])), "collect")


# --- provenance: each intermediate artifact is checked against what this run would make it from ---------------
CALIB = "tiny/calib/corpus-4x32-seed0.pt"


@pytest.mark.parametrize(
    "ids, message",
    [  # another shape than the config asks for; the right shape, but not what the calibrate stage wrote
        (torch.zeros(2, 32, dtype=torch.long), "holds 2 x 32 token ids but this run asks for 4 x 32"),
        (
            torch.ones(4, 32, dtype=torch.long),
            "changed after the calibrate stage wrote it (its record differs); rebuild it with this run's settings",
        ),
    ],
)
def test_a_calibration_set_other_than_the_one_written_is_refused_by_search(capsys, finished, ids, message):
    other = io.BytesIO()
    torch.save({"input_ids": ids, "source": "corpus", "seed": 0}, other)
    with damaged(finished[0] / CALIB, other.getvalue()):
        fails(capsys, 2, message, (finished[0], snapshot(finished[0])), "search")


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        (
            "perplexity",
            ["method.num_layers=2"],
            "plan.json was made with method.num_layers=3 but this run asks for method.num_layers=2",
        ),
        ("evaluate", ["method.search.order=bottom_up"], "was made with method.search.order=top_down but this run"),
        ("prune", ["method.search.grid=[0.0,1.0]"], "alphas.json was made with method.search.grid=[0.0, 0.5, 1.0]"),
        ("speed", FLAP_SET[:1] + ("method.calibration.num_samples=16",), "method.calibration.num_samples=8 but"),
    ],
)
def test_an_artifact_made_with_other_settings_is_refused(capsys, finished, name, overrides, message):
    fails(capsys, 2, message, finished, name, *overrides)


def test_a_plan_whose_alphas_changed_since_is_refused(capsys, finished):
    """A search rerun with other settings rewrites the alphas and their record: the plan made from the old ones
    is stale, and perplexity says which prune to rerun."""
    from harp import provenance

    path, record_path = finished[0] / "tiny/harp/alphas.json", finished[0] / "tiny/harp/alphas.provenance.json"
    alphas = json.loads(path.read_text())
    alphas["alphas"] = dict.fromkeys(alphas["alphas"], 0.25)
    record = json.loads(record_path.read_text())
    new = json.dumps(alphas).encode()
    with damaged(path, new):
        record["sha256"] = provenance.content_hash([path])
        with damaged(record_path, json.dumps(record).encode()):
            message = "alphas.json, which changed since; rebuild it with this run's settings: `python -m harp.cli.prune"
            fails(capsys, 2, message, (finished[0], snapshot(finished[0])), "perplexity")


def test_an_artifact_without_its_record_is_refused(capsys, finished):
    with damaged(finished[0] / "tiny/harp/plan.provenance.json", None):
        fails(capsys, 2, "plan.json has no provenance record", (finished[0], snapshot(finished[0])), "perplexity")


def test_a_moved_results_folder_reads_its_own_artifacts(finished, tmp_path):
    """Provenance names upstream artifacts relative to each record: a copy checks (and uses) its own files."""
    moved = shutil.copytree(finished[0], tmp_path / "moved")
    assert stage("perplexity", moved) == 0
    (moved / "tiny/harp/alphas.json").write_text((moved / "tiny/harp/alphas.json").read_text() + " ")
    assert stage("perplexity", moved) == 2  # the copy's alphas changed
    assert snapshot(finished[0]) == finished[1]


def test_a_score_of_an_earlier_plan_is_refused_by_collect(capsys, finished):
    path = finished[0] / "tiny/harp/ppl.json"
    record = json.loads(path.read_text()) | {"plan_hash": "0" * 16}
    with damaged(path, json.dumps(record).encode()):
        message = "was measured on an earlier plan (0000000000000000; the plan there is now"
        fails(capsys, 2, message, (finished[0], snapshot(finished[0])), "collect")


def test_sequences_beyond_the_context_are_refused(capsys, finished):
    fails(
        capsys,
        2,
        "data.seq_len=4096 is longer than the context of tiny (2048 tokens)",
        finished,
        "calibrate",
        "data.seq_len=4096",
    )


@pytest.mark.parametrize("cut", ["header", "mid-row"])
def test_a_truncated_results_table_leaves_the_report_as_it_was(capsys, finished, cut):
    path = finished[0] / "all_results.csv"
    text = path.read_bytes()
    content = text.split(b"\n")[0] + b"\n" if cut == "header" else text[: len(text) * 2 // 3]
    message = "holds no rows, only its header" if cut == "header" else "is truncated"
    with damaged(path, content):
        fails(capsys, 2, message, (finished[0], snapshot(finished[0])), "report")


def test_a_results_table_with_a_word_for_a_score_is_one_sentence(capsys, finished):
    path = finished[0] / "all_results.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    rows[1][rows[0].index("score")] = "high"
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    with damaged(path, text.getvalue().encode()):
        fails(capsys, 2, "the score column holds 'high', not a number", (finished[0], snapshot(finished[0])), "report")


def test_a_results_table_older_than_the_results_on_disk_is_refused(capsys, finished):
    extra = finished[0] / "tiny/harp/eval/boolq.json"  # a result the table does not list yet
    shutil.copy(finished[0] / "tiny/harp/eval/winogrande.json", extra)
    try:
        fails(capsys, 2, "does not match the results under", (finished[0], snapshot(finished[0])), "report")
    finally:
        extra.unlink()


def test_missing_tokenizer_is_one_sentence(capsys, finished, tmp_path):
    model = tmp_path / "no_tokenizer"
    shutil.copytree(finished[0] / "models/tiny", model, ignore=shutil.ignore_patterns("tokenizer*"))
    fails(capsys, 2, "has no usable tokenizer", finished, "calibrate", f"model.source={model}", "model.build=null")


def test_truncated_model_weights_are_one_sentence(capsys, finished, tmp_path):
    model = shutil.copytree(finished[0] / "models/tiny", tmp_path / "truncated")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    fails(
        capsys,
        2,
        "truncated are damaged (Error while deserializing header",
        finished,
        "search",
        f"model.source={model}",
        "model.build=null",
    )


def test_a_second_run_of_the_same_job_is_refused_while_the_first_holds_its_lock(capsys, finished):
    from harp.cli._app import stage_lock
    from tests.helpers import compose

    cfg = compose(f"results_dir={finished[0]}", *QUICK, GRID)
    with stage_lock(cfg, "collect", per_model=False):
        fails(capsys, 2, "Another run is doing this collect job now", finished, "collect")


def test_the_lock_is_keyed_on_the_outputs_not_on_the_whole_config(capsys, finished):
    """Two perplexity runs that differ in a setting perplexity does not write by still write one ppl.json."""
    from harp.cli._app import stage_lock
    from tests.helpers import compose

    cfg = compose(f"results_dir={finished[0]}", *QUICK, GRID, "eval.limit=3")
    with stage_lock(cfg, "perplexity"):
        fails(capsys, 2, "Another run is doing this perplexity job now", finished, "perplexity")


def test_leftover_temporaries_of_a_killed_render_are_cleared(finished, tmp_path):
    results = shutil.copytree(finished[0], tmp_path / "results")  # a fresh render changes PDF dates: not in `finished`
    leftover = results / ".figures.abc123.tmp"
    leftover.mkdir()
    (leftover / "half.png").write_bytes(b"")
    assert stage("report", results) == 0
    assert not leftover.exists()


def test_ctrl_c_says_how_to_resume_without_a_traceback(tmp_path):
    """SIGINT during training: exit 130, one line, no traceback, no half-built model."""
    cmd = [
        sys.executable,
        "-m",
        "harp.cli.build_tiny",
        f"results_dir={tmp_path}",
        "tracking=disabled",
        "progress=false",
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell ignores SIGINT
    )
    deadline = time.time() + 120  # a cold venv compiles bytecode first: wait for the stage's own lock file
    while not any((tmp_path / ".locks").glob("build_tiny-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(3)  # into tokenizer or model training
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1].strip()
    assert proc.returncode == 130, err
    assert err.endswith("rerun the same command to resume.") and "Traceback" not in err
    assert not (tmp_path / "models" / "tiny").exists()


# --- the Python API -------------------------------------------------------------------------------------
def test_apply_harp_that_fails_on_one_layer_leaves_the_model_untouched():
    model = harp.apply_harp(random_model("llama"), {4: 0.5})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(HarpError, match="already pruned"):
        harp.apply_harp(model, {5: 0.3, 4: 0.2})
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert hasattr(decoder_layers(model)[5].self_attn, "q_proj")
    with pytest.raises(HarpError, match="alphas must map a layer index to its alpha"):
        harp.apply_harp(random_model("llama"), [0.5, 0.3])


@pytest.mark.parametrize(
    "ids, kwargs, message",
    [
        (torch.rand(4, 16), {}, "must be integer token ids"),
        (torch.full((4, 16), 500), {}, "must lie in 0..127"),
        (torch.randint(0, 128, (4, 16)), {"layers": [99]}, "layers must be distinct indices in 0..5"),
        (torch.randint(0, 128, (4, 16)), {"layers": []}, "layers must be distinct indices"),
    ],
)
def test_search_alphas_checks_its_inputs(ids, kwargs, message):
    with pytest.raises(HarpError, match=message):
        harp.search_alphas(random_model("llama"), ids, 2, progress=False, **kwargs)


def test_save_plan_onto_a_file_and_apply_plan_twice_are_clear(tmp_path):
    from harp.pruning.params import decoder_linear_params
    from harp.pruning.plan import build_plan

    model = random_model("llama")
    before = decoder_linear_params(model)
    plan = build_plan("harp", "random", harp.apply_harp(model, {5: 0.5}), before, [5], {5: 0.5})
    (tmp_path / "afile").write_text("")
    with pytest.raises(HarpError, match="is a file; save_plan writes a plan into a folder"):
        harp.save_plan(plan, tmp_path / "afile")
    fresh = harp.apply_plan(random_model("llama"), plan)
    with pytest.raises(HarpError, match="This model is already pruned"):
        harp.apply_plan(fresh, plan)
