"""The paper's tables from the collected results: pandas frames rendered as booktabs LaTeX and as markdown.

A `Table` holds numbers already scaled and rounded, so the LaTeX file, the markdown of the report page and
the tests all see the same values; the best value per column is bolded in both renderings.
Each .tex file is a `table` float that a paper can `\\input` (needs `\\usepackage{booktabs}`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harp import methods
from harp.artifacts import MAIN
from harp.io import atomic_path

DENSE = methods.label("dense")
CATEGORIES = {"generation": "Generation", "discriminative": "Discriminative", "longbench": "LongBench"}
SCORE_NOTE = (
    "Scores are the primary lm-eval metric multiplied by 100 and rounded to one decimal; the best pruned "
    "model per column is in bold (Dense is the unpruned reference)."
)
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


@dataclass
class Table:
    name: str  # file stem and LaTeX label
    caption: str  # plain text (escaped for LaTeX on rendering)
    frame: pd.DataFrame  # label column(s) first, then numbers already scaled and rounded
    best: dict[str, str] = field(default_factory=dict)  # column -> "max" | "min"
    precision: int = 1  # decimals of the numeric columns
    digits: dict[str, int] = field(default_factory=dict)  # per-column exceptions
    reference: list[int] = field(default_factory=list)  # rows never bolded (Dense: the unpruned reference)

    def decimals(self, column: str) -> int:
        return self.digits.get(column, self.precision)

    @property
    def numeric(self) -> list[str]:
        return list(self.frame.select_dtypes("number").columns)

    @property
    def contenders(self) -> list[int]:
        return [i for i in self.frame.index if i not in self.reference]

    def best_value(self, column: str) -> float | None:
        """The value bolded in `column`: max or min over the non-reference rows (ties all bolded)."""
        how = self.best.get(column)
        values = self.frame.loc[self.contenders, column]
        return None if how is None or values.isna().all() else (values.max() if how == "max" else values.min())


def method_order(names) -> list[str]:
    """Known methods in the order of `harp.methods`, then any others alphabetically."""
    known = list(methods.METHODS)
    return sorted(set(names), key=lambda m: (known.index(m) if m in known else len(known), m))


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def model_label(rows: pd.DataFrame, model: str) -> str:
    """The model's hub id for captions; the tiny model says so."""
    if bool_column(rows, "tiny_model").any():
        return f"tiny model ({model}, built here)"
    ids = rows["model_id"].dropna()
    return str(ids.iloc[0]) if len(ids) else model


def caveats(rows: pd.DataFrame) -> str:
    """What a reader must know before trusting the numbers: fixture data, capped evaluations, tiny models."""
    several = rows.model.nunique() > 1

    def which(mask: pd.Series) -> str:  # name the models when the table mixes several
        return f" ({', '.join(sorted(set(rows.model[mask])))})" if several else ""

    fixture, tiny, capped = bool_column(rows, "fixture"), bool_column(rows, "tiny_model"), rows["limit"].notna()
    notes = []
    if fixture.any():
        notes.append(
            f"FIXTURE DATA{which(fixture)}: scores come from the small offline fixture datasets; they test "
            "the pipeline and are not comparable to the paper."
        )
    if capped.any():
        notes.append(
            f"CAPPED EVALUATION{which(capped)}: at most {int(rows['limit'].max())} samples per task (lm-eval limit)."
        )
    if tiny.any():
        notes.append(f"TINY MODEL{which(tiny)}: a small model trained here, not one of the paper's models.")
    zeroing = [m for m in method_order(rows.method.dropna()) if getattr(methods.METHODS.get(m), "zeroes", False)]
    if zeroing:
        notes.append(
            f"{', '.join(map(methods.label, zeroing))} zero q/k weights without removing them: Pruned counts the "
            "zeros; the KV cache keeps its size (0%), and without sparse kernels the model is no faster."
        )
    return " ".join(notes)


def bool_column(rows: pd.DataFrame, column: str) -> pd.Series:
    """A boolean column of the collected frame (empty cells, e.g. on speed rows, count as False)."""
    return rows[column].fillna(False).astype(bool)


def flags(rows: pd.DataFrame) -> list[str]:
    """Short form of `caveats` for figure titles."""
    out = ["fixture data"] if bool_column(rows, "fixture").any() else []
    if len(limits := rows["limit"].dropna()):
        out.append(f"limit {int(limits.max())}")
    return out + (["tiny model"] if bool_column(rows, "tiny_model").any() else [])


