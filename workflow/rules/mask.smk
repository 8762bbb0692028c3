# attn_mask against its baseline, Wanda on the same q/k weights: attention error and perplexity at equal
# sparsity (suites with `mask_compare: true`).


rule mask_compare:
    input:
        lambda wc: P.prune_inputs(wc.expdir, wc.model, methods.MASKS_COMPARED),
    output:
        str(artifacts.mask_compare(MASK_DIR)),
    log:
        str(artifacts.job_log(MASK_DIR, "mask_compare")),
    conda:
        ENV
    threads: model_threads
    resources:
        **MODEL_RESOURCES,
    params:
        py=PY,
        command=lambda wc: P.command(wc.expdir, wc.model, methods.MASKS_COMPARED),
        settings=lambda wc: P.settings("mask_compare", wc.expdir, wc.model, methods.MASKS_COMPARED),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.mask_compare {params.command} > {log:q} 2>&1"
