"""The diagnose stage: each column's definition on hand-sized examples whose answer is known without the code under
test, its record read whole or not at all, the layers it ranks, and Figure 0 with its table and sentence."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
import yaml

from harp.diagnostics import COLUMNS, RANK_BY, rank_layers, read_diagnostics, write_diagnostics
from harp.errors import HarpError
from harp.eval.layer_diagnostics import (
    attention_entropy,
    measure_layers,
    passthrough_fit,
    token_similarity,
    visible_keys,
)
from harp.layers import pruned_layers
from tests.helpers import random_model, run_stage


# --- each column's definition on hand-sized examples ----------------------------------------------------------
def test_token_similarity_of_known_vectors():
    same = torch.tensor([[[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]]])  # parallel tokens
    orthogonal = torch.eye(3).unsqueeze(0)
    pair = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # cos 45 degrees
    assert token_similarity(same).item() == pytest.approx(1.0)
    assert token_similarity(orthogonal).item() == pytest.approx(0.0)
    assert token_similarity(pair).item() == pytest.approx(1 / math.sqrt(2))
    # three tokens, pairs (a,b) = 0, (a,c) = 0, (b,c) = -1: mean over the three distinct pairs -1/3
    assert token_similarity(torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]])).item() == pytest.approx(-1 / 3)
    # one value per sequence: a batch of the parallel and the orthogonal sequence
    both = torch.cat([same[:, :, :2].expand(1, 3, 2), torch.eye(3)[:, :2].unsqueeze(0)])
    assert token_similarity(both).tolist() == pytest.approx([1.0, (0 + 0 + 0) / 3])


def test_attention_entropy_of_known_rows():
    causal = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    uniform = (causal / causal.sum(-1, keepdim=True)).view(1, 1, 3, 3)
    total, rows = attention_entropy(uniform, causal)
    assert rows == 2 and total / rows == pytest.approx(1.0)  # row 0 sees one position: left out
    one_hot = torch.eye(3).view(1, 1, 3, 3)  # every query attends to itself only
    assert attention_entropy(one_hot, causal) == (0.0, 2)
    # row 2 splits its mass over two of its three visible positions: log 2 / log 3; row 1 is uniform: 1
    half = torch.tensor([[1.0, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0]]).view(1, 1, 3, 3)
    total, rows = attention_entropy(half, causal)
    assert total / rows == pytest.approx((1 + math.log(2) / math.log(3)) / 2)


def test_visible_keys_read_additive_and_boolean_masks():
    additive = torch.tensor([[0.0, torch.finfo(torch.float32).min], [0.0, 0.0]]).view(1, 1, 2, 2)
    assert visible_keys(additive, torch.Size([1, 4, 2, 2])).view(2, 2).tolist() == [[True, False], [True, True]]
    boolean = torch.tensor([[True, False], [True, True]]).view(1, 1, 2, 2)
    assert visible_keys(boolean, torch.Size([1, 4, 2, 2])).equal(boolean)
    assert visible_keys(None, torch.Size([1, 4, 2, 2])).all()


def test_passthrough_fit_of_known_outputs():
    p = torch.tensor([1.0, -2.0, 3.0]).double()
    sums = lambda a: (float(a @ a), float(a @ p), float(p @ p))  # noqa: E731
    alpha, error = passthrough_fit(sums(0.3 * p))  # exactly c x pass-through
    assert alpha == pytest.approx(0.3) and error == pytest.approx(0.0, abs=1e-7)
    # A = (1, 0), P = (1, 1): alpha* = 1/2, residual (1/2, -1/2) of norm sqrt(1/2) over ||A|| = 1
    alpha, error = passthrough_fit((1.0, 1.0, 2.0))
    assert alpha == pytest.approx(0.5) and error == pytest.approx(math.sqrt(0.5))
    assert passthrough_fit((0.0, 0.0, 4.0)) == (0.0, 0.0)  # nothing to replace
    assert passthrough_fit((4.0, 0.0, 0.0)) == (0.0, 1.0)  # nothing to replace it with


def _eager(model):
    model.set_attn_implementation("eager")
    return model


def test_a_model_fed_one_token_with_zero_queries_and_keys_has_every_answer_known():
    """One token repeated: every position's representation is the same at every layer (uniform attention averages
    equal values), so similarity is 1, attention with zero q/k is uniform (entropy 1), and each position's
    attention output is its own value (pass-through error 0, alpha* 1) -- in all layers, with GQA."""
    model = _eager(random_model("llama", num_layers=3))
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.zero_()
            layer.self_attn.k_proj.weight.zero_()
    rows = measure_layers(model, torch.full((2, 9), 7), batch_size=1, progress=False)
    assert [r["layer"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert r["token_similarity"] == pytest.approx(1.0, abs=1e-6)
        assert r["attention_entropy"] == pytest.approx(1.0, abs=1e-6)
        assert r["passthrough_error"] == pytest.approx(0.0, abs=1e-3)
        assert r["passthrough_alpha"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("family", ["llama", "gemma2"])
def test_measurements_agree_with_an_independent_computation(family):
    """Similarity from HF's own hidden states and entropy from its returned attentions, computed in numpy by the
    definition (full cosine matrix, explicit causal rows, Gemma-2's sliding window of 8 read from its config)
    instead of the stage's sums."""
    model = _eager(random_model(family, num_layers=3))
    ids = torch.randint(0, 128, (3, 12), generator=torch.Generator().manual_seed(0))
    rows = measure_layers(model, ids, batch_size=2, progress=False)
    with torch.no_grad():
        out = model(ids, output_hidden_states=True, output_attentions=True)
    for layer, row in enumerate(rows):
        h = out.hidden_states[layer].double().numpy()
        sims = []
        for seq in h:
            unit = seq / np.linalg.norm(seq, axis=1, keepdims=True)
            cos = unit @ unit.T
            sims.append(cos[~np.eye(len(seq), dtype=bool)].mean())
        assert row["token_similarity"] == pytest.approx(np.mean(sims), abs=1e-6)
        att = out.attentions[layer].double().numpy()
        sliding = (getattr(model.config, "layer_types", None) or [""] * 3)[layer] == "sliding_attention"
        window = model.config.sliding_window if sliding else att.shape[-1]
        entropies = []
        for q in range(1, att.shape[2]):
            first = max(0, q - window + 1)  # the keys row q sees: the last `window` positions up to itself
            for probs in att[:, :, q].reshape(-1, att.shape[-1]):
                seen = probs[first : q + 1]
                assert probs.sum() == pytest.approx(seen.sum())  # nothing outside them
                entropies.append(-sum(p * math.log(p) for p in seen if p > 0) / math.log(q + 1 - first))
        assert row["attention_entropy"] == pytest.approx(np.mean(entropies), abs=1e-5)
        assert 0 <= row["passthrough_error"] <= 1


def test_an_attention_that_returns_no_rows_names_the_setting():
    model = random_model("llama", num_layers=2)
    model.set_attn_implementation("sdpa")
    with pytest.raises(HarpError, match=r"attn_implementation='eager' \(model.attn_implementation=eager\)"):
        measure_layers(model, torch.randint(0, 128, (1, 8)), progress=False)


# --- the record -----------------------------------------------------------------------------------------------
def _rows(errors, similarity=None) -> list[dict]:
    similarity = similarity or [0.1 * i for i in range(len(errors))]
    return [
        {
            "layer": i,
            "token_similarity": s,
            "attention_entropy": 0.5,
            "passthrough_error": e,
            "passthrough_alpha": 0.7,
            "source": "corpus",
            "sequences": 2,
            "tokens": 16,
        }
        for i, (e, s) in enumerate(zip(errors, similarity))
    ]


def test_record_round_trips_and_ranks_the_layers(tmp_path):
    path = tmp_path / "diagnostics.csv"
    write_diagnostics(path, _rows([0.9, 0.2, 0.5, 0.2], similarity=[0.1, 0.8, 0.5, 0.8]))
    rows = read_diagnostics(path, num_layers=4)
    assert list(rows[0]) == COLUMNS and rows[1]["passthrough_error"] == 0.2
    assert RANK_BY == "token_similarity"
    assert rank_layers(rows) == [3, 1, 2, 0]  # highest similarity first; the tie goes to the higher layer
    assert pruned_layers(4, 2, "diagnosed", rank_layers(rows)) == [1, 3]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: t[:-10], "is truncated"),  # a write cut short
        (lambda t: t.replace("0.5", "1.5", 1), "attention_entropy is 1.5, outside"),
        (lambda t: t.replace("0.9", "nan", 1), "passthrough_error is nan"),
        (lambda t: "garbage\n", "is not a diagnostics file"),
        (lambda t: t.replace("\n2,", "\n5,", 1), "does not list the layers"),
    ],
)
def test_a_damaged_record_is_one_sentence_never_half_read(tmp_path, damage, message):
    path = tmp_path / "diagnostics.csv"
    write_diagnostics(path, _rows([0.9, 0.2, 0.5]))
    path.write_text(damage(path.read_text()))
    with pytest.raises(HarpError, match=message) as err:
        read_diagnostics(path, 3)
    assert "python -m harp.cli.diagnose" in str(err.value)


