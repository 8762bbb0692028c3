# The pruned model as a checkpoint that loads without harp (the methods of `export_methods`); its model card
# reports the perplexity and task scores of the same plan, so those run first.


rule export:
    input:
        lambda wc: P.export_inputs(wc.expdir, wc.model, wc.method),
    output:
        directory(str(artifacts.export_dir(METHOD_DIR))),
    log:
        str(artifacts.job_log(METHOD_DIR, "export")),
    conda:
        ENV
    threads: model_threads
    resources:
        **MODEL_RESOURCES,
    params:
        py=PY,
        command=lambda wc: P.command(wc.expdir, wc.model, wc.method),
        settings=lambda wc: P.settings("export", wc.expdir, wc.model, wc.method),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.export {params.command} > {log:q} 2>&1"
