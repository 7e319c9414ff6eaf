"""Where every file of the pipeline lives, as format patterns (the Snakemake rules fill the
same patterns with wildcards). One definition, used by the rules and the package alike."""

RUN_DIR = "results/runs/{run}"
CHECKPOINT = RUN_DIR + "/ckpt/e{epoch}.pt"
TRAIN_LOG = RUN_DIR + "/train_log.parquet"
PROBE_TABLE = RUN_DIR + "/{table}_e{epoch}.parquet"
# Not a declared Snakemake output: Snakemake deletes the outputs of failed jobs, and the
# resume state must survive a failed or preempted job. One directory per training-spec
# hash: a run retrained after a config change starts afresh instead of resuming foreign state.
TRAIN_STATE_DIR = RUN_DIR + "/.train/{train_hash}"
AGGREGATE = "results/{table}.parquet"
FIGURE = "figures/{figure}.pdf"
DATA_READY = "{root}/{dataset}.ready.json"
