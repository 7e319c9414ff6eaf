"""Parquet tables: the one definition of every table's columns, dtypes and units, and the
functions that write per-run tables and aggregate them.

Every row carries the run's grid columns (dataset, model, kernel_size, fraction, seed, epoch)
and provenance (vitprobe version, git commit, config hash), so a user needs nothing but
`pd.read_parquet("results/<table>.parquet")`.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vitprobe import __version__
from vitprobe.atomic import atomic_path
from vitprobe.errors import VitprobeError, first_line


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pa.DataType
    unit: str
    doc: str


GRID_COLUMNS = [
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

TABLES: dict[str, list[Column]] = {
    "train_log": [
        Column("step", pa.int64(), "steps", "optimizer steps done at the end of the epoch"),
        Column("train_loss", pa.float64(), "nats", "mean training loss over the epoch (augmented data, soft targets)"),
        Column("lr", pa.float64(), "", "learning rate at the last step of the epoch"),
        Column("test_error", pa.float64(), "%", "test error at the end of the epoch (NaN if not evaluated)"),
        Column("test_nll", pa.float64(), "nats", "test NLL at the end of the epoch (NaN if not evaluated)"),
        Column("seconds", pa.float64(), "s", "wall time of the epoch (training only)"),
        Column("images_per_s", pa.float64(), "1/s", "training throughput over the epoch"),
    ],
    "eval": [
        Column("error", pa.float64(), "%", "top-1 error on the clean test set"),
        Column("nll_test", pa.float64(), "nats", "mean NLL on the clean test set"),
        Column("nll_train", pa.float64(), "nats", "mean NLL (soft targets) on the augmented training set, eval mode"),
        Column("ece", pa.float64(), "", "expected calibration error on the test set, 10 equal-width bins"),
        Column("n_test", pa.int64(), "images", "test images evaluated"),
        Column("n_train", pa.int64(), "images", "augmented training images evaluated"),
    ],
    "hessian": [
        Column("batch", pa.int64(), "", "mini-batch index (augmented training images)"),
        Column("rank", pa.int64(), "", "1 = largest |eigenvalue| of that batch's Hessian"),
        Column("eigenvalue", pa.float64(), "", "eigenvalue of the Hessian of NLL + wd/2·‖θ‖² (sign kept)"),
        Column("batch_size", pa.int64(), "images", "images in the mini-batch"),
        Column("method", pa.string(), "", "eigensolver backend (block, lanczos, power, pyhessian)"),
        Column("n_hvp", pa.int64(), "", "Hessian-vector products the solver used for this batch"),
    ],
    "hessian_summary": [
        Column("n_batches", pa.int64(), "", "mini-batches whose spectra are pooled"),
        Column("n_eigenvalues", pa.int64(), "", "eigenvalues pooled (n_batches · k)"),
        Column("nep", pa.float64(), "", "NEP: share of the pooled eigenvalues that are negative, in [0, 1]"),
        Column("ape", pa.float64(), "", "APE: mean of the pooled positive eigenvalues (NaN if none)"),
        Column("lambda_max", pa.float64(), "", "mean over batches of the batch's largest (signed) eigenvalue"),
        Column("trace", pa.float64(), "", "Hutchinson estimate of tr(H), H = H_NLL + wd·I (mean of vᵀHv, Rademacher v, over batches; NaN if not computed); includes wd·n_params"),
        Column("trace_nll", pa.float64(), "", "the same estimate of tr(H_NLL), the NLL's Hessian alone: trace − wd·n_params (vᵀv = n_params for Rademacher v)"),
        Column("trace_std_error", pa.float64(), "", "standard error of that mean over all samples, the same for trace and trace_nll (NaN below 2 samples)"),
        Column("trace_samples", pa.int64(), "", "Rademacher vectors per batch (0 = trace not computed)"),
        Column("n_params", pa.int64(), "", "parameters the Hessian is taken over (all with requires_grad), its dimension"),
        Column("batch_size", pa.int64(), "images", "images per mini-batch"),
        Column("method", pa.string(), "", "eigensolver backend (block, lanczos, power, pyhessian)"),
    ],
    "fourier": [
        Column("map_index", pa.int64(), "", "feature map position in forward order (0 = embedding/stem)"),
        Column("map_name", pa.string(), "", "module path of the map, e.g. blocks.3.msa, layer2.1"),
        Column("kind", pa.string(), "", "embed, stem, msa, mlp, conv, pool, mixer_token, mixer_channel"),
        Column("depth", pa.float64(), "", "normalized depth of the map, in [0, 1]"),
        Column("freq", pa.float64(), "π rad", "frequency along the spectrum's diagonal, 0 .. 1 - 2/H"),
        Column("log_amplitude", pa.float64(), "", "relative log amplitude: log amplitude minus its value at frequency 0"),
        Column("high_freq_delta", pa.float64(), "", "the map's log_amplitude at its highest frequency (Δ log amplitude)"),
        Column("n_images", pa.int64(), "images", "test images the maps were computed on"),
    ],
    "variance": [
        Column("map_index", pa.int64(), "", "feature map position in forward order (0 = embedding/stem)"),
        Column("map_name", pa.string(), "", "module path of the map"),
        Column("kind", pa.string(), "", "embed, stem, msa, mlp, conv, pool, mixer_token, mixer_channel"),
        Column("depth", pa.float64(), "", "normalized depth of the map, in [0, 1]"),
        Column("variance", pa.float64(), "", "variance over spatial positions (Bessel), mean over images and channels"),
        Column("n_images", pa.int64(), "images", "test images the maps were computed on"),
    ],
    "robustness": [
        Column("freq", pa.float64(), "π rad", "centre f of the noise's frequency band (Chebyshev radius in [f-w, f+w])"),
        Column("accuracy", pa.float64(), "%", "test accuracy with the band-limited noise added"),
        Column("clean_accuracy", pa.float64(), "%", "test accuracy without noise"),
        Column("delta_accuracy", pa.float64(), "pp", "accuracy - clean_accuracy"),
        Column("eps", pa.float64(), "", "noise amplitude before band filtering, in [0, 1] pixel units"),
        Column("width", pa.float64(), "π rad", "half width w of the frequency band"),
        Column("n_images", pa.int64(), "images", "test images evaluated"),
    ],
    "landscape": [
        Column("style", pa.string(), "", "the definition: release (the paper's code) or li2018"),
        Column("grid", pa.string(), "", "1d (a line along one direction) or 2d (a plane along two)"),
        Column("x", pa.float64(), "", "coordinate along the first random direction"),
        Column("y", pa.float64(), "", "coordinate along the second direction (0 on the 1d line)"),
        Column("nll", pa.float64(), "nats", "mean NLL on the augmented training batches"),
        Column("l2", pa.float64(), "", "release: Σ_p ‖p‖₂ over parameter tensors; li2018: ‖θ'‖² at that point"),
        Column("loss", pa.float64(), "nats", "release: nll + wd · l2; li2018: nll + wd/2 · l2"),
    ],
    "corruption": [
        Column("corruption", pa.string(), "", "CIFAR-C corruption, e.g. gaussian_noise (vitprobe.corruptions.CORRUPTIONS)"),
        Column("severity", pa.int64(), "", "corruption severity, 1 (mild) .. 5 (strong)"),
        Column("accuracy", pa.float64(), "%", "top-1 accuracy on the corrupted test images"),
        Column("nll", pa.float64(), "nats", "mean NLL on the corrupted test images"),
        Column("clean_accuracy", pa.float64(), "%", "top-1 accuracy on the same test images, uncorrupted"),
        Column("clean_nll", pa.float64(), "nats", "mean NLL on the same test images, uncorrupted"),
        Column("n_images", pa.int64(), "images", "test images per (corruption, severity)"),
    ],
    "search": [
        Column("step", pa.int64(), "", "0 = the base model, then one per candidate tried, in order"),
        Column("run_id", pa.string(), "", "the candidate's run id (its model name encodes the MSA layout)"),
        Column("msa_blocks", pa.string(), "", "MSA blocks per stage c1..cn, e.g. '0,0,1,2'"),
        Column("stage", pa.int64(), "", "stage (1..n) the step added an MSA block to; 0 for the base"),
        Column("accuracy", pa.float64(), "%", "accuracy on the held-out split of the training set (never the test set)"),
        Column("best_before", pa.float64(), "%", "best held-out accuracy before this step (NaN for the base)"),
        Column("kept", pa.bool_(), "", "the step's layout became the current best (the base always is)"),
        Column("n_holdout", pa.int64(), "images", "held-out training images the accuracy is measured on"),
    ],
}

def schema(table: str) -> pa.Schema:
    """The full Arrow schema of a table: grid columns, its own columns, provenance."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; allowed: {', '.join(TABLES)}")
    cols = GRID_COLUMNS + TABLES[table] + PROVENANCE_COLUMNS
    return pa.schema([pa.field(c.name, c.dtype) for c in cols])


