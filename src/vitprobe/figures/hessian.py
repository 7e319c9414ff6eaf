"""Hessian max-eigenvalue spectra (paper Fig. 1c and 4): for each series (e.g. ResNet,
ViT, ViT on 1/16 of the data) the histogram of all top-k eigenvalues of all mini-batches at
one checkpoint, negative values on the left panel and positive on the right, density on a
log axis. The legend gives NEP (share of negative eigenvalues) and APE (mean of the
positive ones)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitprobe.figures.style import FULL_WIDTH, color, note_missing, paper_style, plt, save, select
from vitprobe.probes.summary import nep_ape


def series_values(table: pd.DataFrame, series: list[dict], epoch: int) -> dict[str, np.ndarray]:
    """Eigenvalues per series label at one epoch (empty arrays for series without data)."""
    return {s["label"]: select(table, s, epoch)["eigenvalue"].to_numpy() for s in series}


def draw_spectra(ax_neg, ax_pos, values: dict[str, np.ndarray], bins: int = 40) -> list:
    """Histogram densities of each series' eigenvalues, negative part on `ax_neg` and the rest
    on `ax_pos`, normalized over the whole spectrum (both panels together integrate to 1).
    Returns legend handles labelled with NEP and APE."""
    present = {k: v for k, v in values.items() if len(v)}
    allv = np.concatenate(list(present.values())) if present else np.array([0.0])
    extent = max(np.abs(allv).max(), 1e-12)
    bins_neg = np.linspace(-max(-allv.min(), 0.05 * extent), 0, bins + 1)
    bins_pos = np.linspace(0, max(allv.max(), 0.05 * extent), bins + 1)
    handles = []
    for i, (label, v) in enumerate(values.items()):
        if not len(v):
            continue
        nep, ape = nep_ape(v)
        for ax, edges, part in [(ax_neg, bins_neg, v[v < 0]), (ax_pos, bins_pos, v[v >= 0])]:
            counts, _ = np.histogram(part, bins=edges)
            density = counts / (len(v) * np.diff(edges))
            h = ax.stairs(np.where(density > 0, density, np.nan), edges, color=color(i),
                          label=f"{label} (NEP {100 * nep:.1f}%, APE {ape:.3g})")
        handles.append(h)
    for ax, part in [(ax_neg, allv[allv < 0]), (ax_pos, allv[allv >= 0])]:
        ax.set_xlabel("Max eigenvalue")
        if present and not len(part):
            ax.text(0.5, 0.5, "none", transform=ax.transAxes, ha="center", va="center", color="0.5")
    if present:
        ax_pos.set_yscale("log")
    ax_neg.set_xlim(bins_neg[0], 0)
    ax_pos.set_xlim(0, bins_pos[-1])
    ax_neg.set_ylabel("Density")
    ax_neg.set_title("Negative eigenvalues")
    ax_pos.set_title("Positive eigenvalues")
    return handles


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    fig_cfg = spec
    values = series_values(tables["hessian"], fig_cfg["series"], fig_cfg["epoch"])
    with paper_style():
        fig, (ax_neg, ax_pos) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.4), sharey=True)
        fig.subplots_adjust(bottom=0.26)  # room for the missing-series note below the x labels
        handles = draw_spectra(ax_neg, ax_pos, values, fig_cfg.get("bins", 40))
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.98), ncol=min(3, max(len(handles), 1)),
                   title=f"Hessian max-eigenvalue spectra at epoch {fig_cfg['epoch']}")
        note_missing(fig, [k for k, v in values.items() if not len(v)])
        save(fig, out)
    return fig