def test_a_record_of_another_depth_is_refused(tmp_path):
    path = tmp_path / "diagnostics.csv"
    write_diagnostics(path, _rows([0.9, 0.2, 0.5]))
    with pytest.raises(HarpError, match="describes 3 layers but the model has 8"):
        read_diagnostics(path, 8)


# --- the stage ------------------------------------------------------------------------------------------------
def test_stage_writes_one_row_per_layer_and_recomputes_a_corrupt_file(tiny_model_dir, tmp_path):
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "tiny")
    small = ["data.num_samples=4", "data.seq_len=32", "tracking=disabled"]
    assert run_stage("calibrate", tmp_path, *small).returncode == 0
    out = tmp_path / "tiny" / "diagnostics.csv"
    out.write_text("layer,token_similarity\n0,0.")  # a damaged file from an earlier run
    proc = run_stage("diagnose", tmp_path, *small)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_diagnostics(out, 8)
    assert {r["tokens"] for r in rows} == {4 * 32} and {r["source"] for r in rows} == {"corpus"}
    assert all(0 <= r["attention_entropy"] <= 1 for r in rows)
    assert (tmp_path / "tiny" / "diagnose.config.yaml").exists()
    assert "layers ranked by token_similarity" in proc.stdout


# --- the layers it chooses, and the pipeline around it ----------------------------------------------------------
def test_diagnosed_layers_come_from_the_file_and_the_search_waits_for_it(tmp_path):
    from harp.workflow import Pipeline
    from tests.helpers import ROOT, compose

    cfg = compose("model=tiny", "experiment=similarity_layers", f"results_dir={tmp_path}")
    assert cfg.method.layer_position == "diagnosed" and cfg.searches_alphas()
    with pytest.raises(HarpError, match="run the diagnose stage"):
        cfg.pruned_layers()  # not measured yet: one sentence, never a guess
    similarity = [0.5, 0.9, 0.1, 0.1, 0.8, 0.1, 0.1, 0.7]  # best: layers 1, 4, 7
    write_diagnostics(tmp_path / "ablations/similarity_layers/tiny/diagnostics.csv", _rows([0.5] * 8, similarity))
    assert cfg.pruned_layers() == [1, 4, 7]
    assert cfg.layer_count() == 3

    wf = yaml.safe_load((ROOT / "workflow/config.yaml").read_text())
    wf |= {"suite": "tiny"}
    p = Pipeline(wf | {"experiment": "similarity_layers"}, conf_dir=ROOT / "conf")  # planned before any file exists
    expdir = "results/ablations/similarity_layers"
    assert p.search_inputs(expdir, "tiny") == [
        "results/models/tiny",
        f"{expdir}/tiny/calib/corpus-32x128-seed0.pt",
        f"{expdir}/tiny/diagnostics.csv",
    ]
    assert p.diagnose_inputs(expdir, "tiny") == ["results/models/tiny", f"{expdir}/tiny/calib/corpus-32x128-seed0.pt"]
    assert "results/tiny/diagnostics.csv" in Pipeline(wf, conf_dir=ROOT / "conf").targets()  # Figure 0's
    for suite in ("tiny", "paper"):
        assert "similarity_layers" in wf["suites"][suite]["experiments"]


