# HARP's greedy alpha search (once per model and experiment; fixed alphas skip the search itself).


rule search:
    input:
        lambda wc: P.search_inputs(wc.expdir, wc.model),
    output:
        str(artifacts.alphas(EXPDIR, "{model}")),
    log:
        str(artifacts.job_log(HARP_DIR, "search")),
    # the longest jobs (the bottom_layers search runs nearly the whole model per candidate), and what every HARP
    # row waits for: started first, so the other jobs fill the cores beside them instead of after
    priority: 10
    conda:
        ENV
    threads: model_threads
    resources:
        **MODEL_RESOURCES,
    params:
        py=PY,
        command=lambda wc: P.command(wc.expdir, wc.model),
        settings=lambda wc: P.settings("search", wc.expdir, wc.model),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.search {params.command} > {log:q} 2>&1"
