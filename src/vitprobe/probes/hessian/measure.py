"""How the hessian probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.hessian`."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd

from vitprobe import device as devices
from vitprobe.analysis.inputs import as_batches
from vitprobe.models.losses import nll, trainable
from vitprobe.models.modes import eval_mode
from vitprobe.probes import no_log, no_progress
from vitprobe.probes.hessian import batch_count, shard_range
from vitprobe.probes.hessian.block import batches_at_once as resolve_batches_at_once
from vitprobe.probes.hessian.block import top_eigenvalues_batched
from vitprobe.probes.hessian.products import double_backward_attention, make_hvp, parameter_count
from vitprobe.probes.hessian.solvers import top_eigenvalues
from vitprobe.probes.hessian.summary import spectrum_summary
from vitprobe.probes.hessian.trace import TRACE_ESTIMATORS, hessian_trace, hutchpp


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