# --- the report -----------------------------------------------------------------------------------------------
@pytest.fixture
def reported(tmp_path):
    """Collected results of a hand-made 8-layer model: its diagnostics, and HARP's alphas on layers 5-7."""
    from harp.io import write_json
    from harp.records import write_alphas
    from harp.report.collect import collect

    similarity = [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.8, 0.9]
    rows = _rows([0.9] * 5 + [0.4, 0.3, 0.2], similarity)
    for r, entropy in zip(rows, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]):
        r["attention_entropy"] = entropy
    write_diagnostics(tmp_path / "tiny/diagnostics.csv", rows)
    write_alphas(tmp_path / "tiny/harp/alphas.json", {7: 0.5, 6: 0.4, 5: 1.0}, searched=True)
    ppl = {"perplexity": 50.0, "tokens": 100, "source": "corpus", "model": "tiny", "method": "harp", "tiny_model": True}
    write_json(tmp_path / "tiny/harp/ppl.json", ppl)  # marks the model as the tiny one
    return tmp_path, collect(tmp_path)


def test_collect_reads_one_row_per_layer_and_measurement(reported):
    from harp.report.collect import check_current, load_results, write_results

    results_dir, frame = reported
    diag = frame[frame.kind == "diagnostic"]
    assert len(diag) == 8 * 4 and set(diag.metric) == {
        "token_similarity",
        "attention_entropy",
        "passthrough_error",
        "passthrough_alpha",
    }
    path = results_dir / "all_results.csv"
    write_results(frame, path)
    check_current(load_results(path), path, results_dir)
    (results_dir / "tiny/diagnostics.csv").unlink()  # the table no longer describes the files
    with pytest.raises(HarpError, match="does not match the results"):
        check_current(load_results(path), path, results_dir)


