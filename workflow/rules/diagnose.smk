# Theorem 1's premise per layer (token similarity, attention entropy, pass-through error), from the calibration set
# of HARP's search: once per model in the main run (Figure 0), and where an experiment's layers are diagnosed.


rule diagnose:
    input:
        lambda wc: P.diagnose_inputs(wc.expdir, wc.model),
    output:
        str(artifacts.diagnostics(EXPDIR, "{model}")),
    log:
        str(artifacts.job_log(artifacts.model_dir(EXPDIR, "{model}"), "diagnose")),
    conda:
        ENV
    threads: model_threads
    resources:
        **MODEL_RESOURCES,
    params:
        py=PY,
        command=lambda wc: P.command(wc.expdir, wc.model),
        settings=lambda wc: P.settings("diagnose", wc.expdir, wc.model),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.diagnose {params.command} > {log:q} 2>&1"
