# One job per dataset a run uses; imagenet only checks its class-folder directory.
rule prepare_data:
    output:
        DATA_READY.format(root=config["data"]["root"], dataset="{dataset}"),
    log:
        LAYOUT.log("prepare_data/{dataset}"),
    wildcard_constraints:
        dataset="|".join(PLAN.datasets),
    params:
        dataset=lambda wildcards: wildcards.dataset,
        root=lambda wildcards, output: (
            config["data"]["imagenet_dir"] if wildcards.dataset == "imagenet" else os.path.dirname(output[0])
        ),
        download="--download" if config["data"]["download"] else "",
        synthetic=as_json(config["data"]["synthetic"]),
    shell:
        "vitprobe prepare-data --dataset {params.dataset} --root {params.root}"
        " {params.download} --synthetic {params.synthetic:q} --out {output} > {log} 2>&1"