def _dense_rows(frame: pd.DataFrame, label: str) -> list[int]:
    return list(frame.index[frame[label] == DENSE])


def score_table(results: pd.DataFrame, model: str, category: str) -> Table | None:
    """Methods x tasks of one model and task category, with the average and the pruning/KV-cache reductions."""
    rows = results[
        (results.kind == "eval")
        & (results.experiment == MAIN)
        & (results.model == model)
        & (results.category == category)
    ]
    if rows.empty:
        return None
    scores = rows.pivot(index="method", columns="task", values="score").sort_index(axis=1)
    scores = scores.loc[method_order(scores.index)]
    budget = rows.groupby("method")[["pruning_ratio", "kv_cache_reduction"]].first()
    frame = (scores * 100).round(1)
    frame.columns = [c.removeprefix("longbench_") if category == "longbench" else c for c in frame.columns]
    frame["Avg"] = (scores.mean(axis=1, skipna=False) * 100).round(1)
    best = dict.fromkeys(frame.columns, "max")
    frame["Pruned (%)"] = (budget["pruning_ratio"] * 100).round(1)
    frame["KV cache (-%)"] = (budget["kv_cache_reduction"] * 100).round(1)
    frame.insert(0, "Method", [methods.label(m) for m in frame.index])
    caption = (
        f"{model_label(rows, model)}: {CATEGORIES.get(category, category)} tasks. {SCORE_NOTE} Avg is the mean over "
        f"the tasks shown. Pruned: share of decoder linear weights removed; KV cache: KV-cache reduction "
        f"(both %). {caveats(rows)}"
    )
    frame = frame.reset_index(drop=True)
    return Table(f"{model}_{category}", caption.strip(), frame, best, reference=_dense_rows(frame, "Method"))


def ablation_table(results: pd.DataFrame, model: str) -> Table | None:
    """One row per ablation experiment (beside the main run's Dense and HARP): category averages and perplexity."""
    mine = results[results.model == model]
    if (mine.experiment == MAIN).all():
        return None
    keep = ((mine.experiment == MAIN) & mine.method.isin(["dense", "harp"])) | (mine.experiment != MAIN)
    mine = mine[keep & mine.kind.isin(["eval", "perplexity"])]
    rank = method_order(mine.method)
    main_first = sorted(
        mine[["experiment", "method"]].drop_duplicates().itertuples(index=False),
        key=lambda r: (r.experiment != MAIN, r.experiment, rank.index(r.method)),
    )
    labels = {
        (e, m): methods.label(m) if e == MAIN else (e if m == "harp" else f"{e} ({methods.label(m)})")
        for e, m in main_first
    }
    mine = mine.assign(row=[labels[(e, m)] for e, m in zip(mine.experiment, mine.method)])
    order = [labels[k] for k in main_first]
    evals = mine[mine.kind == "eval"]
    scores = evals.pivot(index="row", columns="task", values="score").reindex(order)
    frame = pd.DataFrame(index=order)
    for category in [c for c in CATEGORIES if c in set(evals.category)]:
        tasks = sorted(set(evals.task[evals.category == category]))
        frame[CATEGORIES[category]] = (scores[tasks].mean(axis=1, skipna=False) * 100).round(1)
    frame["Avg"] = (scores.mean(axis=1, skipna=False) * 100).round(1)
    best = dict.fromkeys(frame.columns, "max")
    ppl = mine[mine.kind == "perplexity"].set_index("row")["score"]
    frame["PPL"] = ppl.reindex(order).round(2)
    best["PPL"] = "min"
    budget = mine.groupby("row")[["pruning_ratio", "kv_cache_reduction"]].first().reindex(order)
    frame["Pruned (%)"] = (budget["pruning_ratio"] * 100).round(1)
    frame["KV cache (-%)"] = (budget["kv_cache_reduction"] * 100).round(1)
    frame.insert(0, "Run", order)
    caption = (
        f"{model_label(mine, model)}: ablations of HARP (one row per experiment under results/ablations/). "
        f"Category columns average the tasks of that category and Avg all tasks, each multiplied by 100 and rounded "
        f"to one decimal; PPL is held-out perplexity rounded to two decimals. Best pruned run per column in bold. "
        f"Pruned: share of decoder linear weights removed; KV cache: KV-cache reduction (both %). "
        f"{caveats(mine)}"
    )
    frame = frame.reset_index(drop=True)
    return Table(
        f"{model}_ablations", caption.strip(), frame, best, digits={"PPL": 2}, reference=_dense_rows(frame, "Run")
    )


