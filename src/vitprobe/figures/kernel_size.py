"""Local MSA with k x k windows (paper Fig. 7), e.g. the local-attention ViT with kernel
sizes 3, 5 and 8 (8 = global on the 8x8 token grid), at the figure's epoch (default: the
latest epoch of each table).

(a) Test error (%, top) and nll_train (nats, below) against the kernel size, from the
    `eval` table (columns error, nll_train, kernel_size), one curve per model: a series
    naming a kernel_size gives that kernel's point, a series without one gives a point per
    kernel size in its rows.
(b, c) Hessian max-eigenvalue spectra per kernel size from the `hessian` table (column
    eigenvalue, pooled over batches, ranks and seeds, the legend saying how many seeds):
    negative eigenvalues left, positive right; NEP and APE of the histogram in the legend.
(d) NEP (%) and APE per kernel size from the `hessian_summary` table.

Bars (`vitprobe.figures.bars`): with several seeds the mean over seeds and the t-interval of
the per-seed values; with one seed the run's own interval (error: Wilson over the test
images; nll_train: ± z·standard error over the training images; NEP, APE: bootstrap over the
mini-batches); the note under the figure says which. A series without rows is listed under
the figure (with the table it lacks) instead of failing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from vitprobe.figures.bars import NLL_TRAIN, WILSON_TEST, level_of, stat
from vitprobe.figures.panels import (
    ERROR_LABEL,
    NLL_LABEL,
    draw_spectra_panels,
    empty_panel,
    errorbar,
    figure_epoch,
    finish,
    layout,
    missing_label,
    seeds_of,
    series_rows,
    spectrum_quantities,
    spectrum_stats,
)
from vitprobe.figures.style import color, paper_style, plt

KERNEL_LABEL = "Kernel size (tokens)"


def kernel_name(k: int) -> str:
    return f"{k}×{k}"


def by_kernel(rows: pd.DataFrame, series: dict) -> dict[int, pd.DataFrame]:
    """The series' rows per kernel size: one kernel when the series names it, else all found."""
    if "kernel_size" in series:
        return {int(series["kernel_size"]): rows} if len(rows) else {}
    return {int(k): rows[rows["kernel_size"] == k] for k in sorted(rows["kernel_size"].unique())}


def kernel_curves(table: pd.DataFrame, series: list[dict], epoch: int | None, level: float):
    """Per model, in order of first appearance: (model, kernels ascending, error Stats,
    nll_train Stats). A kernel selected by two series of a model is counted once."""
    per_model: dict[str, dict[int, pd.DataFrame]] = {}
    for s in series:
        found = per_model.setdefault(s["model"], {})
        for k, rows in by_kernel(series_rows(table, s, epoch), s).items():
            found.setdefault(k, rows)
    curves = []
    for model, found in per_model.items():
        if found:
            kernels = sorted(found)
            curves.append((model, kernels, [stat(found[k], "error", level, WILSON_TEST) for k in kernels],
                           [stat(found[k], "nll_train", level, NLL_TRAIN) for k in kernels]))
    return curves


def kernel_spectra(tables: dict[str, pd.DataFrame], series: list[dict], epoch: int | None, level: float):
    """Per spectrum label (the series label when it names a kernel size, else 'label k×k' per
    kernel size found): its eigenvalues (an empty array for a series without rows), its (NEP,
    APE) Stats from `hessian_summary` (`spectrum_stats`) and how many seeds it pools."""
    values, found, seeds = {}, {}, {}
    summaries = tables.get("hessian_summary")
    for s in series:
        groups = by_kernel(series_rows(tables["hessian"], s, epoch), s)
        summary = series_rows(summaries, s, epoch) if summaries is not None else None
        if not groups:
            values[s["label"]], found[s["label"]], seeds[s["label"]] = np.array([]), None, 0
        for k, rows in groups.items():
            name = s["label"] if "kernel_size" in s else f"{s['label']} {kernel_name(k)}"
            own = summary[summary["kernel_size"] == k] if summary is not None else rows.iloc[:0]
            values[name], found[name], seeds[name] = (rows["eigenvalue"].to_numpy(),
                                                      spectrum_stats(own, rows, level), seeds_of(rows))
    return values, found, seeds


def draw_kernel_curves(ax_err, ax_nll, curves) -> None:
    """Error on `ax_err`, NLL_train on `ax_nll` (below it, sharing the kernel-size axis)."""
    ax_err.set_ylabel(ERROR_LABEL)
    ax_nll.set_ylabel(NLL_LABEL)
    ax_nll.set_xlabel(KERNEL_LABEL)
    if not curves:
        empty_panel(ax_err, "no results yet")
        return
    for m, (model, kernels, errors, nlls) in enumerate(curves):
        errorbar(ax_err, kernels, errors, fmt="o-", ms=3.5, color=color(m), label=model)
        errorbar(ax_nll, kernels, nlls, fmt="o-", ms=3.5, color=color(m), label=model)
    kernels = sorted({k for c in curves for k in c[1]})
    ax_nll.set_xticks(kernels, [kernel_name(k) for k in kernels])
    ax_nll.set_xlim(min(kernels) - 1, max(kernels) + 1)
    for ax in (ax_err, ax_nll):
        ax.margins(y=0.2)
        ax.yaxis.set_major_locator(MaxNLocator(4))
    if len(curves) > 1:
        ax_err.legend(loc="best")


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    eval_epoch = figure_epoch(tables["eval"], spec.get("epoch"))
    hess_epoch = figure_epoch(tables["hessian"], spec.get("epoch"))
    level = level_of(spec, tables["eval"], tables.get("hessian_summary"))
    curves = kernel_curves(tables["eval"], series, eval_epoch, level)
    values, found, seeds = kernel_spectra(tables, series, hess_epoch, level)
    missing = [missing_label(s["label"], [t for t, e in [("eval", eval_epoch), ("hessian", hess_epoch)]
                                          if not len(series_rows(tables[t], s, e))], 2) for s in series]
    with paper_style():
        fig, (ax_err, ax_nll), axes = layout(height=2.6, a_rows=2)
        ax_err.set_title("(a) Error and NLL" + (f", epoch {eval_epoch}" if eval_epoch is not None else ""))
        draw_kernel_curves(ax_err, ax_nll, curves)
        draw_spectra_panels(fig, axes, values, found, seeds, spec.get("bins", 40), hess_epoch)
        finish(fig, level, {"error": [e for c in curves for e in c[2]], "NLL_train": [n for c in curves for n in c[3]],
                            **spectrum_quantities(found)}, missing, out)
    return fig
