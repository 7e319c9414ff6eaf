# The AlterNet build-up rule as a search (vitprobe.search.walk): every decision is a checkpoint
# job whose output names the next candidate, so the DAG grows one candidate at a time; a
# rerun finds the finished steps and resumes. Candidates are ordinary runs (rule train),
# scored on a held-out split of the training set; their tables (train_log and each
# configured probe's) are aggregated apart from the grid's, in <results>/search/<table>.parquet.
if PLAN.search:

    rule search_score:
        input:
            checkpoint=LAYOUT.checkpoint.format(run="{run}", epoch=PLAN.search["epoch"]),
            data=data_ready(),
        output:
            LAYOUT.search_score.format(run="{run}", epoch=PLAN.search["epoch"]),
        log:
            LAYOUT.log("search/score_{run}"),
        threads: job_threads
        resources:
            **probe_resources("search_score"),
        params:
            **tracked(run_train_spec, train_keys()),
            device=config["device"],
            spec=train_spec,
        shell:
            "vitprobe search-score --spec {params.spec:q} --device {params.device}"
            " --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"

    checkpoint search_step:
        input:
            unpack(search_step_inputs),
        output:
            LAYOUT.search_step,
        log:
            LAYOUT.log("search/step_{step}"),
        wildcard_constraints:
            step=r"\d+",
        params:
            spec=as_json(PLAN.search),
            scores=lambda wildcards, input: " ".join(f"--score {p}" for p in input.scores),
        shell:
            "vitprobe search-step --spec {params.spec:q} {params.scores} --out {output} > {log} 2>&1"

    rule search_table:
        input:
            search_last_step,
        output:
            LAYOUT.search_table,
        log:
            LAYOUT.log("search/table"),
        shell:
            "vitprobe search-table --state {input} --out {output} > {log} 2>&1"

    rule search_aggregate:
        input:
            lambda wildcards: run_tables(wildcards.table, search_runs()),
        output:
            LAYOUT.search_aggregate,
        log:
            LAYOUT.log("search/aggregate_{table}"),
        wildcard_constraints:
            table="|".join(TABLES),
        shell:
            "vitprobe aggregate --table {wildcards.table} --out {output} {input} > {log} 2>&1"

    # `snakemake search`: the search and its tables, also when no configured figure draws it.
    rule search:
        input:
            search_targets(),
