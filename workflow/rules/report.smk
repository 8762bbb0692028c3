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
        report(str(artifacts.report(RESULTS)), caption="../report/summary.rst", category="Summary"),
        report(str(artifacts.summary(RESULTS)), caption="../report/summary.rst", category="Summary"),
        report(
            directory(str(artifacts.tables_dir(RESULTS))),
            patterns=["{name}.tex"],
            caption="../report/tables.rst",
            category="Tables",
        ),
        report(
            directory(str(artifacts.figures_dir(RESULTS))),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        str(artifacts.job_log(RESULTS, "report")),
    conda:
        ENV
    params:
        py=PY,
        command=P.common_command(),
    shell:
        "{params.py} -m harp.cli.report {params.command} > {log:q} 2>&1"
