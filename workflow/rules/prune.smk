# One pruning plan per model x method; each method's config says what it reads (`needs`).

rule prune:
    input: lambda wc: P.prune_inputs(wc.run, wc.model, wc.method)
    output: "{run}/{model}/{method}/plan.json"
    log: "{run}/{model}/{method}/logs/prune.log"
    params: overrides=lambda wc: P.overrides(wc.run, wc.model, wc.method)
    threads: model_threads
    resources: **MODEL_RESOURCES
    shell: "OMP_NUM_THREADS={threads} {PY} -m harp.cli.prune {params.overrides} > {log} 2>&1"
