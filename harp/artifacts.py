"""Where every artifact lives: the one owner of the results layout (torch-free).

The stages, the Snakemake rules, the workflow planner and the report all ask this module; no other
module spells a file name. An experiment is the main run or one ablation (a `conf/experiment/` name):

    <results_dir>/                          the main experiment
      <model>/calib/<set>.pt                calibration token ids, one file per calibration set
      <model>/harp/alphas.json, search.csv  HARP's alphas and the search trace
      <model>/diagnostics.csv               Theorem 1's premise per layer (the diagnose stage)
      <model>/<method>/plan.json (+ plan.safetensors), ppl.json, eval/<task>.json, speed.csv
      <model>/attn_mask/mask_compare.csv    attn_mask against wanda_qk at equal q/k sparsity
      <model>/<method>/export/              the pruned model as a checkpoint that loads without harp (on request)
      <model>/<method>/<stage>.config.yaml  the resolved config of the stage that wrote there
      <...>/<artifact>.provenance.json      what a calibration set, alphas or plan was made from (checked on read)
      <model>/<method>/logs/<stage>.log     Snakemake job logs
      ablations/<experiment>/...            each ablation, the same layout
      all_results.csv, report.md, tables/ (<table>.tex, tables.tex, tables.pdf), figures/, logs/

Functions return `Path`s; given Snakemake wildcards (`"{expdir}"`) they return the rules' patterns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

MAIN = "main"  # the experiment name of the main run; every other experiment is an ablation
ABLATIONS = "ablations"

PLAN, PLAN_TENSORS, ALPHAS = "plan.json", "plan.safetensors", "alphas.json"


def experiment_dir(results_dir: str | Path, experiment: str | None = None) -> Path:
    """The folder of an experiment: `results_dir` for the main run, `results_dir/ablations/<name>` otherwise."""
    if experiment in (None, MAIN):
        return Path(results_dir)
    return Path(results_dir) / ABLATIONS / experiment


def experiments_on_disk(results_dir: str | Path) -> Iterator[tuple[str, Path]]:
    """`(experiment, folder)` of the main run and of every ablation folder present under `results_dir`."""
    yield MAIN, Path(results_dir)
    for d in sorted((Path(results_dir) / ABLATIONS).glob("*")):
        if d.is_dir() and not d.name.startswith("."):
            yield d.name, d


def model_dir(expdir: str | Path, model: str) -> Path:
    return Path(expdir) / model


def method_dir(expdir: str | Path, model: str, method: str) -> Path:
    return Path(expdir) / model / method


# --- per model ------------------------------------------------------------------------------------
def calibration_name(source: str, num_samples: int, seq_len: int, seed: int) -> str:
    """The name of a calibration set: what it was drawn from and how (methods share a set when these agree)."""
    return f"{source}-{num_samples}x{seq_len}-seed{seed}"


def calibration(expdir: str | Path, model: str, name: str) -> Path:
    return model_dir(expdir, model) / "calib" / f"{name}.pt"


def searched_dir(expdir: str | Path, model: str) -> Path:
    """The folder of the method that owns HARP's alpha search (`harp.methods.SEARCHED`): alphas and trace."""
    from harp.methods import SEARCHED

    return method_dir(expdir, model, SEARCHED)


def diagnostics(expdir: str | Path, model: str) -> Path:
    """Per-layer token similarity, attention entropy and pass-through error (the diagnose stage)."""
    return model_dir(expdir, model) / "diagnostics.csv"


def alphas(expdir: str | Path, model: str) -> Path:
    return searched_dir(expdir, model) / ALPHAS


def search_trace(expdir: str | Path, model: str) -> Path:
    return searched_dir(expdir, model) / "search.csv"


# --- per model and method (functions of the method folder) ----------------------------------------
def plan(mdir: str | Path) -> Path:
    return Path(mdir) / PLAN


def plan_tensors(mdir: str | Path) -> Path:
    return Path(mdir) / PLAN_TENSORS


def perplexity(mdir: str | Path) -> Path:
    return Path(mdir) / "ppl.json"


