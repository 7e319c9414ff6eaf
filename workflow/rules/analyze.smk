# One job per (run, checkpoint epoch) and probe; each writes a per-run Parquet table.
rule hessian:
    input:
        checkpoint=paths.CHECKPOINT,
        data=data_ready(),
    output:
        probe_pattern("hessian"),
    params:
        spec=probe_spec("hessian"),
    log:
        "logs/hessian/{run}_e{epoch}.log",
    shell:
        "{VITPROBE} hessian --spec {params.spec:q} --device {config[device]}"
        " --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        checkpoint=paths.CHECKPOINT,
        data=data_ready(),
    output:
        probe_pattern("eval"),
    params:
        spec=probe_spec("eval"),
    log:
        "logs/eval/{run}_e{epoch}.log",
    shell:
        "{VITPROBE} evaluate --spec {params.spec:q} --device {config[device]}"
        " --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"
