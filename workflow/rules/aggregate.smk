rule aggregate:
    input:
        lambda wildcards: run_tables(wildcards.table),
    output:
        LAYOUT.aggregate,
    log:
        LAYOUT.log("aggregate/{table}"),
    wildcard_constraints:
        table="|".join(TABLES),
    shell:
        "vitprobe aggregate --table {wildcards.table} --out {output} {input} > {log} 2>&1"
