"""The paper's tables from the collected results: pandas frames rendered as booktabs LaTeX and as markdown.

The paper's layout is one table per task category (generation, discriminative, LongBench) with the models
as row blocks and the methods as rows inside each block; per-model tables, the ablations, perplexity and
the alphas are extras. A `Table` holds numbers already scaled and rounded, so the LaTeX file, the markdown
of the report page and the tests all see the same values; the best pruned value per column and model block
is bolded in both renderings (not in the mask comparison, whose rows are sparsity levels, not rivals). Each
.tex file is a `table` float (`sidewaystable` where portrait would shrink it) that a paper can `\\input`; it
needs the packages of `harp.report.latex.PACKAGES` (a table wider than the text is scaled down to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from harp import artifacts, methods
from harp.artifacts import MAIN
from harp.eval.tasks import SUITE
from harp.eval.tasks import label as task_label
from harp.io import atomic_path

DENSE = methods.label(methods.UNPRUNED)
CHANCE = "Chance"  # the row of uniform guessing among each document's choices
STDERR = "± stderr"  # the row of the largest standard error in each column of a model's block
PUBLISHED = "published_alphas"  # conf/experiment/published_alphas.yaml: HARP with the authors' alphas, no search
CATEGORIES = {
    "generation": "Generation",
    "discriminative": "Discriminative",
    "longbench": "LongBench",
    "bigbench": "BIG-bench",  # the demo's real tasks (not one of the paper's tables)
}
PRUNED, KV = "Pruned (%)", "KV cache (-%)"
SCORE_NOTE = (
    "Scores are the primary lm-eval metric multiplied by 100 and rounded to one decimal; in each column the best "
    "pruned model is in bold where it leads the next by more than the block's largest standard error (row "
    "± stderr; Dense is the unpruned reference)."
)
BUDGET_NOTE = "Pruned: share of decoder linear weights removed; KV cache: KV-cache reduction (both %)."
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
    "α": r"$\alpha$",
    "±": r"$\pm$",
}
# Scale a table down to the text width (never up), then down to 65% of the page's height (its caption needs the
# rest): every table fits a page. A table too wide to keep 90% of its size in portrait (article: 345 pt of text
# width; a cell's width estimated from its characters) is set in landscape (`sidewaystable`, package rotating, 550
# pt), and a paper table of more than MAX_TASKS tasks (LongBench's 16) is split into parts, so that its text
# keeps at least 80% of its size.
PORTRAIT_PT, CHAR_PT, CELL_PAD_PT = 345.0, 5.2, 12.0
MAX_TASKS = 6


def fit_open(height: str) -> str:
    return (
        f"\\resizebox*{{!}}{{\\ifdim\\totalheight>0.65{height} 0.65{height}\\else\\totalheight\\fi}}{{%\n"
        r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%"
    )


FIT_CLOSE = "}}"


@dataclass
class Table:
    name: str  # file stem and LaTeX label
    caption: str  # plain text (escaped for LaTeX on rendering)
    frame: pd.DataFrame  # label column(s) first, then numbers already scaled and rounded
    best: dict[str, str] = field(default_factory=dict)  # column -> "max" | "min"
    precision: int = 1  # decimals of the numeric columns
    digits: dict[str, int] = field(default_factory=dict)  # per-column exceptions
    reference: list[int] = field(default_factory=list)  # rows never bolded (Dense: the unpruned reference)
    blocks: list[tuple[str, list[int]]] = field(default_factory=list)  # (title, rows); none: one untitled block

    def decimals(self, column: str) -> int:
        return self.digits.get(column, self.precision)

    @property
    def numeric(self) -> list[str]:
        return list(self.frame.select_dtypes("number").columns)

    @property
    def contenders(self) -> list[int]:
        return [i for i in self.frame.index if i not in self.reference]

    def groups(self) -> list[tuple[str, list[int]]]:
        return self.blocks or [("", list(self.frame.index))]

    def best_value(self, column: str, rows: list[int]) -> float | None:
        """The value bolded in `column` among `rows` (one block): max or min over the non-reference rows, all ties
        bolded; None when those rows do not differ (bolding every row, or a lone row, says nothing), or when the
        best is not ahead of the next by more than the block's stderr row (a difference of a document or two)."""
        how = self.best.get(column)
        values = self.frame.loc[[i for i in rows if i not in self.reference], column].dropna()
        if how is None or values.nunique() < 2:
            return None
        ranked = sorted(values.unique(), reverse=how == "max")
        label = self.frame.columns[0]
        margin = self.frame.loc[[i for i in rows if self.frame.loc[i, label] == STDERR], column].dropna()
        if len(margin) and abs(ranked[0] - ranked[1]) <= margin.iloc[0]:
            return None
        return ranked[0]


