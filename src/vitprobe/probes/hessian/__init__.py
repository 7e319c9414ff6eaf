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

import time
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from vitprobe import device as devices
from vitprobe.analysis.inputs import as_batches
from vitprobe.columns import Column, bounds
from vitprobe.config.job import JobSpec
from vitprobe.errors import ConfigError, VitprobeError
from vitprobe.models.losses import nll, trainable
from vitprobe.models.modes import eval_mode
from vitprobe.probes import Probe, no_log, no_progress
from vitprobe.probes.hessian.block import batches_at_once as resolve_batches_at_once
from vitprobe.probes.hessian.block import top_eigenvalues_batched
from vitprobe.probes.hessian.products import double_backward_attention, make_hvp, parameter_count
from vitprobe.probes.hessian.solvers import top_eigenvalues
from vitprobe.probes.hessian.summary import intervals as summary_intervals
from vitprobe.probes.hessian.summary import spectrum_summary
from vitprobe.probes.hessian.trace import TRACE_ESTIMATORS, hessian_trace, hutchpp

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


def _solve(model, batches, indices, *, k, weight_decay, loss, method, tol, seed, at_once, hvp, log):
    """(batch index, batch, values, info) for every mini-batch, `at_once` at a time with the
    block solver (warm-started lane by lane from the previous group), else one at a time."""
    if method != "block":
        for b, (x, y) in zip(indices, batches):
            values, info = top_eigenvalues(model, x, y, k=k, weight_decay=weight_decay, method=method, tol=tol,
                                           return_info=True, loss_fn=loss)
            yield b, (x, y), values, info
        return
    warm, group = None, []
    for b, batch in zip(indices, batches):
        group.append((b, batch))
        if len(group) < at_once and b != indices[-1]:
            continue
        t = time.perf_counter()
        values, info = top_eigenvalues_batched(model, [g[1] for g in group], k=k, weight_decay=weight_decay, tol=tol,
                                               seeds=[seed + g[0] for g in group], warm=warm, hvp=hvp, loss_fn=loss)
        seconds = (time.perf_counter() - t) / len(group)
        warm = info["vectors"]
        if not info["converged"].all():
            missed = [g[0] for g, ok in zip(group, info["converged"]) if not ok]
            log(f"batches {missed}: block solver did not reach tol {tol:g} within its step limit; values kept")
        for i, (bi, batch) in enumerate(group):
            yield bi, batch, values[i], {"n_hvp": int(info["n_hvp"][i]), "seconds": seconds}
        group = []