def perplexity_table(results: pd.DataFrame) -> Table | None:
    """Held-out perplexity of every method (rows) and model (columns) of the main run."""
    rows = results[(results.kind == "perplexity") & (results.experiment == MAIN)]
    if rows.empty:
        return None
    ppl = rows.pivot(index="method", columns="model", values="score").sort_index(axis=1)
    frame = ppl.loc[method_order(ppl.index)].round(2)
    frame.insert(0, "Method", [methods.label(m) for m in frame.index])
    frame = frame.reset_index(drop=True)
    sources = ", ".join(f"{m}: {s}" for m, s in sorted(set(zip(rows.model, rows.task))))
    caption = (
        f"Held-out perplexity (lower is better; text source per model: {sources}), rounded to two decimals; "
        f"the best pruned model per column is in bold (Dense is the unpruned reference). {caveats(rows)}"
    )
    return Table(
        "perplexity",
        caption.strip(),
        frame,
        dict.fromkeys(ppl.columns, "min"),
        precision=2,
        reference=_dense_rows(frame, "Method"),
    )


def alpha_table(results: pd.DataFrame) -> Table | None:
    """Searched alphas of each model against the authors' published ones, from the last layer down."""
    rows = results[(results.kind == "alpha") & (results.experiment == MAIN)]
    if rows.empty:
        return None
    rows = rows.sort_values(["model", "layer"], ascending=[True, False])
    first = ~rows.model.duplicated()
    frame = pd.DataFrame(
        {
            "Model": [m if f else "" for m, f in zip(rows.model, first)],
            "Layer": rows.layer.astype(int).to_numpy(),
            "Searched alpha": rows.alpha.round(2).to_numpy(),
            "Published alpha": rows.published_alpha.astype(float).round(2).to_numpy(),
        }
    )
    not_searched = sorted(set(rows.model[~bool_column(rows, "searched")]))
    caption = (
        "Alpha per pruned layer (0-based layer index, last layer first): searched by the greedy calibration-"
        "perplexity search against the authors' published values (conf/model/*.yaml; -- where none is "
        "published). Rounded to two decimals."
        + (f" Not searched (fixed alphas): {', '.join(not_searched)}." if not_searched else "")
        + f" {caveats(rows)}"
    )
    return Table("alphas", caption.strip(), frame, precision=2)


RANKED_BY = {"mask": "mask", "masked_weight": "mask x weight"}  # attn_mask's binarisations, as table rows say


