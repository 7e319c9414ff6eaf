"""The Hessian probe: the top-k eigenvalues (by magnitude, sign kept) of the Hessian of
NLL + wd/2·‖θ‖² on mini-batches of augmented training images, with NEP, APE, λ_max and
Hutchinson's trace over them.

The subpackage, bottom up: `products` (Hessian-vector products, one mini-batch or B at once),
`solvers` (`top_eigenvalues`: lanczos, power, pyhessian, block), `block` (the warm-started
block solver over B mini-batches), `trace` (Hutchinson's trace, spectral density by
stochastic Lanczos quadrature), `summary` (NEP, APE and the pooled trace statistics). This
module is the probe: its tables, `compute`, the pipeline's `run` and the `merge` of shards.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from vitprobe.columns import Column, bounds
from vitprobe.config.job import JobSpec
from vitprobe.errors import ConfigError, VitprobeError
from vitprobe.probes import Probe
from vitprobe.probes.hessian.summary import intervals as summary_intervals
from vitprobe.probes.hessian.summary import spectrum_summary

PROBE = Probe(
    "hessian", "Hessian max-eigenvalue spectrum of a checkpoint, with NEP, APE and trace (hessian_summary)",
    tables={
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
            Column("trace_samples", pa.int64(), "", "Hessian-vector products per batch of the trace estimate: "
                   "Rademacher vectors (hutchinson) or Hutch++'s products (0 = trace not computed)"),
            Column("trace_estimator", pa.string(), "", "which estimator wrote trace: hutchinson (the mean of vᵀHv; "
                   "its standard error over all samples) or hutchpp (Hutch++, Meyer et al. 2021: one estimate per "
                   "batch, the standard error over the batches; trace_nll = trace − wd·n_params holds in "
                   "expectation, not sample by sample); empty without a trace"),
            Column("n_params", pa.int64(), "", "parameters the Hessian is taken over (all with requires_grad), its dimension"),
            Column("batch_size", pa.int64(), "images", "images per mini-batch"),
            Column("method", pa.string(), "", "eigensolver backend (block, lanczos, power, pyhessian)"),
        ],
    },
    reads=("train",), shardable=True, exact=True,
    tiny={"n_batches": 2, "batch_size": 8, "k": 3, "trace_samples": 3},
    intervals={"hessian_summary": ("hessian", [
        *bounds("nep", "expanded percentile bootstrap over the mini-batches (whole batches resampled, the share "
                "pooled per resample); NaN below 5 mini-batches"),
        *bounds("ape", "the same bootstrap over the mini-batches"),
        *bounds("lambda_max", "the same bootstrap over the mini-batches"),
        *bounds("trace", "normal interval, trace ± z·trace_std_error"),
        *bounds("trace_nll", "normal interval, trace_nll ± z·trace_std_error"),
    ])})


def batch_count(settings: dict, n_train: int) -> int:
    """Mini-batches of a Hessian job: `n_batches`, or with `n_batches: all` every whole
    mini-batch of the run's training set (n_train // batch_size)."""
    if settings["n_batches"] != "all":
        return int(settings["n_batches"])
    if n_train < settings["batch_size"]:
        raise VitprobeError(f"probes.hessian.n_batches: all gives no mini-batch: the run's training set has "
                            f"{n_train} images, fewer than probes.hessian.batch_size ({settings['batch_size']})")
    return n_train // settings["batch_size"]


