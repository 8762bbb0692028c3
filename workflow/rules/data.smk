# The embedded model, the offline fixture datasets and the calibration set.

for _model, _source in P.built_models().items():
    rule:
        name: f"build_{_model}"
        output: directory(_source)
        log: f"{LOGS}/build_{_model}.log"
        threads: workflow.cores
        params: overrides=" ".join((f"model={_model}", *P.common))
        shell: "OMP_NUM_THREADS={threads} {PY} -m harp.cli.build_tiny {params.overrides} > {log} 2>&1"

if P.fixtures_dir:
    rule fixtures:
        output: directory(P.fixtures_dir)
        log: f"{LOGS}/fixtures.log"
        params: overrides=" ".join(P.common)
        shell: "{PY} -m harp.cli.fixtures {params.overrides} > {log} 2>&1"

rule calibrate:
    input: lambda wc: P.model_inputs(wc.model)
    output: "{run}/{model}/calib/calibration.pt"
    log: "{run}/{model}/calib/calibrate.log"
    params: overrides=lambda wc: P.overrides(wc.run, wc.model)
    resources: mem_mb=MODEL_RESOURCES["mem_mb"], runtime=30
    shell: "OMP_NUM_THREADS={threads} {PY} -m harp.cli.calibrate {params.overrides} > {log} 2>&1"