def mask_compare_table(results: pd.DataFrame, model: str) -> Table | None:
    """Attn-mask against Wanda-qk at equal q/k sparsity: attention error per layer and overall, and perplexity."""
    rows = results[(results.kind == "mask_compare") & (results.experiment == MAIN) & (results.model == model)]
    if rows.empty:
        return None
    rows = rows.assign(rank_by=rows.rank_by.fillna(""))  # only attn_mask's rows have a ranking
    variant = [
        methods.label(m) + (f" ({RANKED_BY[r]})" if r in RANKED_BY else "") for m, r in zip(rows.method, rows.rank_by)
    ]
    rows = rows.assign(row=variant)
    ranks = list(RANKED_BY)
    order = sorted(  # by s, the baseline (no ranking) first
        set(zip(rows.sparsity, rows.rank_by, rows.row)),
        key=lambda k: (k[0], ranks.index(k[1]) if k[1] in ranks else -1),
    )
    keys = [(s, row) for s, _, row in order]
    overall = (
        rows[rows.layer.isna()].pivot_table(index=["sparsity", "row"], columns="metric", values="score").reindex(keys)
    )
    per_layer = rows[rows.layer.notna() & (rows.metric == "attn_error")].pivot_table(
        index=["sparsity", "row"], columns="layer", values="score"
    )
    per_layer.columns = [f"L{int(c)}" for c in per_layer.columns]
    frame = (100 * per_layer.reindex(keys)).round(1)
    frame["All"] = (100 * overall["attn_error"]).round(1)
    frame["PPL"] = overall["perplexity"].round(2)
    budget = rows.groupby(["sparsity", "row"])[["pruning_ratio", "kv_cache_reduction"]].first().reindex(keys)
    frame["Pruned (%)"] = (100 * budget["pruning_ratio"]).round(1)
    frame["KV cache (-%)"] = (100 * budget["kv_cache_reduction"]).round(1)
    frame.insert(0, "Method", [row for _, row in keys])
    frame.insert(0, "s (%)", [None if row == DENSE else round(100 * s) for s, row in keys])
    frame = frame.reset_index(drop=True)
    pruned = overall.drop(index=0.0, level="sparsity", errors="ignore").reset_index()
    scored = rows[rows.metric == "perplexity"][["task", "n_samples"]].drop_duplicates()
    sources = ", ".join(f"{t}, first {int(n)} tokens" for t, n in zip(scored.task, scored.n_samples))
    verdict = [
        f"Lower {what} at each s: " + ", ".join(f"{s:g} {row}" for s, row in zip(best.sparsity, best.row))
        for metric, what in (("attn_error", "attention error"), ("perplexity", "perplexity"))
        for best in [pruned.loc[pruned.groupby("sparsity")[metric].idxmin()]]
    ]
    caption = (
        f"{model_label(rows, model)}: q/k weights masked at the same per-row sparsity s by Wanda-qk (weight "
        f"magnitude x input norm) and by Attn-mask (masks learned by gradient descent on the softmax attention "
        f"matrix), its masks binarised by the mask value M (mask) or by M x weight magnitude (mask x weight). "
        f"L<i> and All: relative Frobenius "
        f"error of the attention matrices on the calibration data in % (per layer, and over all layers), lower is "
        f"better; PPL: held-out perplexity ({sources}). {'. '.join(verdict)}. "
        f"{caveats(rows)}"
    )
    return Table(
        f"{model}_mask_compare",
        caption.strip(),
        frame,
        digits={"s (%)": 0, "PPL": 2},
        reference=_dense_rows(frame, "Method"),
    )


def build_tables(results: pd.DataFrame) -> list[Table]:
    models = sorted(set(results.model.dropna()))
    tables = [score_table(results, m, c) for m in models for c in CATEGORIES]
    tables += [ablation_table(results, m) for m in models] + [perplexity_table(results), alpha_table(results)]
    tables += [mask_compare_table(results, m) for m in models]
    return [t for t in tables if t is not None]


def to_latex(table: Table) -> str:
    """booktabs `table` float; numbers with the table's precision, best per column bold, `--` for missing."""
    frame = table.frame
    numeric = table.numeric
    text = [c for c in frame.columns if c not in numeric]
    styler = frame.style.hide(axis="index").format_index(escape="latex", axis=1).format(escape="latex", subset=text)
    for column in numeric:
        styler = styler.format(precision=table.decimals(column), na_rep="--", subset=[column])
    for column, how in table.best.items():
        pick = styler.highlight_max if how == "max" else styler.highlight_min
        styler = pick(subset=(table.contenders, [column]), props="textbf:--rwrap;")
    return styler.to_latex(
        hrules=True,
        caption=latex_escape(table.caption),
        label=f"tab:{table.name}",
        position_float="centering",
        column_format="l" * len(text) + "r" * len(numeric),
    )


def to_markdown(table: Table) -> str:
    """The same table for the report page: same rounding, best in **bold**."""
    out = table.frame.copy().astype(object)
    for column in table.numeric:
        values = table.frame[column]
        target = table.best_value(column)
        text = str if pd.api.types.is_integer_dtype(values) else f"{{:.{table.decimals(column)}f}}".format
        out[column] = [
            "--" if pd.isna(v) else (f"**{text(v)}**" if v == target and i in table.contenders else text(v))
            for i, v in values.items()
        ]
    return f"{out.to_markdown(index=False, disable_numparse=True)}\n\n*{table.caption}*"


def write_tables(tables: list[Table], out_dir: str | Path) -> list[Path]:
    paths = []
    for table in tables:
        path = Path(out_dir) / f"{table.name}.tex"
        with atomic_path(path) as tmp:
            tmp.write_text(to_latex(table))
        paths.append(path)
    return paths
