# One job per (run, checkpoint epoch) and probe; each writes a per-run Parquet table.
# The probes share one rule body: `vitprobe <probe>` with the probe's slice of the config.
# The Hessian job also writes hessian_summary (NEP, APE, trace) from the same mini-batches.
rule hessian:
    input:
        checkpoint=paths.CHECKPOINT,
        data=data_ready(),
    output:
        probe_pattern("hessian"),
        probe_pattern("hessian_summary"),
    params:
        **probe_params("hessian"),
    threads: job_threads
    resources:
        **probe_resources("hessian"),
    log:
        "logs/hessian/{run}_e{epoch}.log",
    shell:
        "{params.vitprobe} {params.probe} --spec {params.spec:q} --device {params.device}"
        " --checkpoint {input.checkpoint} --out {output} > {log} 2>&1"


use rule hessian as evaluate with:
    output:
        probe_pattern("eval"),
    params:
        **probe_params("eval"),
    resources:
        **probe_resources("eval"),
    log:
        "logs/eval/{run}_e{epoch}.log",


use rule hessian as fourier with:
    output:
        probe_pattern("fourier"),
    params:
        **probe_params("fourier"),
    resources:
        **probe_resources("fourier"),
    log:
        "logs/fourier/{run}_e{epoch}.log",


use rule hessian as variance with:
    output:
        probe_pattern("variance"),
    params:
        **probe_params("variance"),
    resources:
        **probe_resources("variance"),
    log:
        "logs/variance/{run}_e{epoch}.log",


use rule hessian as robustness with:
    output:
        probe_pattern("robustness"),
    params:
        **probe_params("robustness"),
    resources:
        **probe_resources("robustness"),
    log:
        "logs/robustness/{run}_e{epoch}.log",


use rule hessian as landscape with:
    output:
        probe_pattern("landscape"),
    params:
        **probe_params("landscape"),
    resources:
        **probe_resources("landscape"),
    log:
        "logs/landscape/{run}_e{epoch}.log",
