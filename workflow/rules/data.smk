# The models built here (`model.build`: tiny is trained, gguf converted), the offline fixture datasets and the
# calibration set.

for _model, _source in P.built_models().items():

    rule:
        name:
            f"build_{_model}"
        output:
            directory(_source),
        log:
            str(artifacts.job_log(RESULTS, f"build_{_model}")),
        conda:
            ENV
        threads: workflow.cores
        params:
            py=PY,
            command=P.common_command(f"model={_model}"),
            settings=P.build_settings(_model),
            stage=P.build_stage(_model),
        shell:
            "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.{params.stage} {params.command} > {log:q} 2>&1"


if P.fixtures_dir:

    rule fixtures:
        output:
            directory(P.fixtures_dir),
        log:
            str(artifacts.job_log(RESULTS, "fixtures")),
        conda:
            ENV
        params:
            py=PY,
            command=P.common_command(),
        shell:
            "{params.py} -m harp.cli.fixtures {params.command} > {log:q} 2>&1"


if P.bigbench_dir:

    rule task_data:
        output:
            directory(P.bigbench_dir),
        log:
            str(artifacts.job_log(RESULTS, "task_data")),
        conda:
            ENV
        params:
            py=PY,
            command=P.common_command(),
        shell:
            "{params.py} -m harp.cli.task_data {params.command} > {log:q} 2>&1"


# One job per calibration set of each model: `data` (HARP's search), or a method's own (FLAP's, Wanda-sp's).
rule calibrate:
    input:
        lambda wc: P.model_inputs(wc.model),
    output:
        str(artifacts.calibration(EXPDIR, "{model}", "{calib}")),
    log:
        str(artifacts.job_log(artifacts.calibration(EXPDIR, "{model}", "{calib}").parent, "calibrate_{calib}")),
    priority: 10  # seconds, and the searches (the longest jobs) wait for it
    conda:
        ENV
    resources:
        mem_mb=MODEL_RESOURCES["mem_mb"],
        runtime=30,
    params:
        py=PY,
        command=lambda wc: P.calibration_command(wc.expdir, wc.model, wc.calib),
        settings=lambda wc: P.calibration_settings(wc.expdir, wc.model, wc.calib),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.calibrate {params.command} > {log:q} 2>&1"


# `snakemake download --cores 1` (on a machine with internet, e.g. a cluster's login node): every model and
# dataset this run reads, into the Hugging Face cache once; the jobs then run with HF_HUB_OFFLINE=1.
rule download:
    log:
        str(artifacts.job_log(RESULTS, "download")),
    localrule: True
    conda:
        ENV
    params:
        py=PY,
        pairs=" ".join(
            f"{k}='{json.dumps(config[k])}'"
            for k in ("suite", "models", "methods", "experiments", "experiment", "export_methods")
            if config.get(k) is not None
        ),
    shell:
        "set -o pipefail; {params.py} -m harp.cli.download --config {params.pairs} 2>&1 | tee {log:q}"
