rule aggregate:
    input:
        lambda wildcards: run_tables(wildcards.table),
    output:
        LAYOUT.aggregate,
    wildcard_constraints:
        table="|".join(TABLES),
    log:
        LAYOUT.log("aggregate/{table}"),
    shell:
        "{VITPROBE} aggregate --table {wildcards.table} --out {output} {input} > {log} 2>&1"
