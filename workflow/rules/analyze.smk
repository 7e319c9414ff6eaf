# One job per (run, checkpoint epoch) and probe; each writes a per-run Parquet table.
rule hessian:
    input:
        checkpoint=paths.CHECKPOINT,
        data=data_ready(),
    output:
        probe_pattern("hessian"),
    params:
        vitprobe=VITPROBE,
        device=config["device"],
        spec=probe_spec("hessian"),
    log:
        "logs/hessian/{run}_e{epoch}.log",
    shell:
        "{params.vitprobe} hessian --spec {params.spec:q} --device {params.device}"
        " --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"


rule evaluate:
    input:
        checkpoint=paths.CHECKPOINT,
        data=data_ready(),
    output:
        probe_pattern("eval"),
    params:
        vitprobe=VITPROBE,
        device=config["device"],
        spec=probe_spec("eval"),
    log:
        "logs/eval/{run}_e{epoch}.log",
    shell:
        "{params.vitprobe} evaluate --spec {params.spec:q} --device {params.device}"
        " --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"
