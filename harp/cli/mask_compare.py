"""Attn-mask against Wanda on the same q/k weights: `python -m harp.cli.mask_compare method=attn_mask`.

At each sparsity of `method.mask.compare` (0.3, 0.5, 0.7), both methods mask the q/k weights of the
same layers from the same calibration sequences; the stage measures the attention-matrix error
(relative Frobenius, per layer and overall) and the held-out perplexity of each (`harp.eval.mask_compare`).
Writes the comparison (CSV) into `<experiment>/<model>/attn_mask/`.
"""

from __future__ import annotations

import pandas as pd

from harp import artifacts, methods
from harp.cli._app import check_model, checked_calibration, load_for, log, save_config, stage
from harp.config import Config
from harp.errors import HarpError
from harp.eval.mask_compare import compare
from harp.eval.perplexity import heldout_ids
from harp.io import atomic_path


@stage("mask_compare")
def main(cfg: Config, tracker) -> None:
    if cfg.method.name != methods.MASKS_COMPARED:
        name = methods.MASKS_COMPARED
        raise HarpError(f"mask_compare reads {name}'s settings: run it with method={name}.")
    settings = cfg.method.mask
    cfg.method.check_model(check_model(cfg).hidden_size)
    calibration = checked_calibration(cfg)
    model, tokenizer = load_for(cfg)
    p = cfg.eval.perplexity
    caps = [t for t in (p.max_tokens, settings.compare_tokens) if t]  # ten perplexities: the first tokens rank them
    source = cfg.text_source(p.source)
    heldout = heldout_ids(tokenizer, source, min(caps) if caps else None)
    rows, seconds = compare(model, calibration, heldout, settings, p.window, p.stride, cfg.progress)
    frame = pd.DataFrame(rows).assign(
        model=cfg.model.name,
        source=source,
        tokens=len(heldout),
        pattern=settings.pattern,
        tiny_model=cfg.model.toy,
    )
    out = artifacts.mask_compare(cfg.method_dir)
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    save_config(cfg, cfg.method_dir, "mask_compare")
    pruned = frame[frame.layer.isna() & (frame.method != methods.UNPRUNED)]
    variant = pruned.method + pruned.rank_by.map(lambda r: f" by {r}" if isinstance(r, str) else "")
    overall = pruned.assign(variant=variant).pivot_table(
        index="sparsity", columns=["metric", "variant"], values="value"
    )
    log(tracker, {f"{m}/{k}/s{s}": v for s, r in overall.iterrows() for (m, k), v in r.items()} | seconds)
    print(f"scoring: {', '.join(f'{k} {v:.2f} s' for k, v in seconds.items())}")
    print(overall.round(4).to_string())
    print(f"-> {out}")


if __name__ == "__main__":
    main()
