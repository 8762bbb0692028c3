# One pruning plan per model x method; harp.methods says what each method reads (`needs`).


rule prune:
    input:
        lambda wc: P.prune_inputs(wc.expdir, wc.model, wc.method),
    output:
        str(artifacts.plan(METHOD_DIR)),
    log:
        str(artifacts.job_log(METHOD_DIR, "prune")),
    conda:
        ENV
    threads: model_threads
    resources:
        **MODEL_RESOURCES,
    params:
        py=PY,
        command=lambda wc: P.command(wc.expdir, wc.model, wc.method),
        settings=lambda wc: P.settings("prune", wc.expdir, wc.model, wc.method),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.prune {params.command} > {log:q} 2>&1"
