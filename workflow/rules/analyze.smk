# One job per (run, checkpoint epoch) and configured probe (vitprobe.catalog.PROBES); each
# writes its per-run Parquet tables, named: `--out TABLE=PATH`.
for _probe in PLAN.probes:

    rule:
        name:
            PROBES[_probe].rule_name
        input:
            **probe_extra_inputs(_probe),
            checkpoint=LAYOUT.checkpoint,
            data=run_data_ready,
        output:
            **{t: probe_pattern(t) for t in PROBES[_probe].tables},
        log:
            LAYOUT.log(f"{PROBES[_probe].rule_name}/{{run}}_e{{epoch}}"),
        threads: job_threads
        resources:
            **probe_resources(_probe),
        params:
            **probe_params(_probe),
            outs=lambda wildcards, output: named_args("--out", output),
        shell:
            "vitprobe {params.probe} --spec {params.spec:q} --device {params.device}"
            " --checkpoint {input.checkpoint} {params.outs} > {log} 2>&1"
