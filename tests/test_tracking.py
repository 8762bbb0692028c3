"""wandb run names: one per job, so a method's evaluation shards are told apart."""

from __future__ import annotations

from pathlib import Path

from harp.config import compose
from harp.tracking import run_name

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_run_names_carry_model_method_stage_task_group_and_experiment():
    cfg = compose(CONF, ["model=tiny", "method=harp", "eval=demo", "eval.select=[arc_challenge]"])
    assert run_name(cfg, "evaluate") == "tiny/harp/evaluate/arc_challenge"
    assert run_name(cfg, "prune") == "tiny/harp/prune"
    assert run_name(cfg, "report", per_model=False) == "report"
    ablation = compose(CONF, ["model=tiny", "method=harp", "eval=demo", "experiment=no_rescale"])
    assert run_name(ablation, "evaluate") == "tiny/harp/evaluate/all/no_rescale"
