# HARP's greedy alpha search (once per model and experiment; fixed alphas skip the search itself).

rule search:
    input: lambda wc: P.model_inputs(wc.model), calibration="{run}/{model}/calib/calibration.pt"
    output: "{run}/{model}/harp/alphas.json"
    log: "{run}/{model}/harp/logs/search.log"
    params: overrides=lambda wc: P.overrides(wc.run, wc.model)
    threads: model_threads
    resources: **MODEL_RESOURCES
    shell: "OMP_NUM_THREADS={threads} {PY} -m harp.cli.search {params.overrides} > {log} 2>&1"
