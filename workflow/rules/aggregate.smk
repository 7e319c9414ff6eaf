# One table across runs: results/<table>.parquet. A table with intervals (eval,
# hessian_summary, ...) reads the per-run files of its per-unit table too (eval_images, ...)
# and computes them at the config's `intervals` (a change reruns this rule, no probe).
rule aggregate:
    input:
        tables=lambda wildcards: run_tables(wildcards.table),
        units=lambda wildcards: aggregate_units(wildcards.table),
    output:
        LAYOUT.aggregate,
    log:
        LAYOUT.log("aggregate/{table}"),
    wildcard_constraints:
        table="|".join(TABLES),
    params:
        intervals=interval_args(),
        units=lambda wildcards, input: units_arg(input.units),
    shell:
        "vitprobe aggregate --table {wildcards.table} --out {output} {params.intervals} {params.units}"
        " {input.tables} > {log} 2>&1"


# The paper's claims scored on the runs that play their roles, and the runs beside the
# paper's numbers (vitprobe.report.scorecard): the report's first page.
rule scorecard:
    input:
        unpack(scorecard_inputs),
    output:
        claims=LAYOUT.scorecard["claims"],
        runs=LAYOUT.scorecard["runs"],
        markdown=LAYOUT.scorecard["markdown"],
        html=report(LAYOUT.scorecard["html"], caption="../report/scorecard.rst", category="Scorecard"),
    log:
        LAYOUT.log("scorecard"),
    params:
        spec=lambda wildcards: as_json(SCORECARD_SPEC),
        tables=lambda wildcards, input: named_args("--table", input),
    shell:
        "vitprobe scorecard --spec {params.spec:q} {params.tables} --out {output.claims} --runs {output.runs}"
        " --markdown {output.markdown} --html {output.html} > {log} 2>&1"
