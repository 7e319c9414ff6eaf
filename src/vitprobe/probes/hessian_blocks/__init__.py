"""Hessian spectra per parameter block: where in a network the curvature, and its negative
eigenvalues, live (the paper's Sec. 3.1 per block; Zhang et al. 2024, "Why Transformers
Need Adam: A Hessian Perspective", for the block spectra and their heterogeneity).

The Hessian is the whole probe's (`vitprobe.probes.hessian`): of L(θ) = NLL + wd/2·‖θ‖² on
a mini-batch of augmented training images, eval mode. For a partition of the trainable
parameters into blocks θ_b, the diagonal block H_bb = ∂²L/∂θ_b² (= H_NLL,bb + wd·I) is the
curvature of the loss in block b's parameters alone, the others held fixed. For each block
and mini-batch:

- the top-k eigenvalues of H_bb by magnitude, sign kept (ARPACK; an exact dense eigensolve
  for blocks of at most 64 parameters), and over the mini-batches NEP, APE and λ_max as the
  whole-network probe defines them;
- its spectral density by stochastic Lanczos quadrature (one Rademacher start vector,
  `density_steps` Lanczos steps: nodes and weights);
- its trace by Hutch++ (Meyer et al. 2021) from `trace_products` products, or Hutchinson's
  estimator with as many.

A block product H_bb v_b is one backward pass through the graph of the gradient restricted
to θ_b: the gradient of the whole network is built once per mini-batch (one backward with
its graph kept) and every block's products differentiate only its own part, whose graph
runs from the block's parameters to the loss (the blocks near the head are cheap, none costs
a whole-network product; `benchmarks/bench_hessian_blocks.py` measures it).

The block rule: `vitprobe.probes.hessian.partition`; the block products:
`vitprobe.probes.hessian.products.block_products`; the heterogeneity (Jensen-Shannon distances
of the block densities): `vitprobe.probes.hessian.heterogeneity`. This module is the probe:
its tables, `compute`, the pipeline's side and the intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from vitprobe import stats
from vitprobe.columns import Column, bounds
from vitprobe.errors import ConfigError
from vitprobe.probes import Probe
from vitprobe.probes.hessian.heterogeneity import pooled_js, stored_densities
from vitprobe.probes.hessian.partition import KINDS

_BLOCK_COLUMNS = [
    Column("block", pa.string(), "", "block name: <unit>:<kind>, embed, final_norm, head (or a `blocks=` name)"),
    Column("kind", pa.string(), "", f"the block's kind: {', '.join(KINDS)}"),
    Column("depth", pa.int64(), "", "the unit's position: 0 embed, 1..U the units in parameter order, U+1 after"),
    Column("msa", pa.bool_(), "", "an MSA block (kind qkv, attn_proj or attn_other)"),
    Column("size", pa.int64(), "", "parameters in the block: the dimension of H_bb"),
]
_GRID_COLUMNS = [
    Column("grid_low", pa.float64(), "", "the density grid's lower end (the nodes' range padded by 3 sigma)"),
    Column("grid_high", pa.float64(), "", "its upper end"),
    Column("grid_points", pa.int64(), "", "its points (density_grid)"),
    Column("sigma", pa.float64(), "", "the Gaussian width of each node: density_sigma times the nodes' range"),
]


PROBE = Probe(
    "hessian_blocks", "Hessian spectra per parameter block: top eigenvalues, NEP, SLQ density, Hutch++ trace, "
    "heterogeneity",
    tables={
        "hessian_blocks": [
            Column("block", pa.string(), "", "block name (hessian_blocks_summary.block)"),
            Column("batch", pa.int64(), "", "mini-batch index (augmented training images)"),
            Column("rank", pa.int64(), "", "1 = largest |eigenvalue| of that block's H_bb on that batch"),
            Column("eigenvalue", pa.float64(), "", "eigenvalue of H_bb, the block's diagonal block of the Hessian of "
                   "NLL + wd/2·‖θ‖² (sign kept)"),
            Column("n_hvp", pa.int64(), "", "block products the eigensolver used (its size for a dense solve)"),
        ],
        "hessian_blocks_summary": _BLOCK_COLUMNS + [
            Column("params", pa.string(), "", "its parameters' names, comma-separated"),
            Column("n_batches", pa.int64(), "", "mini-batches pooled"),
            Column("nep", pa.float64(), "", "NEP of the block: share of its pooled top-k eigenvalues that are negative"),
            Column("ape", pa.float64(), "", "APE of the block: mean of its pooled positive eigenvalues (NaN if none)"),
            Column("lambda_max", pa.float64(), "", "mean over batches of the block's largest (signed) eigenvalue"),
            Column("trace", pa.float64(), "", "estimate of tr(H_bb) (mean over batches; includes wd·size)"),
            Column("trace_std_error", pa.float64(), "", "its standard error: over the batches' estimates (hutchpp) "
                   "or over all samples (hutchinson); NaN below 2"),
            Column("trace_estimator", pa.string(), "", "hutchpp (Meyer et al. 2021) or hutchinson"),
            Column("trace_products", pa.int64(), "", "block products per batch of the trace estimate (0: none)"),
            Column("seconds", pa.float64(), "s", "time spent on the block, all batches"),
        ],
        "hessian_blocks_density": [
            Column("block", pa.string(), "", "block name"),
            Column("batch", pa.int64(), "", "mini-batch index"),
            Column("node", pa.float64(), "", "a node of the SLQ quadrature of H_bb's spectral density (a Ritz value)"),
            Column("weight", pa.float64(), "", "its weight (squared first component of the Ritz vector; they sum to "
                   "1 per block and batch)"),
        ],
        "hessian_blocks_js": [
            Column("block_a", pa.string(), "", "first block of the pair"),
            Column("block_b", pa.string(), "", "second block of the pair"),
            Column("js_distance", pa.float64(), "", "Jensen-Shannon distance (base 2, in [0, 1]) between the two "
                   "blocks' densities, pooled over the batches, on the checkpoint's grid"),
            *_GRID_COLUMNS,
        ],
        "hessian_blocks_heterogeneity": [
            Column("n_blocks", pa.int64(), "", "blocks compared"),
            Column("mean_js", pa.float64(), "", "mean Jensen-Shannon distance over all pairs of blocks: the "
                   "heterogeneity of the block spectra (Zhang et al. 2024)"),
            Column("n_batches", pa.int64(), "", "mini-batches whose densities are pooled"),
            *_GRID_COLUMNS,
        ],
    },
    reads=("train",), exact=True,
    tiny={"n_batches": 2, "batch_size": 8, "k": 2, "density_steps": 4, "trace_products": 3},
    intervals={
        "hessian_blocks_summary": ("hessian_blocks", [
            *bounds("nep", "expanded percentile bootstrap over the mini-batches (one resample for all of the "
                    "checkpoint's blocks); NaN below 5 mini-batches"),
            *bounds("ape", "the same bootstrap"),
            *bounds("lambda_max", "the same bootstrap"),
            *bounds("trace", "normal interval, trace ± z·trace_std_error"),
        ]),
        "hessian_blocks_js": ("hessian_blocks_density", [
            *bounds("js_distance", "expanded percentile bootstrap over the mini-batches, the pooled densities "
                    "recomputed per resample; NaN below 5 mini-batches"),
        ]),
        "hessian_blocks_heterogeneity": ("hessian_blocks_density", [
            *bounds("mean_js", "the same bootstrap over the mini-batches"),
        ]),
    })


# ---- the pipeline -----------------------------------------------------------------------------
def check(settings: dict, config: dict) -> None:
    """Before any job: `experiments` names experiments; k at most every block's size, on
    every model it analyses (built on the meta device: no memory, no compute)."""
    import torch  # torch and timm, only for this check: the catalogue reads this module without them

    from vitprobe import models  # (the same reason)
    from vitprobe.probes.hessian.partition import check_k, partition  # (the same reason)

    if settings["trace_estimator"] == "hutchpp" and settings["trace_products"] % 3:
        raise ConfigError(f"probes.hessian_blocks.trace_products: {settings['trace_products']} is not a multiple of "
                          f"3, which trace_estimator hutchpp needs; allowed: 0, 3, 6, ...")
    experiments = config.get("experiments", {})
    unknown = [e for e in settings.get("experiments") or [] if e not in experiments]
    if unknown:
        raise ConfigError(f"probes.hessian_blocks.experiments: {unknown[0]!r} is not an experiment; allowed: "
                          f"{', '.join(experiments)}")
    chosen = settings.get("experiments") or list(experiments)
    names = dict.fromkeys(m for e in chosen for m in experiments[e].get("models", []))
    for name in names:
        alias = config.get("models", {}).get(name, {"arch": name, "kwargs": {}})
        try:
            with torch.device("meta"):
                model = models.create_any(alias["arch"], num_classes=10, **alias.get("kwargs", {}))
        except Exception:  # noqa: BLE001 (the plan's own model check says what is wrong with it)
            continue
        try:
            check_k(partition(model), settings["k"], "probes.hessian_blocks.k")
        except ValueError as exc:
            raise ConfigError(f"{exc} (model {name})") from None


def headline(eig, summary, density, js, het) -> str:
    msa, mlp = summary[summary["msa"]], summary[summary["kind"] == "mlp"]
    nep = (f"NEP MSA blocks {msa['nep'].mean():.3f}, MLP blocks {mlp['nep'].mean():.3f}" if len(msa) and len(mlp)
           else f"NEP mean over blocks {summary['nep'].mean():.3f}")
    top = summary.loc[summary["lambda_max"].abs().idxmax()]
    return (f"{len(summary)} blocks; {nep}; largest λ_max {top['lambda_max']:.4g} ({top['block']}); heterogeneity "
            f"(mean JS distance) {het['mean_js'].iloc[0]:.3f}")


# ---- intervals ---------------------------------------------------------------------------------
def _by_checkpoint(units: pd.DataFrame):
    return dict(tuple(units.groupby(["run", "epoch"], sort=False))) if units is not None and len(units) else {}


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """The interval columns of the summary tables (PROBE.intervals), from their units: the
    eigenvalues per block and batch, or the densities per block and batch."""
    if table == "hessian_blocks_summary":
        return _summary_intervals(rows, units, ci)
    return _js_intervals(table, rows, units, ci)


def _summary_intervals(rows, eig, ci):
    names = [f"{c}_{e}" for c in ("nep", "ape", "lambda_max") for e in ("low", "high")]
    cols = {n: np.full(len(rows), np.nan) for n in names}
    groups = _by_checkpoint(eig)
    for (run, epoch), idx in rows.groupby(["run", "epoch"], sort=False).groups.items():
        sub = groups.get((run, epoch))
        if sub is None:
            continue
        batches = np.sort(sub["batch"].unique())
        n = len(batches)
        if n < stats.MIN_UNITS:
            continue
        w = stats.weights(n, ci.resamples, ci.rng(run, epoch, "hessian_blocks"))  # shared by the blocks: paired
        for block, g in sub.groupby("block", sort=False):
            per = g.groupby("batch")["eigenvalue"]
            at = np.searchsorted(batches, per.size().index.to_numpy())
            full = np.zeros((5, n))
            full[:, at] = [per.apply(lambda v: (v < 0).sum()), per.size(), per.apply(lambda v: v[v > 0].sum()),
                           per.apply(lambda v: (v > 0).sum()), per.max()]
            reps = {"nep": stats.ratio_replicates(full[0], full[1], w),
                    "ape": stats.ratio_replicates(full[2], full[3], w),
                    "lambda_max": stats.ratio_replicates(full[4], np.where(full[1] > 0, 1.0, 0.0), w)}
            for i in [i for i in idx if rows.loc[i, "block"] == block]:
                pos = rows.index.get_loc(i)
                for name, r in reps.items():
                    cols[f"{name}_low"][pos], cols[f"{name}_high"][pos] = stats.percentile(r, n, ci.level)
    z = stats.z_value(ci.level)
    t, se = rows["trace"].to_numpy(float), rows["trace_std_error"].to_numpy(float)
    return rows.assign(**cols, trace_low=t - z * se, trace_high=t + z * se)


def _js_intervals(table, rows, density, ci):
    column = "js_distance" if table == "hessian_blocks_js" else "mean_js"
    low, high = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    groups = _by_checkpoint(density)
    for (run, epoch), idx in rows.groupby(["run", "epoch"], sort=False).groups.items():
        sub = groups.get((run, epoch))
        if sub is None:
            continue
        blocks, batches, D, pairs = stored_densities(sub, rows.loc[idx[0]])
        n = len(batches)
        if n < stats.MIN_UNITS:
            continue
        w = stats.weights(n, ci.resamples, ci.rng(run, epoch, "hessian_blocks_js"))
        reps = pooled_js(D, w, pairs)  # (resamples, pairs)
        if column == "mean_js":
            lo, hi = stats.percentile(reps.mean(1), n, ci.level)
            low[[rows.index.get_loc(i) for i in idx]], high[[rows.index.get_loc(i) for i in idx]] = lo, hi
            continue
        lo, hi = stats.percentile_columns(reps, n, ci.level)
        where = {(blocks[a], blocks[b]): p for p, (a, b) in enumerate(pairs)}
        for i in idx:
            p = where.get((rows.loc[i, "block_a"], rows.loc[i, "block_b"]))
            if p is not None:
                low[rows.index.get_loc(i)], high[rows.index.get_loc(i)] = lo[p], hi[p]
    return rows.assign(**{f"{column}_low": low, f"{column}_high": high})

