# Every result into one table (all_results.csv), then LaTeX tables, figures and report.md.

rule collect:
    input: P.targets()
    output: f"{RESULTS}/all_results.csv"
    log: f"{LOGS}/collect.log"
    params: overrides=" ".join(P.common)
    shell: "{PY} -m harp.cli.collect {params.overrides} > {log} 2>&1"

rule report:
    input: f"{RESULTS}/all_results.csv"
    output: f"{RESULTS}/report.md", directory(f"{RESULTS}/tables"), directory(f"{RESULTS}/figures")
    log: f"{LOGS}/report.log"
    params: overrides=" ".join(P.common)
    shell: "{PY} -m harp.cli.report {params.overrides} > {log} 2>&1"