def eval_dir(mdir: str | Path) -> Path:
    return Path(mdir) / "eval"


def bigbench_rows(data_dir: str | Path) -> Path:
    """BIG-bench's real rows converted from its archive (`harp.cli.task_data`), under `eval.data_dir`."""
    return Path(data_dir) / "bigbench"


def eval_job(tasks: list[str], categories: list[str]) -> str:
    """The name of one evaluation job (its log, its config record): its task as a file-safe name, else the
    category all its tasks share, else `all`. The workflow's shards and the stage name jobs by this alone."""
    if len(tasks) == 1:
        return re.sub(r"\W", "_", tasks[0])
    return categories[0] if len(set(categories)) == 1 else "all"


def eval_result(mdir: str | Path, task: str) -> Path:
    return eval_dir(mdir) / f"{task}.json"


def eval_samples(mdir: str | Path, task: str) -> Path:
    """lm-eval's per-document log of a generation task (prompt, target, response), beside its result."""
    return eval_dir(mdir) / f"{task}.samples.jsonl"


def speed(mdir: str | Path) -> Path:
    return Path(mdir) / "speed.csv"


def export_dir(mdir: str | Path) -> Path:
    """The pruned model as a Hugging Face folder (weights, config, tokenizer, modeling file, model card)."""
    return Path(mdir) / "export"


def mask_compare(mdir: str | Path) -> Path:
    """The attention-error and perplexity comparison of attn_mask and wanda_qk (in attn_mask's folder)."""
    return Path(mdir) / "mask_compare.csv"


def has_results(mdir: Path) -> bool:
    """Whether a folder holds any per-method artifact (what collect looks for)."""
    return any(
        p.exists()
        for p in (plan(mdir), perplexity(mdir), eval_dir(mdir), speed(mdir), mask_compare(mdir), mdir / ALPHAS)
    )


# --- provenance and logs --------------------------------------------------------------------------
def provenance(artifact: str | Path) -> Path:
    """What a calibration set, HARP's alphas or a plan (its JSON file) was made from (`harp.provenance`)."""
    artifact = Path(artifact)
    return artifact.with_name(f"{artifact.stem}.provenance.json")


def stage_config(directory: str | Path, stage: str) -> Path:
    """The resolved config a stage records beside its outputs."""
    return Path(directory) / f"{stage}.config.yaml"


def job_log(directory: str | Path, stage: str) -> Path:
    return Path(directory) / "logs" / f"{stage}.log"


# --- over all experiments -------------------------------------------------------------------------
def all_results(results_dir: str | Path) -> Path:
    return Path(results_dir) / "all_results.csv"


def report(results_dir: str | Path) -> Path:
    return Path(results_dir) / "report.md"


def summary(results_dir: str | Path) -> Path:
    """The main results table as text: the report stage writes it, a finished `snakemake` prints it."""
    return Path(results_dir) / "summary.md"


def notebook(results_dir: str | Path) -> Path:
    """notebooks/results.ipynb executed on these results (the report stage), outputs included."""
    return Path(results_dir) / "results.ipynb"


def tables_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "tables"


def table_file(tdir: str | Path, name: str) -> Path:
    """One LaTeX table (a `table` float to `\\input`) in the tables folder."""
    return Path(tdir) / f"{name}.tex"


def tables_document(tdir: str | Path) -> Path:
    """The standalone document that inputs every table; pdflatex writes its PDF beside it (`tables_pdf`)."""
    return Path(tdir) / "tables.tex"


def tables_pdf(tdir: str | Path) -> Path:
    return tables_document(tdir).with_suffix(".pdf")


def latex_log(results_dir: str | Path) -> Path:
    """pdflatex's log of the tables document (kept outside the tables folder: it survives a failed build)."""
    return logs_dir(results_dir) / "tables.pdflatex.log"


def figures_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "figures"


def lock_file(results_dir: str | Path, job: str) -> Path:
    """The lock a running stage job holds (released when the process ends, even when killed)."""
    return Path(results_dir) / ".locks" / f"{job}.lock"


def logs_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "logs"
