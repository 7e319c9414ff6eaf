rule aggregate:
    input:
        lambda wildcards: run_tables(wildcards.table),
    output:
        paths.AGGREGATE,
    wildcard_constraints:
        table="|".join(TABLES),
    params:
        vitprobe=VITPROBE,
    log:
        "logs/aggregate/{table}.log",
    shell:
        "{params.vitprobe} aggregate --table {wildcards.table} --out {output} {input} > {log} 2>&1"
