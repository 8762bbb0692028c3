"""Measure Theorem 1's premise per decoder layer: `python -m harp.cli.diagnose model=tiny`.

Writes `<experiment>/<model>/diagnostics.csv`, one row per layer, from the calibration set HARP's alpha search
reads (the calibrate stage's output), in one forward pass. Its columns follow these definitions
(harp/eval/layer_diagnostics.py computes them):

- token_similarity: Sim(H) of the paper's Theorem 1, the mean cosine similarity between the representations of
  distinct positions of one sequence at the layer's input (the residual stream entering the layer), averaged
  over the calibration sequences;
- attention_entropy: each causal attention row's entropy divided by the log of the number of positions it can
  see, averaged over heads and over the query positions that see at least two (1 = uniform attention);
- passthrough_error: ||A - alpha* P|| / ||A||, the relative error of replacing the attention output A by HARP's
  value pass-through P = o_proj(repeat_kv(v_proj(norm(h)))) with the least-squares alpha* over all calibration
  tokens; passthrough_alpha: that alpha*;
- source, sequences, tokens: the calibration text and its size.

The model runs with eager attention here whatever model.attn_implementation says: it is the implementation that
returns the attention rows the entropy needs, and at calibration lengths it costs little. Every run recomputes
the file whole (written atomically), so a damaged one is replaced, never half-read.
"""

from __future__ import annotations

from dataclasses import replace

from harp.cli._app import checked_calibration, load_for, log, save_config, stage
from harp.config import Config
from harp.diagnostics import RANK_BY, rank_layers, write_diagnostics
from harp.eval.layer_diagnostics import measure_layers

EAGER = "eager"


@stage("diagnose")
def main(cfg: Config, tracker) -> None:
    calibration = checked_calibration(cfg)  # before the model: a damaged or wrong set fails fast
    model, _ = load_for(replace(cfg, model=replace(cfg.model, attn_implementation=EAGER)))
    measured = measure_layers(model, calibration, batch_size=cfg.method.search.batch_size, progress=cfg.progress)
    size = {"source": cfg.calibration_set().source, "sequences": calibration.shape[0], "tokens": calibration.numel()}
    rows = [r | size for r in measured]
    out = cfg.diagnostics_file()
    write_diagnostics(out, rows)
    save_config(cfg, out.parent, "diagnose")
    if tracker is not None:
        import wandb

        columns = list(rows[0])
        tracker.log({"diagnostics": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])})
    log(tracker, {f"diagnostics/{k}_mean": sum(r[k] for r in rows) / len(rows) for k in measured[0] if k != "layer"})
    shown = lambda key: " ".join(f"{r[key]:.2f}" for r in rows)  # noqa: E731
    print(f"token_similarity by layer: {shown('token_similarity')}")
    print(f"attention_entropy by layer: {shown('attention_entropy')}")
    print(f"passthrough_error by layer: {shown('passthrough_error')}")
    print(f"layers ranked by {RANK_BY} (best first): {rank_layers(rows)} -> {out}")


if __name__ == "__main__":
    main()
