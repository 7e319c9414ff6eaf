# Runs whose weights are imported (models.<alias>.weights: init, timm, a file or URL) have one
# checkpoint, epoch 0, written by `vitprobe import-weights` instead of training; every probe
# reads it like a trained checkpoint. A weights file is an input: replacing it reruns the import.
# Rule train could write the same epoch-0 checkpoint; for these runs this rule is the one.
ruleorder: import_weights > train


rule import_weights:
    input:
        lambda wildcards: import_inputs(wildcards.run),
    output:
        LAYOUT.checkpoint.format(run="{run}", epoch=0),
    log:
        LAYOUT.log("import_weights/{run}"),
    wildcard_constraints:
        run=runs_regex(PLAN.imported_runs),
    params:
        **tracked(run_train_spec, train_keys()),
        spec=train_spec,
        download="--download" if config["data"]["download"] else "",
    shell:
        "vitprobe import-weights --spec {params.spec:q} {params.download} --out {output} > {log} 2>&1"
