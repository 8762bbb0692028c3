# Speed and memory, original vs pruned (Figure 3). Random weights from the architecture: no download.
# On a CPU it takes every core given to snakemake, so that no other job shares its timings.


rule speed:
    input:
        lambda wc: P.model_inputs(wc.model),
        plan=str(artifacts.plan(METHOD_DIR)),
    output:
        str(artifacts.speed(METHOD_DIR)),
    log:
        str(artifacts.job_log(METHOD_DIR, "speed")),
    conda:
        ENV
    threads: lambda wc: workflow.cores if P.model_inputs(wc.model) else model_threads(wc)
    resources:
        **MODEL_RESOURCES,
    params:
        py=PY,
        command=lambda wc: P.command(wc.expdir, wc.model, wc.method),
        settings=lambda wc: P.settings("speed", wc.expdir, wc.model, wc.method),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.speed {params.command} > {log:q} 2>&1"
