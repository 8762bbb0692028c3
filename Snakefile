"""HARP's reproduction pipeline: `snakemake --cores N` (the embedded demo), `--config suite=paper` (the paper).

calibration -> alpha search -> prune (per model x method) -> evaluate (per task or task group) and
perplexity -> speed -> collect -> tables, figures and report.md. Each job is a Hydra stage,
`python -m harp.cli.<stage> <overrides>`, writing atomically under results/ (ablations under
results/ablations/<name>/). What runs is planned by harp.workflow from workflow/config.yaml.
"""
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

min_version("9.0")

configfile: f"{workflow.basedir}/workflow/config.yaml"

validate(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")

from harp.errors import HarpError
from harp.workflow import Pipeline

try:
    P = Pipeline(config, conf_dir=f"{workflow.basedir}/conf")
except HarpError as err:
    raise WorkflowError(str(err)) from None

PY = sys.executable
RESULTS = P.results_dir
LOGS = f"{RESULTS}/logs"

wildcard_constraints:
    **P.wildcard_constraints(),

# A job on a model asks for the resources of the model's kind (workflow/config.yaml `resources`).
MODEL_RESOURCES = {key: (lambda wc, key=key: P.resource(wc.model, key)) for key in ("gpu", "mem_mb", "runtime")}


def model_threads(wildcards):
    return P.resource(wildcards.model, "threads")

# Every result is requested, not only the report: a result deleted later is recomputed, with the report.
rule all:
    input: f"{RESULTS}/report.md", P.targets()

include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/report.smk"
