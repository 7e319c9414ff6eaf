# One job per run; it writes every checkpoint epoch. The resume state in
# results/runs/<run>/.train/ is deliberately not an output: Snakemake deletes the outputs
# of failed jobs, and a rerun must resume from it.
rule train:
    input:
        data_ready(),
    output:
        checkpoints=expand(paths.CHECKPOINT, run="{run}", epoch=PLAN.checkpoint_epochs),
        log=paths.TRAIN_LOG,
    params:
        vitprobe=VITPROBE,
        device=config["device"],
        spec=train_spec,
        state_dir=train_state_dir,
    threads: job_threads
    resources:
        **train_resources(),
    log:
        "logs/train/{run}.log",
    shell:
        "{params.vitprobe} train --spec {params.spec:q} --device {params.device} --state-dir {params.state_dir}"
        " --checkpoints {output.checkpoints} --log {output.log} > {log} 2>&1"
