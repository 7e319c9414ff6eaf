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


if "corruption" in config["probes"]:

    rule prepare_corruptions:
        output:
            CORRUPTIONS_READY.format(folder=corruption_folder()),
        log:
            LAYOUT.log("prepare_corruptions"),
        params:
            dataset=config["data"]["dataset"],
            root=lambda wildcards: config["data"]["root"],
            folder=lambda wildcards, output: output[0].removesuffix(CORRUPTIONS_READY.format(folder="")),
            extra="--extra" if config["probes"]["corruption"]["extra"] else "",
            download="--download" if config["probes"]["corruption"]["download"] else "",
        shell:
            "vitprobe prepare-corruptions --dataset {params.dataset} --root {params.root} --folder {params.folder}"
            " {params.extra} {params.download} --out {output} > {log} 2>&1"