@functools.cache
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def write_run_table(rows: pd.DataFrame, table: str, path, *, run: dict, config_hash: str,
                    epoch: int | None = None, weights: str = "trained") -> None:
    """Write one run's rows atomically, adding grid and provenance columns.

    `epoch` is the checkpoint epoch of probe tables; train_log rows carry their own epoch.
    """
    df = rows.copy()
    for key, value in run.items():
        df[key] = value
    if epoch is not None:
        df["epoch"] = epoch
    df["vitprobe_version"] = __version__
    df["git_commit"] = git_commit()
    df["config_hash"] = config_hash
    df["weights"] = weights
    target = schema(table)
    missing = [n for n in target.names if n not in df.columns]
    if missing:
        raise ValueError(f"table {table!r}: rows lack columns {missing}")
    arrow = pa.Table.from_pandas(df[target.names], schema=target, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


class TableError(VitprobeError, ValueError):
    """A per-run table file is missing, empty, unreadable or has another schema than its table."""


def read_run_table(path, table: str) -> pa.Table:
    """Read a per-run file and check it has exactly the table's schema; if not, a one-line
    TableError names the file, the table and what is wrong (e.g. the missing columns)."""
    expected, fix = schema(table), "delete it and rerun the job that writes it"
    if not os.path.isfile(path):
        raise TableError(f"{path}: file of table {table!r} does not exist; rerun the job that writes it")
    if os.path.getsize(path) == 0:
        raise TableError(f"{path}: file of table {table!r} is empty (0 bytes), probably left by a killed "
                         f"writer; {fix}")
    try:
        got = pq.read_table(path)
    except Exception as exc:
        raise TableError(f"{path}: not a readable Parquet file of table {table!r} ({first_line(exc)}); {fix}") from exc
    found = got.schema.remove_metadata()
    if found.names == expected.names[:-1] and expected.names[-1] == "weights":
        # written before the weights column existed: every such run was trained by vitprobe
        got = got.append_column(expected.field("weights"), pa.array(["trained"] * got.num_rows, pa.string()))
        found = got.schema.remove_metadata()
    if not found.equals(expected):
        missing = [n for n in expected.names if n not in found.names]
        extra = [n for n in found.names if n not in expected.names]
        types = [f"{f.name} is {f.type}, not {expected.field(f.name).type}" for f in found
                 if f.name in expected.names and f.type != expected.field(f.name).type]
        problems = [f"{what}: {', '.join(items)}" for what, items in
                    [("missing columns", missing), ("unexpected columns", extra), ("wrong types", types)] if items]
        raise TableError(f"{path}: schema does not match table {table!r}: "
                         f"{'; '.join(problems) or 'columns in another order or with other attributes'}; "
                         f"it was written by another vitprobe version or other code: {fix}")
    return got


def aggregate(paths, table: str) -> pd.DataFrame:
    """Concatenate per-run files of one table (validated) into one DataFrame."""
    parts = [read_run_table(p, table) for p in paths]
    if not parts:
        return schema(table).empty_table().to_pandas()
    return pa.concat_tables(parts).to_pandas()


def write_aggregate(paths, table: str, out) -> int:
    df = aggregate(paths, table)
    arrow = pa.Table.from_pandas(df, schema=schema(table), preserve_index=False)
    with atomic_path(out) as tmp:
        pq.write_table(arrow, tmp)
    return len(df)


def markdown_docs() -> str:
    """The README's table reference, generated from the definitions above."""
    lines = []
    shared = [("grid (every table)", GRID_COLUMNS), ("provenance (every table)", PROVENANCE_COLUMNS)]
    for title, cols in [*shared, *((f"`results/{t}.parquet`", c) for t, c in TABLES.items())]:
        lines += [f"**{title}**", "", "| column | dtype | unit | meaning |", "|---|---|---|---|"]
        lines += [f"| {c.name} | {c.dtype} | {c.unit} | {c.doc} |" for c in cols]
        lines.append("")
    return "\n".join(lines)
