"""How the hessian_blocks probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.hessian_blocks`."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd
from torch import nn

from vitprobe.analysis.inputs import as_batches
from vitprobe.models.losses import nll
from vitprobe.models.modes import eval_mode
from vitprobe.probes import no_log, no_progress
from vitprobe.probes.hessian.heterogeneity import heterogeneity
from vitprobe.probes.hessian.partition import Block, check_k, partition
from vitprobe.probes.hessian.products import block_products, double_backward_attention
from vitprobe.probes.hessian.solvers import operator_top_eigenvalues
from vitprobe.probes.hessian.summary import nep_ape
from vitprobe.probes.hessian.trace import TRACE_ESTIMATORS, hutchinson, hutchpp, operator_density


# ---- compute -------------------------------------------------------------------------------
def _seed(seed: int, batch: int, block: int) -> int:
    return (seed + 1) * 1_000_003 + batch * 1009 + block


def compute(model: nn.Module, batches, *, k: int = 5, blocks: dict[str, list[str]] | None = None,
            loss: Callable | None = None, weight_decay: float = 0.0, tol: float = 1e-3, density_steps: int = 20,
            trace_products: int = 30, trace_estimator: str = "hutchpp", density_sigma: float = 0.01,
            density_grid: int = 401, seed: int = 0, indices=None, log=no_log, progress=no_progress):
    """Tables hessian_blocks, hessian_blocks_summary, hessian_blocks_density, hessian_blocks_js
    and hessian_blocks_heterogeneity of `model` on `batches` ((inputs, targets) pairs, or one
    pair; targets class indices or soft targets): per block of `partition(model, blocks)`, the
    top-k eigenvalues of H_bb (Hessian of loss + weight_decay/2·‖θ‖², default loss the NLL)
    on every mini-batch, their NEP/APE/λ_max, the SLQ density (`density_steps` Lanczos
    steps) and the trace (`trace_estimator` from `trace_products` block products per batch;
    0 skips it), and the Jensen-Shannon heterogeneity of the densities (module docstring)."""
    if trace_estimator not in TRACE_ESTIMATORS:
        raise ValueError(f"trace_estimator {trace_estimator!r}; allowed: {', '.join(TRACE_ESTIMATORS)}")
    if trace_estimator == "hutchpp" and trace_products % 3:
        raise ValueError(f"trace_products = {trace_products}: Hutch++ needs a multiple of 3 (0 skips the trace)")
    if density_steps < 1:
        raise ValueError(f"density_steps must be >= 1, got {density_steps}")
    parts = partition(model, blocks)
    check_k(parts, k)
    loss = nll if loss is None else loss
    params = [p for p in model.parameters() if p.requires_grad]
    dtype, dev = params[0].dtype, params[0].device
    batches = list(as_batches(batches))
    if not batches:
        raise ValueError("no batches given")
    indices = list(indices) if indices is not None else list(range(len(batches)))
    eig_rows, dens_rows = [], []
    traces: dict[str, list] = {b.name: [] for b in parts}
    seconds = dict.fromkeys(traces, 0.0)
    with eval_mode(model), double_backward_attention():
        for bi, (x, y) in progress(list(zip(indices, batches))):
            start = time.perf_counter()
            products = block_products(model, x.to(dev), y.to(dev), parts, weight_decay, loss)
            shared = time.perf_counter() - start
            top = {}  # block -> its largest (signed) eigenvalue on this batch, for the log line
            for j, block in enumerate(parts):
                t0 = time.perf_counter()
                hvp = products[block.name]
                values, n_hvp, _ = operator_top_eigenvalues(hvp, block.size, k, tol=tol, dtype=dtype, device=dev)
                eig_rows += [{"block": block.name, "batch": bi, "rank": r + 1, "eigenvalue": float(v), "n_hvp": n_hvp}
                             for r, v in enumerate(values)]
                top[block.name] = float(np.max(values))
                nodes, weights = operator_density(hvp, block.size, density_steps, _seed(seed, bi, j), dtype, dev)
                dens_rows += [{"block": block.name, "batch": bi, "node": float(a), "weight": float(w)}
                              for a, w in zip(nodes, weights)]
                if trace_products:
                    s = _seed(seed, bi, j) + 7919
                    traces[block.name].append(
                        np.array([hutchpp(hvp, block.size, trace_products, s, dtype, dev)])
                        if trace_estimator == "hutchpp" else hutchinson(hvp, block.size, trace_products, s, dtype, dev))
                seconds[block.name] += time.perf_counter() - t0 + shared / len(parts)
            worst = max(top, key=lambda n: abs(top[n]))
            log(f"batch {bi}: {len(parts)} blocks in {time.perf_counter() - start:.1f} s; largest λ_max {top[worst]:.4g}"
                f" in {worst}")
            del products
    eig = pd.DataFrame(eig_rows)
    density = pd.DataFrame(dens_rows)
    summary = pd.DataFrame([_summary_row(b, eig[eig["block"] == b.name], traces[b.name], trace_estimator,
                                         trace_products, seconds[b.name]) for b in parts])
    js, het = heterogeneity(density, [b.name for b in parts], density_sigma, density_grid)
    return eig, summary, density, js, het


def _summary_row(block: Block, eig: pd.DataFrame, traces: list, estimator: str, products: int, seconds: float) -> dict:
    per_batch = [g["eigenvalue"].to_numpy() for _, g in eig.groupby("batch", sort=True)]
    nep, ape = nep_ape(np.concatenate(per_batch))
    flat = np.concatenate(traces) if traces else np.empty(0)
    return {"block": block.name, "kind": block.kind, "depth": block.depth, "msa": block.msa, "size": block.size,
            "params": ",".join(block.params), "n_batches": len(per_batch), "nep": nep, "ape": ape,
            "lambda_max": float(np.mean([v.max() for v in per_batch])),
            "trace": float(flat.mean()) if flat.size else float("nan"),
            "trace_std_error": float(flat.std(ddof=1) / np.sqrt(flat.size)) if flat.size > 1 else float("nan"),
            "trace_estimator": estimator if products else "", "trace_products": products, "seconds": seconds}


def run(model, inputs, settings: dict, log):
    p, wd = settings, inputs.weight_decay
    parts = partition(model)
    check_k(parts, p["k"], "probes.hessian_blocks.k")
    trace = f"{p['trace_estimator']} trace ({p['trace_products']} products)" if p["trace_products"] else "no trace"
    log(f"{len(parts)} parameter blocks ({sum(b.msa for b in parts)} MSA): top-{p['k']} eigenvalues of each "
        f"diagonal block, SLQ density ({p['density_steps']} steps), {trace}, on {p['n_batches']} mini-batches of "
        f"{p['batch_size']} augmented training images; Hessian of NLL + wd/2·‖θ‖², wd {wd:g}")
    batches = list(inputs.augmented_batches(p["n_batches"], p["batch_size"], p["seed"]))
    return compute(model, batches, k=p["k"], weight_decay=wd, tol=p["tol"], density_steps=p["density_steps"],
                   trace_products=p["trace_products"], trace_estimator=p["trace_estimator"],
                   density_sigma=p["density_sigma"], density_grid=p["density_grid"], seed=p["seed"], log=log,
                   progress=log.bar("mini-batches", total=len(batches)))

