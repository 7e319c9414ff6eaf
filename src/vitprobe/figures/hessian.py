"""Hessian max-eigenvalue spectra (paper Fig. 1c and 4): for each series (e.g. ResNet,
ViT, ViT on 1/16 of the data) the histogram of all top-k eigenvalues of all mini-batches at
one checkpoint, negative values on the left panel and positive on the right, density on a
log axis. The legend gives NEP (share of negative eigenvalues) and APE (mean of the
positive ones)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitprobe.figures.style import FULL_WIDTH, note_missing, paper_style, plt, save
from vitprobe.grid import series_matches
from vitprobe.results import aggregate


def nep_ape(values: np.ndarray) -> tuple[float, float]:
    """NEP = share of negative eigenvalues; APE = mean of the positive ones (NaN if none)."""
    values = np.asarray(values, dtype=float)
    pos = values[values > 0]
    return float((values < 0).mean()), float(pos.mean()) if len(pos) else float("nan")


def series_values(table: pd.DataFrame, series: list[dict], epoch: int) -> dict[str, np.ndarray]:
    at_epoch = table[table["epoch"] == epoch]
    out = {}
    for s in series:
        mask = np.array([series_matches(s, row) for row in at_epoch.itertuples()], dtype=bool)
        out[s["label"]] = at_epoch.loc[mask, "eigenvalue"].to_numpy() if len(at_epoch) else np.array([])
    return out


def plot(spec: dict, inputs: list[str], out) -> plt.Figure:
    fig_cfg = spec["figure"]
    table = aggregate(inputs, "hessian")
    values = series_values(table, fig_cfg["series"], fig_cfg["epoch"])
    present = {k: v for k, v in values.items() if len(v)}
    with paper_style():
        fig, (ax_neg, ax_pos) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.4), sharey=True)
        allv = np.concatenate(list(present.values())) if present else np.array([0.0])
        extent = max(np.abs(allv).max(), 1e-12)
        bins = fig_cfg.get("bins", 40)
        bins_neg = np.linspace(-max(-allv.min(), 0.05 * extent), 0, bins + 1)
        bins_pos = np.linspace(0, max(allv.max(), 0.05 * extent), bins + 1)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        handles = []
        for i, (label, v) in enumerate(values.items()):
            if not len(v):
                continue
            nep, ape = nep_ape(v)
            # density over the whole spectrum, so both panels together integrate to 1
            for ax, edges, part in [(ax_neg, bins_neg, v[v < 0]), (ax_pos, bins_pos, v[v >= 0])]:
                counts, _ = np.histogram(part, bins=edges)
                density = counts / (len(v) * np.diff(edges))
                h = ax.stairs(np.where(density > 0, density, np.nan), edges, color=colors[i],
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
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.98), ncol=min(3, max(len(handles), 1)),
                   title=f"Hessian max-eigenvalue spectra at epoch {fig_cfg['epoch']}")
        note_missing(fig, [k for k, v in values.items() if not len(v)])
        save(fig, out)
    return fig
