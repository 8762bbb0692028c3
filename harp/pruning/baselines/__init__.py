"""Structured-pruning baselines: `mag_sp`, `wanda_sp`, `flap`, `amp`, `attn_drop`, and `harp_flap` (HARP
followed by FLAP MLP-channel pruning, the authors' release). Each module holds only its scoring rule;
`harp.methods` lists them.

Choices shared by all of them:
- Budget (`harp.pruning.budget`; the paper's L/N of the attention weights by default) and counts
  (`method.counts`, see `ranking`): `reference` passes the budget's fraction p of the pruned kinds' weights
  to the reference code's own count rule (FLAP's floors and AL-AM threshold, AMP's rounding), whose removal
  can fall short of the budget or pass it; `budget` removes the budget within 1%, counted in exact weights per
  unit. Whole attention blocks (`attn_drop`) always get as close as whole blocks allow. `details["budget"]`
  records the rule, what was removed and the gap.
- Statistics (`method.statistics`): `reference` gathers them as the reference code does (FLAP's running
  fluctuation estimate; Wanda-sp layer by layer on the pruned layers below, `sequential`), `exact` in one
  dense pass with the exact variance.
- Allocation (`method.allocation`): `uniform` removes the same count in every layer (the remainder spread
  over evenly spaced layers), `global` ranks all layers together; each method's default follows its
  reference code (see its config).
- GQA: attention is pruned in whole key/value groups, each with the query heads that read it.
  Dropping a query head alone would leave the KV cache as large; dropping a key/value head alone
  would orphan its query heads. Whole groups keep `num_key_value_groups`, so stock HF attention
  runs on the smaller projections (`structures`).
- Unit scores come from the input channels of o_proj (summed per group) and down_proj; attention
  and MLP units, which live on different scales, are ranked together only after per-layer
  standardisation (FLAP standardises channel scores, as its release does).
- Any layer may lose all its groups (a removed block still keeps the KV cache's length where the
  cache reads it, see `harp.pruning.harp.keep_cache_length`); every MLP keeps at least one channel.
- Calibration: each method's own set (`method.calibration`: FLAP's WikiText-2 1024 x 128, Wanda's C4 128 x 128),
  else the search's (`data`); the tiny model reads every text from its corpus.
"""
