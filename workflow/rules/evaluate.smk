# lm-eval tasks (one job per task, task group or all tasks: `eval_jobs`) and held-out perplexity.

for _shard, _tasks in P.eval_shards().items():
    rule:
        name: f"evaluate_{_shard}"
        input: lambda wc: P.eval_inputs(wc.run, wc.model, wc.method)
        output: [f"{{run}}/{{model}}/{{method}}/eval/{task}.json" for task in _tasks]
        log: f"{{run}}/{{model}}/{{method}}/logs/evaluate_{_shard}.log"
        params:
            overrides=lambda wc: P.overrides(wc.run, wc.model, wc.method),
            select="eval.select=[{}]".format(",".join(_tasks)),
        threads: model_threads
        resources: **MODEL_RESOURCES
        shell: "OMP_NUM_THREADS={threads} {PY} -m harp.cli.evaluate {params.overrides} '{params.select}' > {log} 2>&1"

rule perplexity:
    input: lambda wc: P.model_inputs(wc.model), plan="{run}/{model}/{method}/plan.json"
    output: "{run}/{model}/{method}/ppl.json"
    log: "{run}/{model}/{method}/logs/perplexity.log"
    params: overrides=lambda wc: P.overrides(wc.run, wc.model, wc.method)
    threads: model_threads
    resources: **MODEL_RESOURCES
    shell: "OMP_NUM_THREADS={threads} {PY} -m harp.cli.perplexity {params.overrides} > {log} 2>&1"
