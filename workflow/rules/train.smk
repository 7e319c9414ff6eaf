# The training spec of a run, as a file: rule train's input. Snakemake compares these params
# key by key with the last run's (its reason names the keys that changed) and rewrites the
# file on a change, which reruns the training even when the change adds checkpoint files it
# has no record of (`train.epochs`, `train.checkpoint_epochs`).
rule train_spec:
    output:
        LAYOUT.train_spec,
    params:
        **tracked(run_train_spec, train_keys()),
    run:
        write_spec(output[0], run_train_spec(wildcards))


# One job per run; it writes every checkpoint epoch. The resume state in
# <results>/runs/<run>/.train/ is deliberately not an output: Snakemake deletes the outputs
# of failed jobs, and a rerun must resume from it. Live progress: `tail -f` the log.
# Runs with imported weights (models.<alias>.weights) are not trained: see weights.smk.
rule train:
    input:
        data=run_data_ready,
        spec=LAYOUT.train_spec,
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
        state_dir=train_state_dir,
        checkpoints=lambda wildcards, output: " ".join(
            f"--checkpoint {e}={output[f'e{e}']}" for e in PLAN.checkpoint_epochs
        ),
        tensorboard=lambda wildcards: (
            f"--tensorboard {LAYOUT.tensorboard.format(run=wildcards.run)}" if config["tensorboard"] else ""
        ),
    shell:
        "vitprobe train --spec @{input.spec:q} --device {params.device} --state-dir {params.state_dir}"
        " {params.tensorboard} {params.checkpoints} --log {output.log} > {log} 2>&1"
