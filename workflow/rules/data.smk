rule prepare_data:
    output:
        data_ready(),
    log:
        LAYOUT.log("prepare_data"),
    params:
        dataset=config["data"]["dataset"],
        root=lambda wildcards, output: os.path.dirname(output[0]),
        download="--download" if config["data"]["download"] else "",
        synthetic=as_json(config["data"]["synthetic"]),
    shell:
        "vitprobe prepare-data --dataset {params.dataset} --root {params.root}"
        " {params.download} --synthetic {params.synthetic:q} --out {output} > {log} 2>&1"
