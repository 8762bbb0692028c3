"""The design's single owners: one module names every artifact, stages never import each other, every
method's plan re-applies after `import harp` alone, and the torch-free modules stay torch-free."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from harp import artifacts, methods
from harp.errors import HarpError
from tests.helpers import ROOT, compose, random_model

FILE_NAMES = (
    "plan.json",
    "plan.safetensors",
    "alphas.json",
    "search.csv",
    "ppl.json",
    "speed.csv",
    "mask_compare.csv",
    "all_results.csv",
    "report.md",
    ".config.yaml",
    "tables.tex",
    "pdflatex.log",
)
DEMO_METHODS = ("dense", "harp", "mag_sp", "wanda_sp", "flap", "amp", "attn_drop", "harp_flap", "attn_mask", "wanda_qk")


def test_the_layout():
    main, ablation = artifacts.experiment_dir("results"), artifacts.experiment_dir("results", "no_rescale")
    assert (str(main), str(ablation)) == ("results", "results/ablations/no_rescale")
    assert artifacts.experiment_dir("results", artifacts.MAIN) == main
    mdir = artifacts.method_dir(ablation, "tiny", "flap")
    assert str(artifacts.plan(mdir)) == "results/ablations/no_rescale/tiny/flap/plan.json"
    assert str(artifacts.eval_result(mdir, "boolq")) == "results/ablations/no_rescale/tiny/flap/eval/boolq.json"
    assert str(artifacts.alphas(main, "tiny")) == "results/tiny/harp/alphas.json"
    name = artifacts.calibration_name("corpus", 32, 128, 0)
    assert str(artifacts.calibration(main, "tiny", name)) == "results/tiny/calib/corpus-32x128-seed0.pt"
    assert (
        str(artifacts.plan(artifacts.method_dir("{expdir}", "{model}", "{method}")))
        == "{expdir}/{model}/{method}/plan.json"
    )


def test_each_file_name_is_spelled_in_one_module_and_no_stage_imports_another():
    sources = {p: p.read_text() for p in (ROOT / "harp").rglob("*.py")}
    for name in FILE_NAMES:
        owners = [p.relative_to(ROOT) for p, text in sources.items() if name in text]
        assert [str(p) for p in owners] == ["harp/artifacts.py"], (name, owners)
    stages = {p.stem for p in (ROOT / "harp" / "cli").glob("*.py")} - {"__init__", "_app"}
    for path in (ROOT / "harp" / "cli").glob("*.py"):
        imported = set(re.findall(r"^from harp\.cli\.(\w+) import|^import harp\.cli\.(\w+)", sources[path], re.M))
        assert not {m for pair in imported for m in pair} & stages, path


def test_torch_free_modules_import_without_torch():
    code = "import sys, harp, harp.artifacts, harp.methods, harp.layers, harp.workflow; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_every_method_config_names_a_method_of_the_table():
    for path in (ROOT / "conf" / "method").glob("*.yaml"):
        assert compose(f"method={path.stem}").method.name in methods.METHODS, path
    with pytest.raises(HarpError, match="Did you mean 'flap'"):
        methods.get("flapp")


def test_plans_of_every_demo_method_reapply_after_import_harp_alone(tmp_path):
    """Plans made with each method's planner, re-applied in a fresh process that imports `harp` only."""
    from harp.config import BudgetConfig
    from harp.pruning.budget import target_removed
    from harp.pruning.plan import PruneInputs, save_plan

    ids = torch.randint(0, 128, (8, 32), generator=torch.Generator().manual_seed(0))
    for name in DEMO_METHODS:
        model, method = random_model("llama"), methods.get(name)
        budget = target_removed(model, BudgetConfig(), 2) if method.budgeted else None
        inputs = PruneInputs(
            model=model,
            source="random",
            method=compose(f"method={name}").method,
            calibration=ids,
            alphas={5: 0.0, 4: 0.3},
            target_removed=budget,
        )
        save_plan(method.planner(inputs), tmp_path / name)
        with torch.no_grad():
            torch.save(model(ids[:2]).logits, tmp_path / name / "logits.pt")
    code = f"""
import json, sys, torch
sys.path.insert(0, {str(ROOT)!r})
import harp
from tests.helpers import random_model
ids = torch.randint(0, 128, (8, 32), generator=torch.Generator().manual_seed(0))
same = {{}}
for name in {list(DEMO_METHODS)!r}:
    model = harp.apply_plan(random_model("llama"), harp.load_plan({str(tmp_path)!r} + "/" + name))
    with torch.no_grad():
        same[name] = torch.equal(model(ids[:2]).logits, torch.load({str(tmp_path)!r} + "/" + name + "/logits.pt"))
print(json.dumps(same))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == dict.fromkeys(DEMO_METHODS, True)


def _string_literals(path) -> list[str]:
    import ast

    return [
        n.value
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_method_and_model_names_are_asked_of_the_registry_not_spelled():
    """Outside the method table, the methods' own modules and the model adapters, at most 3 string literals
    name a method or a model (the package's own name as wandb project and library is not one)."""
    names = set(methods.METHODS) | {p.stem for p in (ROOT / "conf" / "model").glob("*.yaml")}
    owners = {ROOT / "harp" / "methods.py", ROOT / "harp" / "models" / "adapters.py"}
    owners |= {ROOT / "harp" / m.module.replace(".", "/").removeprefix("harp/") for m in methods.METHODS.values()}
    owners = {p.with_suffix(".py") for p in owners}
    found = [
        (str(p.relative_to(ROOT)), s)
        for p in (ROOT / "harp").rglob("*.py")
        if p not in owners
        for s in _string_literals(p)
        if s in names and (s != "harp" or p.name not in ("page.py", "config.py", "card.py", "export.py"))
    ]
    assert len(found) <= 3, found


def test_each_task_name_is_spelled_in_the_task_table_alone():
    from harp.eval.tasks import SUITE

    table = ROOT / "harp" / "eval" / "tasks.py"
    for path in (ROOT / "harp").rglob("*.py"):
        if path != table:
            spelled = set(_string_literals(path)) & set(SUITE)
            assert not spelled, (path, spelled)


def test_environment_yml_installs_what_pyproject_declares():
    """The conda environment's pip list carries every dependency of pyproject (and its dev extras), with the same
    version bounds; torch is pinned to the CPU build the README installs, within pyproject's range."""
    import tomllib
    import yaml

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip
    assert set(declared) - {"torch>=2.4"} <= set(pip), set(declared) - set(pip)
    assert "torch==2.13.0" in pip
