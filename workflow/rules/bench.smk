# Speed and memory, original vs pruned (Figure 3). Random weights from the architecture: no download.
# On a CPU it takes every core given to snakemake, so that no other job shares its timings.

rule speed:
    input: lambda wc: P.model_inputs(wc.model), plan="{run}/{model}/{method}/plan.json"
    output: "{run}/{model}/{method}/speed.csv"
    log: "{run}/{model}/{method}/logs/speed.log"
    params: overrides=lambda wc: P.overrides(wc.run, wc.model, wc.method)
    threads: lambda wc: workflow.cores if P.model_inputs(wc.model) else model_threads(wc)
    resources: **MODEL_RESOURCES
    shell: "OMP_NUM_THREADS={threads} {PY} -m harp.cli.speed {params.overrides} > {log} 2>&1"
