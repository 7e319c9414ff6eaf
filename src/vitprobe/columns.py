"""Table columns: the `Column` definition, the grid and provenance columns every table
carries, and the columns of the two tables no probe writes (training's log, the build-up
search). Each probe declares its own tables' columns in its module (`vitprobe.probes`);
`vitprobe.results` puts them together. Imports nothing of vitprobe."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pa.DataType
    unit: str
    doc: str


def bounds(name: str, how: str, unit: str = "") -> list[Column]:
    """The two interval columns of `name` in an aggregated table: `<name>_low`, `<name>_high`
    (`how`: the method, for the table reference)."""
    return [Column(f"{name}_low", pa.float64(), unit, f"lower end of the interval of {name}: {how}"),
            Column(f"{name}_high", pa.float64(), unit, f"upper end of the interval of {name}")]


GRID_COLUMNS = [
    Column("run", pa.string(), "", "run id, <dataset>-<model>-k<kernel_size>-f<fraction>-s<seed> (its folder: results/runs/<run>/): the key to join tables on, with epoch"),
    Column("dataset", pa.string(), "", "the config's data.dataset: cifar10, cifar100, fashion_mnist, fashion_mnist_subset or synthetic"),
    Column("model", pa.string(), "", "model name as in config.yaml (a registered model or an alias)"),
    Column("kernel_size", pa.int64(), "tokens", "local-attention window side k (k x k); 0 = not a local-attention model"),
    Column("fraction", pa.float64(), "", "class-stratified share of the training set, in (0, 1]"),
    Column("seed", pa.int64(), "", "training seed"),
    Column("epoch", pa.int64(), "epochs", "epochs of training done: the checkpoint analyzed, or the epoch logged (0 = initialization)"),
]
PROVENANCE_COLUMNS = [
    Column("vitprobe_version", pa.string(), "", "package version that wrote the row"),
    Column("git_commit", pa.string(), "", "git commit of the working tree that wrote the row ('' if unknown)"),
    Column("config_hash", pa.string(), "", "hash of the run's training spec (same value as in its checkpoints)"),
    Column("weights", pa.string(), "", "where the weights come from: trained (by vitprobe), or imported (models.<alias>.weights): init, timm, or the weights file's name"),
]

#: The per-run table training writes (not a probe's).
TRAIN_LOG = "train_log"
TRAIN_LOG_COLUMNS = [
    Column("step", pa.int64(), "steps", "optimizer steps done at the end of the epoch"),
    Column("train_loss", pa.float64(), "nats", "mean training loss over the epoch (augmented data, soft targets)"),
    Column("lr", pa.float64(), "", "learning rate at the last step of the epoch"),
    Column("test_error", pa.float64(), "%", "test error at the end of the epoch (NaN if not evaluated)"),
    Column("test_nll", pa.float64(), "nats", "test NLL at the end of the epoch (NaN if not evaluated)"),
    Column("seconds", pa.float64(), "s", "wall time of the epoch (training only)"),
    Column("images_per_s", pa.float64(), "1/s", "training throughput over the epoch"),
]

#: The table of the build-up search (one per workflow, written by `vitprobe search-table`).
SEARCH_TABLE = "search"
SEARCH_COLUMNS = [
    Column("step", pa.int64(), "", "0 = the base model, then one per candidate tried, in order"),
    Column("msa_blocks", pa.string(), "", "MSA blocks per stage c1..cn, e.g. '0,0,1,2'"),
    Column("stage", pa.int64(), "", "stage (1..n) the step added an MSA block to; 0 for the base"),
    Column("accuracy", pa.float64(), "%", "accuracy on the held-out split of the training set (never the test set)"),
    Column("best_before", pa.float64(), "%", "best held-out accuracy before this step (NaN for the base)"),
    Column("kept", pa.bool_(), "", "the step's layout became the current best (the base always is)"),
    Column("n_holdout", pa.int64(), "images", "held-out training images the accuracy is measured on"),
]
