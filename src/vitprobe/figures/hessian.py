"""Hessian max-eigenvalue spectra (paper Fig. 1c and 4): for each series (e.g. ResNet,
ViT, ViT on 1/16 of the data) the histogram of all top-k eigenvalues of all mini-batches at
one checkpoint, negative values on the left panel and positive on the right, density on a
log axis. The legend gives NEP (share of negative eigenvalues) and APE (mean of the
positive ones)."""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.panels import draw_spectra, series_eigenvalues
from vitprobe.figures.style import FULL_WIDTH, note_missing, paper_style, plt, save


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    values = series_eigenvalues(tables["hessian"], spec["series"], spec["epoch"])
    with paper_style():
        fig, (ax_neg, ax_pos) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 2.4), sharey=True)
        fig.subplots_adjust(bottom=0.26)  # room for the missing-series note below the x labels
        handles = draw_spectra(ax_neg, ax_pos, values, spec.get("bins", 40))
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.98), ncol=min(3, max(len(handles), 1)),
                   title=f"Hessian max-eigenvalue spectra at epoch {spec['epoch']}")
        note_missing(fig, [k for k, v in values.items() if not len(v)])
        save(fig, out)
    return fig
