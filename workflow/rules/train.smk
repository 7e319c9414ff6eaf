# One job per run; it writes every checkpoint epoch. The resume state in
# <results>/runs/<run>/.train/ is deliberately not an output: Snakemake deletes the outputs
# of failed jobs, and a rerun must resume from it. Live progress: `tail -f` the log.
rule train:
    input:
        data_ready(),
    output:
        checkpoints=expand(LAYOUT.checkpoint, run="{run}", epoch=PLAN.checkpoint_epochs),
        log=LAYOUT.train_log,
    params:
        device=config["device"],
        spec=train_spec,
        state_dir=train_state_dir,
        tensorboard=lambda wildcards: f"--tensorboard {LAYOUT.tensorboard.format(run=wildcards.run)}"
        if config["tensorboard"]
        else "",
    threads: job_threads
    resources:
        **train_resources(),
    log:
        LAYOUT.log("train/{run}"),
    shell:
        "{VITPROBE} train --spec {params.spec:q} --device {params.device} --state-dir {params.state_dir}"
        " {params.tensorboard} --checkpoints {output.checkpoints} --log {output.log} > {log} 2>&1"