def method_order(names) -> list[str]:
    """Known methods in the order of `harp.methods`, then any others alphabetically."""
    known = list(methods.METHODS)
    return sorted(set(names), key=lambda m: (known.index(m) if m in known else len(known), m))


def task_order(tasks) -> list[str]:
    """Tasks in the paper's order (the suite's, `harp.eval.tasks`), then any others alphabetically."""
    known = list(SUITE)
    return sorted(set(tasks), key=lambda t: (known.index(t) if t in known else len(known), t))


def short_name(task: str) -> str:
    return task_label(task)


def run_label(experiment: str, method: str) -> str:
    """A row's label: the method's for the main run, marked for the published-alpha rerun, else the ablation's."""
    label = methods.label(method)
    if experiment == MAIN:
        return label
    if experiment == PUBLISHED:
        return f"{label}, published α"
    return experiment if method == methods.SEARCHED else f"{experiment} ({label})"


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def model_label(rows: pd.DataFrame, model: str) -> str:
    """How captions name the model: the tiny model says so; a model whose config gives a `display` name (what it
    is and where it comes from, e.g. SmolLM2 from a GGUF) is named by it; else its hub id."""
    if bool_column(rows, "tiny_model").any():
        return f"tiny model ({model}, built here)"
    if display := model_display(model):
        return display
    ids = rows["model_id"].dropna()
    return str(ids.iloc[0]) if len(ids) else model


def model_display(model: str) -> str | None:
    """`display` of conf/model/<model>.yaml in the checkout, when it has one."""
    import yaml

    from harp.cli._app import conf_dir

    path = Path(conf_dir()) / "model" / f"{model}.yaml"
    return (yaml.safe_load(path.read_text()) or {}).get("display") if path.exists() else None


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


def legend(rows: pd.DataFrame) -> str:
    """What the row labels of the HARP variants mean, for the variants that `rows` has."""
    notes = []
    notes += [f"{m.label}: {m.note}" for m in methods.METHODS.values() if m.note and m.name in set(rows.method)]
    if PUBLISHED in set(rows.experiment):
        notes.append(
            "Rows marked published α rerun the method with the authors' published alphas instead of the searched "
            "ones: their gap to the searched row is the search's doing, their gap to the paper the evaluation's."
        )
    return " ".join(notes)


