# One job per (run, checkpoint epoch) and configured probe; each writes its per-run Parquet
# tables (the Hessian job also writes hessian_summary: NEP, APE, trace from the same batches).
for _probe in PLAN.probes:

    rule:
        name:
            probe_rule(_probe)
        input:
            checkpoint=LAYOUT.checkpoint,
            data=data_ready(),
        output:
            [probe_pattern(t) for t in tables_of(_probe)],
        params:
            **probe_params(_probe),
        threads: job_threads
        resources:
            **probe_resources(_probe),
        log:
            LAYOUT.log(f"{probe_rule(_probe)}/{{run}}_e{{epoch}}"),
        shell:
            "{VITPROBE} {params.probe} --spec {params.spec:q} --device {params.device}"
            " --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"
