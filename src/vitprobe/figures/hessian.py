"""Hessian max-eigenvalue spectra (paper Fig. 1c and 4): for each series (e.g. ResNet,
ViT, ViT on 1/16 of the data) the histogram of all top-k eigenvalues of all mini-batches at
one checkpoint (and of all its seeds: the legend says "k seeds pooled"), negative values on
the left panel and positive on the right, density on a log axis. The legend gives the
histogram's NEP (share of negative eigenvalues) and APE (mean of the positive ones).

Right: NEP (%) above APE per series from the `hessian_summary` table, with bars
(`vitprobe.figures.bars`): with several seeds the mean over seeds and the t-interval of the
per-seed values; with one seed the run's bootstrap interval over its mini-batches (none
below 5). The note under the figure says which."""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.bars import level_of
from vitprobe.figures.panels import draw_spectra_panels, finish, series_spectra, spectra_axes, spectrum_quantities
from vitprobe.figures.style import FULL_WIDTH, paper_style, plt


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    level = level_of(spec, tables.get("hessian_summary"))
    values, found, seeds = series_spectra(tables, spec["series"], spec["epoch"], level)
    with paper_style():
        fig = plt.figure(figsize=(FULL_WIDTH, 2.4))
        grid = fig.add_gridspec(1, 1, left=0.08, right=0.99, bottom=0.2)
        axes = spectra_axes(fig, grid[0, 0])
        draw_spectra_panels(fig, axes, values, found, seeds, spec.get("bins", 40), spec["epoch"])
        for ax, title in zip(axes, ("Negative eigenvalues", "Positive eigenvalues", "NEP, APE")):
            ax.set_title(title)
        finish(fig, level, spectrum_quantities(found), [k for k, v in values.items() if not len(v)], out)
    return fig
