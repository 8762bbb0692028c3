"""Draw a calibration set: `data` (HARP's alpha search) or the configured method's own (`method.calibration`).

python -m harp.cli.calibrate model=tiny              # the search's set
python -m harp.cli.calibrate model=tiny method=flap  # FLAP's (WikiText-2, 1024 x 128; the corpus on tiny)
"""

from __future__ import annotations

from harp import provenance
from harp.cli._app import check_model, save_config, stage
from harp.config import Config
from harp.data.calibration import calibration_ids, save_calibration
from harp.models.loading import load_tokenizer


@stage("calibrate")
def main(cfg: Config, tracker) -> None:
    check_model(cfg)
    tokenizer = load_tokenizer(cfg.model.source)
    d = cfg.calibration_set()
    ids = calibration_ids(tokenizer, d.source, d.num_samples, d.seq_len, d.seed)
    out = cfg.calibration_file()
    with provenance.recording("calibration", cfg, out):
        save_calibration(out, ids, d.source, d.seed)
    save_config(cfg, out.parent, f"calibrate_{out.stem}")  # one per set: calibration jobs run in parallel
    print(f"calibration: {d.num_samples} x {d.seq_len} tokens from {d.source} -> {out}")


if __name__ == "__main__":
    main()
