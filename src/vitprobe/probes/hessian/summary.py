"""Summaries of a Hessian max-eigenvalue spectrum (paper Sec. 3.1, Fig. 4), numpy only so
that figures can use them without importing torch.

For one checkpoint, the spectrum is every top-k eigenvalue of every mini-batch, pooled:
- NEP (negative eigenvalue proportion) = share of the pooled eigenvalues that are < 0;
- APE (average positive eigenvalue) = mean of the pooled eigenvalues that are > 0;
- trace = mean over batches and Rademacher vectors of vᵀH_b v, Hutchinson's unbiased
  estimate of the mean over batches of tr(H_b).
- trace_nll = the same estimate for the NLL alone. The Hessian is that of
  NLL + wd/2·‖θ‖² over the P parameters with ``requires_grad`` (``probes.hessian.make_hvp``
  adds wd·v to every one of them), so H_b = H_NLL,b + wd·I and, for Rademacher v (vᵀv = P
  exactly), vᵀH_b v = vᵀH_NLL,b v + wd·P sample by sample: trace_nll = trace − wd·P, with
  the same samples' spread, hence the same standard error. The wd·P part is usually most
  of `trace` (wd 0.05 and 5M parameters: 250 000).
"""

from __future__ import annotations

import numpy as np

from vitprobe import stats


def nep_ape(values) -> tuple[float, float]:
    """NEP = share of negative eigenvalues; APE = mean of the positive ones (NaN if none)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    pos = values[values > 0]
    return float((values < 0).mean()), float(pos.mean()) if len(pos) else float("nan")


def spectrum_summary(eigenvalues_per_batch: list, trace_samples_per_batch: list, *, weight_decay: float,
                     n_params: int) -> dict:
    """One checkpoint's summary row from each batch's eigenvalues and each batch's
    Hutchinson samples vᵀH_b v (an empty list of samples: trace not computed, NaN), H_b the
    Hessian of NLL + weight_decay/2·‖θ‖² over `n_params` parameters.

    `lambda_max` is the mean over batches of each batch's largest (signed) eigenvalue;
    `trace_std_error` is the standard error of the pooled samples' mean (NaN below 2), the
    same for `trace` and `trace_nll` = trace − weight_decay·n_params (module docstring)."""
    batches = [np.asarray(v, dtype=float) for v in eigenvalues_per_batch]
    pooled = np.concatenate(batches) if batches else np.empty(0)
    nep, ape = nep_ape(pooled)
    samples = [np.asarray(s, dtype=float) for s in trace_samples_per_batch]
    if samples and any(len(s) != len(samples[0]) for s in samples):
        raise ValueError("every batch needs the same number of trace samples")
    flat = np.concatenate(samples) if samples else np.empty(0)
    return {
        "n_batches": len(batches),
        "n_eigenvalues": int(pooled.size),
        "nep": nep,
        "ape": ape,
        "lambda_max": float(np.mean([b.max() for b in batches])) if batches else float("nan"),
        "trace": float(flat.mean()) if flat.size else float("nan"),
        "trace_nll": float((flat - weight_decay * n_params).mean()) if flat.size else float("nan"),
        "trace_std_error": float(flat.std(ddof=1) / np.sqrt(flat.size)) if flat.size > 1 else float("nan"),
        "trace_samples": len(samples[0]) if samples else 0,
        "n_params": int(n_params),
    }


def intervals(rows, eigenvalues, ci):
    """The interval columns of hessian_summary rows (one per run and epoch) from the
    `hessian` table's per-batch eigenvalues: NEP, APE and λ_max by the expanded percentile
    bootstrap over the mini-batches (a resample draws whole batches, each with its k
    eigenvalues; `vitprobe.stats`), the trace and trace_nll by the normal interval
    ± z·trace_std_error. Fewer than `stats.MIN_UNITS` batches: NaN."""
    out = rows.copy()
    cols = {f"{c}_{end}": np.full(len(rows), np.nan) for c in ("nep", "ape", "lambda_max") for end in ("low", "high")}
    groups = dict(tuple(eigenvalues.groupby(["run", "epoch"], sort=False)))
    for i, (run, epoch) in enumerate(zip(rows["run"], rows["epoch"])):
        eig = groups.get((run, epoch))
        if eig is None:
            continue
        per = eig.groupby("batch")["eigenvalue"]
        neg, count = per.apply(lambda v: (v < 0).sum()).to_numpy(float), per.size().to_numpy(float)
        pos_sum = per.apply(lambda v: v[v > 0].sum()).to_numpy(float)
        pos_n, top = per.apply(lambda v: (v > 0).sum()).to_numpy(float), per.max().to_numpy(float)
        n = len(count)
        if n < stats.MIN_UNITS:
            continue
        w = stats.weights(n, ci.resamples, ci.rng(run, epoch, "hessian"))
        for name, reps in (("nep", stats.ratio_replicates(neg, count, w)),
                           ("ape", stats.ratio_replicates(pos_sum, pos_n, w)),
                           ("lambda_max", stats.ratio_replicates(top, 1.0, w))):
            cols[f"{name}_low"][i], cols[f"{name}_high"][i] = stats.percentile(reps, n, ci.level)
    z = stats.z_value(ci.level)
    se = rows["trace_std_error"].to_numpy(float)
    for name in ("trace", "trace_nll"):
        cols[f"{name}_low"], cols[f"{name}_high"] = rows[name].to_numpy(float) - z * se, rows[name].to_numpy(float) + z * se
    return out.assign(**cols)
