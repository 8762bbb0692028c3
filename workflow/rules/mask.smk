# attn_mask against its baseline, Wanda on the same q/k weights: attention error and perplexity at equal
# sparsity (suites with `mask_compare: true`).


rule mask_compare:
    input:
        lambda wc: P.model_inputs(wc.model),
        calibration=str(artifacts.calibration(EXPDIR, "{model}")),
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
        overrides=lambda wc: P.overrides(wc.expdir, wc.model, artifacts.MASK_METHOD),
    shell:
        "OMP_NUM_THREADS={threads} {params.py} -m harp.cli.mask_compare {params.overrides} > {log:q} 2>&1"
