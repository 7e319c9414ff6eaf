# One job per (run, checkpoint epoch) and configured probe (vitprobe.catalog.PROBES); each
# writes its per-run Parquet tables, named: `--out TABLE=PATH`. A probe with `shards: S > 1`
# (a shardable one, `Probe.shardable` in its vitprobe.probes module) runs as S jobs `<rule>_shard` over disjoint parts
# of its work, writing under the run's shards/ folder, and `<rule>` merges their tables.
for _probe in PLAN.probes:
    _shards = PLAN.shards(_probe)
    _rule = PROBES[_probe].rule_name

    rule:
        name:
            _rule if _shards == 1 else f"{_rule}_shard"
        input:
            **probe_extra_inputs(_probe),
            checkpoint=LAYOUT.checkpoint,
            data=run_data_ready,
        output:
            **{t: probe_pattern(t, _shards) for t in PROBES[_probe].table_names},
        log:
            LAYOUT.log(f"{_rule}/{{run}}_e{{epoch}}" + ("" if _shards == 1 else f".shard{{shard}}of{_shards}")),
        threads: job_threads
        resources:
            **probe_resources(_probe),
        params:
            **probe_params(_probe),
            outs=lambda wildcards, output: named_args("--out", output),
            shard=shard_arg(_shards),
        shell:
            "vitprobe {params.probe} --spec {params.spec:q} --device {params.device}"
            " --checkpoint {input.checkpoint} {params.outs}{params.shard} > {log} 2>&1"

    if _shards > 1:

        rule:
            name:
                _rule
            input:
                **{t: shard_files(t, _shards) for t in PROBES[_probe].table_names},
            output:
                **{t: probe_pattern(t) for t in PROBES[_probe].table_names},
            log:
                LAYOUT.log(f"{_rule}/{{run}}_e{{epoch}}.merge"),
            params:
                **{k: v for k, v in probe_params(_probe).items() if k != "device"},
                shards=lambda wildcards, input: named_args("--shard", input),
                outs=lambda wildcards, output: named_args("--out", output),
            shell:
                "vitprobe merge --probe {params.probe} --spec {params.spec:q} {params.shards} {params.outs}"
                " > {log} 2>&1"
