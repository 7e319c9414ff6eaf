# One job per run; it writes every checkpoint epoch. The resume state in
# <results>/runs/<run>/.train/ is deliberately not an output: Snakemake deletes the outputs
# of failed jobs, and a rerun must resume from it. Live progress: `tail -f` the log.
# Runs with imported weights (models.<alias>.weights) are not trained: see weights.smk.
rule train:
    input:
        run_data_ready,
    output:
        **{f"e{e}": LAYOUT.checkpoint.format(run="{run}", epoch=e) for e in PLAN.checkpoint_epochs},
        log=LAYOUT.train_log,
    log:
        LAYOUT.log("train/{run}"),
    threads: job_threads
    resources:
        **train_resources(),
    params:
        device=config["device"],
        spec=train_spec,
        state_dir=train_state_dir,
        checkpoints=lambda wildcards, output: " ".join(
            f"--checkpoint {e}={output[f'e{e}']}" for e in PLAN.checkpoint_epochs
        ),
        tensorboard=lambda wildcards: (
            f"--tensorboard {LAYOUT.tensorboard.format(run=wildcards.run)}" if config["tensorboard"] else ""
        ),
    shell:
        "vitprobe train --spec {params.spec:q} --device {params.device} --state-dir {params.state_dir}"
        " {params.tensorboard} {params.checkpoints} --log {output.log} > {log} 2>&1"