def test_table_and_sentence_say_whether_the_pruned_layers_meet_the_premise(reported):
    from harp.report import premise

    _, frame = reported
    table = premise.diagnostics_table(frame, "tiny")
    assert table.frame["Layer"].tolist() == list(range(8))
    assert table.frame["HARP"].tolist() == [""] * 5 + ["pruned"] * 3
    assert table.frame["Sim(H)"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.8, 0.9]
    said = premise.sentence(frame, "tiny")
    # layers 5-7: similarity (0.7+0.8+0.9)/3 = 0.80 against (0.1+...+0.5)/5 = 0.30; entropy 0.30 against 0.70
    assert "in the 3 layers HARP prunes (5-7) Sim(H) averages 0.80 against 0.30" in said
    assert "attention entropy 0.30 against 0.70" in said and "pass-through error 0.30 against 0.90" in said
    assert "only in part: tokens more alike but attention less uniform" in said
    assert said.startswith("tiny model (tiny, built here): ")  # the tiny model's numbers say whose they are
    assert said in table.caption


def test_figure0_is_written_with_the_others(reported, tmp_path_factory):
    from harp.report.figures import write_figures

    _, frame = reported
    out = tmp_path_factory.mktemp("figures")
    written = write_figures(frame, out)
    assert out / "fig0_layers.png" in written and (out / "fig0_layers.pdf").stat().st_size > 0
    assert (out / "fig0_layers.png").read_bytes()[:4] == b"\x89PNG"


def test_layer_spans_read_compactly():
    from harp.report.tables import layer_span

    assert layer_span([7, 0, 5, 6]) == "0, 5-7" and layer_span([3]) == "3"
