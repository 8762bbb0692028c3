"""Draw the calibration set shared by the alpha search and the calibrated baselines."""
from __future__ import annotations

import torch

from harp.cli._app import check_model, save_config, stage
from harp.config import Config
from harp.data.calibration import calibration_ids
from harp.errors import HarpError
from harp.io import atomic_path


def calibration_path(cfg: Config):
    return cfg.model_dir / "calib" / "calibration.pt"


def load_calibration(cfg: Config) -> torch.Tensor:
    """The calibration token ids written by this stage; a missing or corrupt file is one sentence."""
    path = calibration_path(cfg)
    if not path.exists():
        raise HarpError(f"{path} does not exist; run `python -m harp.cli.calibrate model={cfg.model.name}` first.")
    try:
        return torch.load(path, weights_only=True)["input_ids"]
    except Exception as err:
        raise HarpError(f"{path} is unreadable ({type(err).__name__}); delete it and rerun the calibrate stage.") from None


@stage("calibrate")
def main(cfg: Config, run) -> None:
    from transformers import AutoTokenizer

    check_model(cfg)
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.source)
    d = cfg.data
    ids = calibration_ids(tokenizer, d.source, d.num_samples, d.seq_len, d.seed)
    out = calibration_path(cfg)
    with atomic_path(out) as tmp:
        torch.save({"input_ids": ids, "source": d.source, "seed": d.seed}, tmp)
    save_config(cfg, out.parent, "calibrate")
    print(f"calibration: {d.num_samples} x {d.seq_len} tokens from {d.source} -> {out}")


if __name__ == "__main__":
    main()
