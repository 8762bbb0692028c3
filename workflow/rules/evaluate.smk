# lm-eval tasks (one job per task, task category or all tasks: `eval_jobs`) and held-out perplexity.

for _shard, _tasks in P.eval_shards().items():

    rule:
        name:
            f"evaluate_{_shard}"
        input:
            lambda wc: P.eval_inputs(wc.expdir, wc.model, wc.method),
        output:
            [str(artifacts.eval_result(METHOD_DIR, task)) for task in _tasks],
        log:
            str(artifacts.job_log(METHOD_DIR, f"evaluate_{_shard}")),
        conda:
            ENV
        threads: model_threads
        resources:
            **MODEL_RESOURCES,
        params:
            py=PY,
            command=lambda wc, tasks=_tasks: P.command(
                wc.expdir, wc.model, wc.method, f"eval.select=[{','.join(tasks)}]"
            ),
            settings=lambda wc: P.settings("evaluate", wc.expdir, wc.model, wc.method),
        shell:
            "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.evaluate {params.command} > {log:q} 2>&1"


rule perplexity:
    input:
        lambda wc: P.model_inputs(wc.model),
        plan=str(artifacts.plan(METHOD_DIR)),
    output:
        str(artifacts.perplexity(METHOD_DIR)),
    log:
        str(artifacts.job_log(METHOD_DIR, "perplexity")),
    conda:
        ENV
    threads: model_threads
    resources:
        **MODEL_RESOURCES,
    params:
        py=PY,
        command=lambda wc: P.command(wc.expdir, wc.model, wc.method),
        settings=lambda wc: P.settings("perplexity", wc.expdir, wc.model, wc.method),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.perplexity {params.command} > {log:q} 2>&1"
