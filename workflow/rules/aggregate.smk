rule aggregate:
    input:
        lambda wildcards: run_tables(wildcards.table),
    output:
        paths.AGGREGATE,
    wildcard_constraints:
        table="|".join(TABLES),
    log:
        "logs/aggregate/{table}.log",
    shell:
        "{VITPROBE} aggregate --table {wildcards.table} --out {output} {input} > {log} 2>&1"
