rule prepare_data:
    output:
        data_ready(),
    params:
        download="--download" if config["data"]["download"] else "",
        synthetic=as_json(config["data"]["synthetic"]),
    log:
        "logs/prepare_data.log",
    shell:
        "{VITPROBE} prepare-data --dataset {config[data][dataset]} --root {config[data][root]}"
        " {params.download} --synthetic {params.synthetic:q} --out {output} > {log} 2>&1"