def category_means(evals: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean score x 100 of each task category (columns, in table order) for each value of `by` (rows); a run
    that lacks one of the category's tasks gets no mean."""
    scores = evals.pivot(index=by, columns="task", values="score")
    out = pd.DataFrame(index=scores.index)
    for category in [c for c in CATEGORIES if c in set(evals.category)]:
        tasks = sorted(set(evals.task[evals.category == category]))
        out[CATEGORIES[category]] = (scores[tasks].mean(axis=1, skipna=False) * 100).round(1)
    return out


def _add_budget(frame: pd.DataFrame, rows: pd.DataFrame, by, order: list) -> None:
    """The Pruned and KV cache columns (%) of `frame`, whose index is `order`: each row's first record in `rows`
    grouped `by` the same keys."""
    budget = rows.groupby(by)[["pruning_ratio", "kv_cache_reduction"]].first().reindex(order)
    frame[PRUNED] = (budget["pruning_ratio"] * 100).round(1)
    frame[KV] = (budget["kv_cache_reduction"] * 100).round(1)


def _dense_rows(frame: pd.DataFrame, label: str) -> list[int]:
    """The reference rows, never bold: Dense, Chance and the stderr row where the table has them."""
    return list(frame.index[frame[label].isin([DENSE, CHANCE, STDERR])])


def _score_rows(results: pd.DataFrame, category: str) -> pd.DataFrame:
    """Evaluation rows of a task category: the main run and its published-alpha rerun."""
    return results[
        (results.kind == "eval") & results.experiment.isin([MAIN, PUBLISHED]) & (results.category == category)
    ]


def _with_runs(rows: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """`rows` with a `run` column (the row label) and the labels in table order: the methods in table order,
    each searched run followed by its published-alpha rerun."""
    rank = method_order(rows.method)
    runs = sorted(set(zip(rows.method, rows.experiment)), key=lambda r: (rank.index(r[0]), r[1] != MAIN, r[1]))
    labelled = rows.assign(run=[run_label(e, m) for e, m in zip(rows.experiment, rows.method)])
    return labelled, [run_label(e, m) for m, e in runs]


def _model_block(rows: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """One model's rows of a score table: Method, `tasks` (short names), Avg, Pruned and KV cache."""
    rows, order = _with_runs(rows)
    scores = rows.pivot(index="run", columns="task", values="score").reindex(index=order, columns=tasks)
    frame = (scores * 100).round(1)
    frame["Avg"] = (scores.mean(axis=1, skipna=False) * 100).round(1)
    _add_budget(frame, rows, "run", order)
    if "chance" in rows and rows.chance.notna().any():  # what guessing scores: the floor of every column
        chance = rows.groupby("task").chance.first().reindex(tasks)
        frame.loc[CHANCE] = {**(chance * 100).round(1).to_dict(), "Avg": round(chance.mean() * 100, 1)}
        order = [*order, CHANCE]
    has_errors = "stderr" in rows and rows.stderr.notna().any()
    errors = rows.pivot(index="run", columns="task", values="stderr").reindex(columns=tasks) if has_errors else None
    if errors is not None:  # the largest stderr of each column: what a difference must exceed to count
        errors = errors.astype(float)
        mean_error = (errors**2).sum(axis=1, min_count=len(tasks)) ** 0.5 / len(tasks)
        frame.loc[STDERR] = {**(errors.max() * 100).round(1).to_dict(), "Avg": round(mean_error.max() * 100, 1)}
        order = [*order, STDERR]
    frame = frame.rename(columns=short_name)
    frame.insert(0, "Method", order)
    return frame.reset_index(drop=True)


def _score_caption(what: str, rows: pd.DataFrame) -> str:
    """One short sentence; the notes every score table shares are `shared_notes`, once per document."""
    said = flags(rows)
    return f"{what} Avg: mean over the tasks shown." + (f" Not paper numbers: {', '.join(said)}." if said else "")


def shared_notes(results: pd.DataFrame) -> str:
    """What every score table means, said once (the tables' document opens with it, the report page too)."""
    rows = results[results.kind == "eval"]
    return " ".join(filter(None, [SCORE_NOTE, BUDGET_NOTE, legend(rows), caveats(rows)]))


def paper_table(results: pd.DataFrame, category: str) -> Table | None:
    """The paper's table of a task category: one block per model, the methods as rows inside each block."""
    rows = _score_rows(results, category)
    if rows.empty:
        return None
    tasks = task_order(rows.task)
    blocks, frames, start = [], [], 0
    for model, mine in rows.groupby("model", sort=True):
        frame = _model_block(mine, tasks)
        frames.append(frame)
        blocks.append((model_label(mine, model), list(range(start, start + len(frame)))))
        start += len(frame)
    frame = pd.concat(frames, ignore_index=True)
    scored = [c for c in frame.columns if c not in ("Method", PRUNED, KV)]
    what = f"{CATEGORIES.get(category, category)} tasks, one block of rows per model."
    return Table(
        category,
        _score_caption(what, rows),
        frame,
        dict.fromkeys(scored, "max"),
        reference=_dense_rows(frame, "Method"),
        blocks=blocks,
    )


def split_tasks(table: Table, tasks: list[str]) -> list[Table]:
    """A paper table with more than MAX_TASKS task columns as parts of at most that many tasks each (the label
    column in every part; Avg, Pruned and KV cache in the last), named `<name>`, `<name>_2`, ..."""
    columns = [short_name(t) for t in tasks]
    if len(columns) <= MAX_TASKS:
        return [table]
    parts = math.ceil(len(columns) / MAX_TASKS)
    size = math.ceil(len(columns) / parts)
    label, tail = table.frame.columns[0], [c for c in table.frame.columns[1:] if c not in columns]
    out = []
    for k in range(parts):
        shown = [label, *columns[k * size : (k + 1) * size], *(tail if k == parts - 1 else [])]
        out.append(
            replace(
                table,
                name=table.name if k == 0 else f"{table.name}_{k + 1}",
                caption=f"{table.caption} Part {k + 1} of {parts}.",
                frame=table.frame[shown],
                best={c: how for c, how in table.best.items() if c in shown},
            )
        )
    return out


def score_table(results: pd.DataFrame, model: str, category: str) -> Table | None:
    """Methods x tasks of one model and task category (an extra beside the paper's table of the category)."""
    rows = _score_rows(results, category)
    rows = rows[rows.model == model]
    if rows.empty:
        return None
    frame = _model_block(rows, task_order(rows.task))
    scored = [c for c in frame.columns if c not in ("Method", PRUNED, KV)]
    what = f"{model_label(rows, model)}: {CATEGORIES.get(category, category)} tasks."
    return Table(
        f"{model}_{category}",
        _score_caption(what, rows),
        frame,
        dict.fromkeys(scored, "max"),
        reference=_dense_rows(frame, "Method"),
    )


def layer_span(layers) -> str:
    """Layer indices compactly, runs of consecutive layers as first-last: [0, 5, 6, 7] -> "0, 5-7"."""
    spans: list[list[int]] = []
    for layer in sorted(layers):
        if spans and layer == spans[-1][1] + 1:
            spans[-1][1] = layer
        else:
            spans.append([layer, layer])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _pruned_span(results: pd.DataFrame, model: str, experiment: str, method: str) -> str:
    """The layers a run pruned with HARP's alphas (the experiment's alpha rows); -- for methods that read none."""
    entry = methods.METHODS.get(method)
    rows = results[(results.kind == "alpha") & (results.experiment == experiment) & (results.model == model)]
    if entry is None or "alphas" not in entry.needs or rows.empty:
        return "--"
    return layer_span(rows.layer.dropna().astype(int))


def ablation_table(results: pd.DataFrame, model: str) -> Table | None:
    """One row per ablation experiment (beside the main run's Dense and HARP): category averages and perplexity."""
    mine = results[results.model == model]
    if (mine.experiment == MAIN).all():
        return None
    main_rows = mine.method.isin([methods.UNPRUNED, methods.SEARCHED])
    keep = ((mine.experiment == MAIN) & main_rows) | (mine.experiment != MAIN)
    mine = mine[keep & mine.kind.isin(["eval", "perplexity"])]
    rank = method_order(mine.method)
    main_first = sorted(
        mine[["experiment", "method"]].drop_duplicates().itertuples(index=False),
        key=lambda r: (r.experiment != MAIN, r.experiment, rank.index(r.method)),
    )
    order = [run_label(e, m) for e, m in main_first]
    mine = mine.assign(row=[run_label(e, m) for e, m in zip(mine.experiment, mine.method)])
    evals = mine[mine.kind == "eval"]
    frame = category_means(evals, "row").reindex(order)
    scores = evals.pivot(index="row", columns="task", values="score").reindex(order)
    frame["Avg"] = (scores.mean(axis=1, skipna=False) * 100).round(1)
    best = dict.fromkeys(frame.columns, "max")
    ppl = mine[mine.kind == "perplexity"].set_index("row")["score"]
    frame["PPL"] = ppl.reindex(order).round(2)
    best["PPL"] = "min"
    _add_budget(frame, mine, "row", order)
    frame.insert(0, "Run", order)
    frame.insert(1, "Layers", [_pruned_span(results, model, e, m) for e, m in main_first])
    caption = (
        f"{model_label(mine, model)}: ablations of HARP (one row per experiment under results/ablations/; Layers: "
        f"the layers it prunes, 0-based). "
        f"Category columns average the tasks of that category and Avg all tasks, each multiplied by 100 and rounded "
        f"to one decimal; PPL is held-out perplexity rounded to two decimals. Best pruned run per column in bold "
        f"where the runs differ. {BUDGET_NOTE} {legend(mine)} {caveats(mine)}"
    )
    frame = frame.reset_index(drop=True)
    return Table(
        f"{model}_ablations", caption.strip(), frame, best, digits={"PPL": 2}, reference=_dense_rows(frame, "Run")
    )


def perplexity_table(results: pd.DataFrame) -> Table | None:
    """Held-out perplexity of every method (rows; with its published-alpha rerun) and model (columns)."""
    rows = results[(results.kind == "perplexity") & results.experiment.isin([MAIN, PUBLISHED])]
    if rows.empty:
        return None
    rows, order = _with_runs(rows)
    ppl = rows.pivot(index="run", columns="model", values="score").sort_index(axis=1)
    frame = ppl.reindex(order).round(2)
    frame.insert(0, "Method", order)
    frame = frame.reset_index(drop=True)
    sources = ", ".join(f"{m}: {s}" for m, s in sorted(set(zip(rows.model, rows.task))))
    caption = (
        f"Held-out perplexity (lower is better; text source per model: {sources}), rounded to two decimals; "
        f"the best pruned model per column is in bold where they differ (Dense is the unpruned reference). "
        f"{legend(rows)} {caveats(rows)}"
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
    _add_budget(frame, rows, ["sparsity", "row"], keys)
    frame.insert(0, "Method", [row for _, row in keys])
    frame.insert(0, "s (%)", [None if row == DENSE else round(100 * s) for s, row in keys])
    frame = frame.reset_index(drop=True)
    pruned = overall.drop(index=0.0, level="sparsity", errors="ignore").reset_index()
    scored = rows[rows.metric == "perplexity"][["task", "n_samples"]].drop_duplicates()
    sources = ", ".join(f"{t}, first {int(n)} tokens" for t, n in zip(scored.task, scored.n_samples))
    verdict = [
        f"Lower {what} at each s: " + ", ".join(f"{round(100 * s)}% {row}" for s, row in zip(best.sparsity, best.row))
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


def paper_tables(results: pd.DataFrame) -> list[Table]:
    """The paper's table of each task category, split where it has too many tasks to keep its text's size."""
    tables = []
    for category in CATEGORIES:
        if (table := paper_table(results, category)) is not None:
            tables += split_tasks(table, task_order(_score_rows(results, category).task))
    return tables


def build_tables(results: pd.DataFrame) -> list[Table]:
    """The paper's tables (one per task category) first, then the extras."""
    from harp.report import premise  # it builds on this module's Table

    models = sorted(set(results.model.dropna()))
    tables = paper_tables(results)
    if len(models) > 1:  # with one model the paper's tables are its tables already
        tables += [score_table(results, m, c) for m in models for c in CATEGORIES]
    tables += [ablation_table(results, m) for m in models] + [perplexity_table(results), alpha_table(results)]
    tables += [mask_compare_table(results, m) for m in models]
    tables += [premise.diagnostics_table(results, m) for m in models]
    return [t for t in tables if t is not None]


def _cells(table: Table, escape, bold) -> pd.DataFrame:
    """Every cell as text: numbers with the column's decimals (`--` when missing) and `bold` on the best value of
    each block, text through `escape`."""
    out = pd.DataFrame(index=table.frame.index)
    for column in table.frame.columns:
        values = table.frame[column]
        if column not in table.numeric:
            out[column] = [escape(v) for v in values]
            continue
        text = str if pd.api.types.is_integer_dtype(values) else f"{{:.{table.decimals(column)}f}}".format
        out[column] = ["--" if pd.isna(v) else text(v) for v in values]
        for _, rows in table.groups():
            best = table.best_value(column, rows)
            for i in rows:
                if best is not None and i in table.contenders and values[i] == best:
                    out.loc[i, column] = bold(out.loc[i, column])
    return out


def to_latex(table: Table) -> str:
    """booktabs `table` float, scaled down to fit the page; a titled block opens with its title, rules between."""
    cells = _cells(table, latex_escape, lambda s: f"\\textbf{{{s}}}")
    columns = list(table.frame.columns)
    body = []
    for n, (title, rows) in enumerate(table.groups()):
        body += ["\\midrule"] if n else []
        if title:
            body.append(f"\\multicolumn{{{len(columns)}}}{{l}}{{\\textit{{{latex_escape(title)}}}}} \\\\")
        body += [" & ".join(cells.loc[i]) + " \\\\" for i in rows]
    spec = "".join("r" if c in table.numeric else "l" for c in columns)
    plain = _cells(table, str, str)
    width = sum(CELL_PAD_PT + CHAR_PT * max(len(str(c)), *map(len, plain[c])) for c in columns)
    env, height = ("sidewaystable", "\\textwidth") if width > PORTRAIT_PT / 0.9 else ("table", "\\textheight")
    return "\n".join(
        [
            f"\\begin{{{env}}}" + ("" if env == "sidewaystable" else "[htbp]"),
            "\\centering",
            f"\\caption{{{latex_escape(table.caption)}}}",
            f"\\label{{tab:{table.name}}}",
            fit_open(height),
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(latex_escape(c) for c in columns) + " \\\\",
            "\\midrule",
            *body,
            "\\bottomrule",
            "\\end{tabular}" + FIT_CLOSE,
            f"\\end{{{env}}}",
            "",
        ]
    )


def to_markdown(table: Table) -> str:
    """The same table for the report page: same rounding, best in **bold**, a block's title on a row of its own."""
    cells = _cells(table, str, lambda s: f"**{s}**")
    lines = []
    for title, rows in table.groups():
        lines += [[f"*{title}*"] + [""] * (len(cells.columns) - 1)] if title else []
        lines += cells.loc[rows].values.tolist()
    shown = pd.DataFrame(lines, columns=cells.columns)
    return f"{shown.to_markdown(index=False, disable_numparse=True)}\n\n*{table.caption}*"


def write_tables(tables: list[Table], out_dir: str | Path) -> list[Path]:
    paths = []
    for table in tables:
        path = artifacts.table_file(out_dir, table.name)
        with atomic_path(path) as tmp:
            tmp.write_text(to_latex(table))
        paths.append(path)
    return paths