def shard_range(n_batches: int, shard: tuple[int, int] | None) -> range:
    """Mini-batch indices of shard i of s: [i·n // s, (i+1)·n // s), disjoint, covering 0..n-1."""
    if shard is None:
        return range(n_batches)
    i, s = shard
    if not 0 <= i < s:
        raise VitprobeError(f"--shard {i}/{s}: the shard index must be in 0..{s - 1}")
    if s > n_batches:
        raise VitprobeError(f"probes.hessian.shards: {s} shards exceed the {n_batches} mini-batches; allowed: "
                            f"1..{n_batches}")
    return range(i * n_batches // s, (i + 1) * n_batches // s)


def check(settings: dict, config: dict) -> None:
    """Before any job: Hutch++ takes its products in threes."""
    if settings["trace_estimator"] == "hutchpp" and settings["trace_samples"] % 3:
        raise ConfigError(f"probes.hessian.trace_samples: {settings['trace_samples']} is not a multiple of 3, which "
                          f"trace_estimator hutchpp needs; allowed: 0, 3, 6, ...")


def headline(eig: pd.DataFrame, summary: pd.DataFrame) -> str:
    s = summary.iloc[0]
    trace = "trace not computed"
    if s["trace_samples"]:
        trace = (f"trace {s['trace']:.4g} ± {s['trace_std_error']:.2g} (NLL alone {s['trace_nll']:.4g}, "
                 f"wd·n_params {s['trace'] - s['trace_nll']:.4g})")
    return f"NEP {s['nep']:.3f}, APE {s['ape']:.4g}, λ_max {s['lambda_max']:.4g}, {trace}"


def merge(job: JobSpec, parts: dict[str, list[pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tables one job writes, from its shards' tables (`parts`: table -> the shards'
    DataFrames, with their grid and provenance columns): the hessian rows concatenated in
    batch order; the summary recomputed from the pooled eigenvalues, its trace statistics
    pooled from the shards' (mean, standard error, sample count) exactly as if all samples
    were pooled. The shards must be of one checkpoint and config and cover the batches
    0..n-1 once each."""
    wd = job.train["weight_decay"]
    eig = pd.concat(parts["hessian"], ignore_index=True)
    summ = pd.concat(parts["hessian_summary"], ignore_index=True)
    for what, df in (("hessian", eig), ("hessian_summary", summ)):
        for col in ("epoch", "config_hash"):
            if df[col].nunique() > 1:
                raise VitprobeError(f"{what} shards differ in {col} ({', '.join(map(str, df[col].unique()))}): they "
                                    f"are not of one checkpoint and config; rerun the shard jobs")
    if eig["config_hash"].iloc[0] != job.hash:
        raise VitprobeError(f"the hessian shards were computed for another training config (hash "
                            f"{eig['config_hash'].iloc[0]}, this spec's {job.hash}); rerun the shard jobs")
    batches = sorted(eig["batch"].unique())
    if batches != list(range(len(batches))) or eig.duplicated(["batch", "rank"]).any() or \
            summ["n_batches"].sum() != len(batches):
        raise VitprobeError(f"the {len(parts['hessian'])} hessian shards do not cover the mini-batches 0..n-1 once "
                            f"each (got {len(batches)} distinct batches, {int(summ['n_batches'].sum())} in the "
                            f"summaries); rerun the shard jobs")
    if summ["trace_samples"].nunique() > 1 or summ["n_params"].nunique() > 1 or \
            summ["trace_estimator"].nunique() > 1:
        raise VitprobeError("hessian_summary shards differ in trace_samples, trace_estimator or n_params; rerun the "
                            "shard jobs")
    estimator = summ["trace_estimator"].iloc[0]
    eig = eig.sort_values(["batch", "rank"], kind="stable").reset_index(drop=True)
    n_params, samples = int(summ["n_params"].iloc[0]), int(summ["trace_samples"].iloc[0])
    spectra = [g["eigenvalue"].to_numpy() for _, g in eig.groupby("batch", sort=True)]
    summary = {**spectrum_summary(spectra, [], weight_decay=wd, n_params=n_params),
               "batch_size": int(summ["batch_size"].iloc[0]), "method": summ["method"].iloc[0],
               "trace_estimator": estimator}
    if samples:  # the pooled units: every sample (hutchinson), every batch's estimate (hutchpp)
        count = summ["n_batches"].to_numpy() * (1 if estimator == "hutchpp" else samples)
        mean = float((summ["trace"].to_numpy() * count).sum() / count.sum())
        m2 = np.nan_to_num(summ["trace_std_error"].to_numpy() ** 2 * count * (count - 1)) + \
            count * (summ["trace"].to_numpy() - mean) ** 2  # per shard: Σ (sample − pooled mean)²
        total = int(count.sum())
        summary.update(trace=mean, trace_nll=mean - wd * n_params, trace_samples=samples,
                       trace_std_error=float(np.sqrt(m2.sum() / (total - 1) / total)) if total > 1 else float("nan"))
    names = [c.name for c in PROBE.tables["hessian"]]
    return eig[names], pd.DataFrame([summary])


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """hessian_summary with its interval columns, from the hessian table's eigenvalues
    (`summary.intervals`)."""
    return summary_intervals(rows, units, ci)

