# Shared by all rules: the pipeline plan (harp.workflow), the folder patterns (harp.artifacts),
# the interpreter, the conda environment and per-model resources.
import json
import sys


from harp import artifacts, methods
from harp.errors import one_sentence
from harp.workflow import Pipeline

with one_sentence():
    P = Pipeline(config, conf_dir=f"{workflow.basedir}/conf")

ENV = "../../environment.yml"  # conda environment of every rule (with --software-deployment-method conda)
# The interpreter of every job: with --software-deployment-method conda, the `python` of ENV's environment (which
# Snakemake activates per job; harp itself is imported from the checkout, the jobs' working directory); otherwise
# the interpreter running snakemake, whose environment has harp installed.
CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
PY = "python" if CONDA else sys.executable
RESULTS = P.results_dir
# wildcard patterns of the per-model and per-method folders, from harp.artifacts
EXPDIR = "{expdir}"
METHOD_DIR = artifacts.method_dir(EXPDIR, "{model}", "{method}")
HARP_DIR = artifacts.method_dir(EXPDIR, "{model}", methods.SEARCHED)
MASK_DIR = artifacts.method_dir(EXPDIR, "{model}", methods.MASKS_COMPARED)


# A job on a model asks for the resources of the model's kind (workflow/config.yaml `resources`).
MODEL_RESOURCES = {key: (lambda wc, key=key: P.resource(wc.model, key)) for key in ("gpu", "mem_mb", "runtime")}


def model_threads(wildcards):
    return P.resource(wildcards.model, "threads")
