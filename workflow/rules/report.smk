# Every result into one table, then LaTeX tables, figures and the report page.


rule collect:
    input:
        P.targets(),
    output:
        str(artifacts.all_results(RESULTS)),
    log:
        str(artifacts.job_log(RESULTS, "collect")),
    conda:
        ENV
    params:
        py=PY,
        command=P.common_command(),
    shell:
        "{params.py} -m harp.cli.collect {params.command} > {log:q} 2>&1"


rule report:
    input:
        str(artifacts.all_results(RESULTS)),
    output:
        str(artifacts.report(RESULTS)),
        str(artifacts.summary(RESULTS)),
        directory(str(artifacts.tables_dir(RESULTS))),
        directory(str(artifacts.figures_dir(RESULTS))),
    log:
        str(artifacts.job_log(RESULTS, "report")),
    conda:
        ENV
    params:
        py=PY,
        command=P.common_command(),
    shell:
        "{params.py} -m harp.cli.report {params.command} > {log:q} 2>&1"