def compute(model, batches, *, k: int = 5, weight_decay: float = 0.0, loss: Callable | None = None,
            method: str = "lanczos", tol: float = 1e-3, trace_samples: int = 0, trace_estimator: str = "hutchinson",
            seed: int = 0, batches_at_once: int | str = 1, hvp: str = "double_backward", indices=None, log=no_log,
            progress=no_progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables hessian and hessian_summary: the top-k eigenvalues (by magnitude, sign kept) of
    the Hessian of loss + weight_decay/2·‖θ‖² on each mini-batch of `batches` ((inputs,
    targets) pairs, or one pair; targets class indices or soft targets), and NEP, APE, λ_max
    and (with `trace_samples`) the trace over them, by `trace_estimator`: hutchinson
    (`trace_samples` Rademacher vectors per batch) or hutchpp (Hutch++ from `trace_samples`
    products per batch, a multiple of 3). `loss`: any
    `loss(outputs, targets) -> scalar` (default: vitprobe's NLL). `indices`: the mini-batches'
    numbers in the table (default 0, 1, ...; a shard's are its range); batch b's random
    vectors are seeded `seed + b`. `method: block` solves `batches_at_once` mini-batches at a
    time (`hvp`: their product, double backward or forward-over-reverse)."""
    if trace_estimator not in TRACE_ESTIMATORS:
        raise ValueError(f"trace_estimator {trace_estimator!r}; allowed: {', '.join(TRACE_ESTIMATORS)}")
    if trace_estimator == "hutchpp" and trace_samples % 3:
        raise ValueError(f"trace_samples = {trace_samples}: Hutch++ needs a multiple of 3 products (0 skips the "
                         f"trace)")
    loss = nll if loss is None else loss
    batches = as_batches(batches) if isinstance(batches, (tuple, list)) else batches
    params = trainable(model)
    dev = params[0].device if params else None
    batches = ((x.to(dev), y.to(dev)) for x, y in batches)
    indices = list(indices) if indices is not None else None
    if indices is None:
        batches = list(batches)
        indices = list(range(len(batches)))
    at_once = resolve_batches_at_once(batches_at_once, devices.of(dev, model)) if method == "block" else 1
    rows, spectra, traces = [], [], []
    solved = _solve(model, batches, indices, k=k, weight_decay=weight_decay, loss=loss, method=method, tol=tol,
                    seed=seed, at_once=at_once, hvp=hvp, log=log)
    for b, (x, y), values, info in progress(solved):
        shown = ", ".join(f"{v:.4g}" for v in values[:10]) + (", …" if len(values) > 10 else "")
        log(f"batch {b}: {info['n_hvp']} HVPs, {info['seconds']:.1f} s, top eigenvalues {shown}")
        rows += [{"batch": b, "rank": r + 1, "eigenvalue": float(v), "batch_size": len(x), "method": method,
                  "n_hvp": info["n_hvp"]} for r, v in enumerate(values)]
        spectra.append(values)
        if trace_samples and trace_estimator == "hutchpp":
            t0 = time.perf_counter()
            with eval_mode(model), double_backward_attention():
                hvp, _ = make_hvp(model, x, y, weight_decay, loss)
                estimate = hutchpp(hvp, parameter_count(model), trace_samples, seed + b, params[0].dtype, dev)
            log(f"batch {b}: trace {estimate:.4g} (Hutch++, {trace_samples} products), "
                f"{time.perf_counter() - t0:.1f} s")
            traces.append(np.array([estimate]))
        elif trace_samples:
            trace, tinfo = hessian_trace(model, x, y, weight_decay=weight_decay, n_samples=trace_samples,
                                         seed=seed + b, return_info=True, loss_fn=loss)
            log(f"batch {b}: trace {trace:.4g} ± {tinfo['std_error']:.2g}, {tinfo['seconds']:.1f} s")
            traces.append(tinfo["samples"])
    if not rows:
        raise ValueError("no batches given")
    summary = {**spectrum_summary(spectra, traces, weight_decay=weight_decay, n_params=parameter_count(model)),
               "batch_size": rows[0]["batch_size"], "method": method}
    summary.update(trace_samples=trace_samples, trace_estimator=trace_estimator if trace_samples else "")
    return pd.DataFrame(rows), pd.DataFrame([summary])


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


def run(model, inputs, settings: dict, log, shard: tuple[int, int] | None = None):
    """The run's mini-batches (`batch_count`; with `shard` = (i, s) only those of
    `shard_range`) of augmented training images; the trace of the whole Hessian and of the
    NLL's alone on the same batches (`summary`); `merge` joins the shards' tables."""
    p, wd = settings, inputs.weight_decay
    n_train = len(inputs.training_split.labels) if p["n_batches"] == "all" else 0
    indices = shard_range(batch_count(p, n_train), shard)
    trace_what = f"and trace ({p['trace_estimator']}, {p['trace_samples']} products per batch)" \
        if p["trace_samples"] else "(no trace)"
    where = f"mini-batches {indices.start}..{indices.stop - 1} (shard {shard[0]} of {shard[1]})" if shard else \
        f"{len(indices)} mini-batches"
    log(f"top-{p['k']} eigenvalues ({p['method']}) {trace_what} on {where} of "
        f"{p['batch_size']} augmented training images; Hessian of NLL + wd/2·‖θ‖² over {parameter_count(model):,} "
        f"parameters, wd {wd:g}")
    batches = inputs.augmented_batches(indices, p["batch_size"], p["seed"])
    return compute(model, batches, k=p["k"], weight_decay=wd, method=p["method"], tol=p["tol"],
                   trace_samples=p["trace_samples"], trace_estimator=p["trace_estimator"], seed=p["seed"],
                   batches_at_once=p["batches_at_once"],
                   hvp=p["hvp"], indices=indices, log=log, progress=log.bar("mini-batches", total=len(indices)))


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
