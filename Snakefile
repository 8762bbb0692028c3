"""HARP's reproduction pipeline: `snakemake --cores N` (the embedded demo), `--config suite=paper` (the paper).

calibration -> per-layer diagnostics and alpha search -> prune (per model x method) -> evaluate (per task or task
category) and perplexity -> speed (and the attn_mask/wanda_qk comparison) -> collect -> tables, figures and report.md,
and standalone checkpoints of chosen methods (export). Each job is a Hydra stage,
`python -m harp.cli.<stage> <overrides>`, writing atomically under results/ (ablations under
results/ablations/<name>/). What runs is planned by harp.workflow from workflow/config.yaml; where
each file lives is harp.artifacts' decision.
"""

from pathlib import Path

from snakemake.utils import min_version

from harp.errors import one_sentence
from harp.workflow import check_config

min_version("9.0")


configfile: f"{workflow.basedir}/workflow/config.yaml"


with one_sentence():
    check_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    **P.wildcard_constraints(),


# Every result is requested, not only the report: a result deleted later is recomputed, with the report.
rule all:
    input:
        str(artifacts.report(RESULTS)),
        P.targets(),


onsuccess:
    # the main results table in the terminal, as lm-eval users expect (the report has the rest)
    if artifacts.summary(RESULTS).is_file() and not workflow.dryrun:
        print(f"\n{artifacts.summary(RESULTS).read_text()}Report: {artifacts.report(RESULTS)}")


include: "workflow/rules/data.smk"
include: "workflow/rules/diagnose.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/mask.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"
