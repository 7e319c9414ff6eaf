"""Class token vs global average pooling (paper Fig. 6), e.g. ViT-Ti against ViT-Ti with a
GAP head, at the figure's epoch (default: the latest epoch of each table).

(a) One labelled marker per series at (nll_train, error) of its full-data runs, from the
    `eval` table (columns nll_train, error; fraction 1 unless the series names a fraction).
(b, c) Hessian max-eigenvalue spectra of the series from the `hessian` table (column
    eigenvalue, all batches and ranks pooled, and the seeds, said in the legend when more
    than one): negative eigenvalues left, positive right, density on a log axis; NEP (share
    of negative eigenvalues) and APE (mean of the positive ones) of the histogram in the legend.
(d) NEP (%) and APE per series from the `hessian_summary` table.

Bars (`vitprobe.figures.bars`): with several seeds the mean over seeds and the t-interval of
the per-seed values; with one seed the run's own interval (error: Wilson over the test
images; nll_train: ± z·standard error over the training images; NEP, APE: bootstrap over the
mini-batches, none below 5); the note under the figure says which. A series without rows is
listed under the figure (with the table it lacks) instead of failing.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.bars import level_of
from vitprobe.figures.panels import (
    draw_nll_error,
    draw_spectra_panels,
    figure_epoch,
    finish,
    layout,
    missing_label,
    nll_error_points,
    series_spectra,
    spectrum_quantities,
)
from vitprobe.figures.style import paper_style, plt


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    eval_epoch = figure_epoch(tables["eval"], spec.get("epoch"))
    hess_epoch = figure_epoch(tables["hessian"], spec.get("epoch"))
    level = level_of(spec, tables["eval"], tables.get("hessian_summary"))
    points, _ = nll_error_points(tables["eval"], series, eval_epoch, level)
    values, found, seeds = series_spectra(tables, series, hess_epoch, level)
    with_points = {p[0] for p in points}
    missing = [missing_label(s["label"], [t for t, ok in [("eval", s["label"] in with_points),
                                                          ("hessian", len(values[s["label"]]) > 0)] if not ok], 2)
               for s in series]
    with paper_style():
        fig, ax_a, axes = layout()
        ax_a.set_title("(a) Error and NLL" + (f", epoch {eval_epoch}" if eval_epoch is not None else ""))
        draw_nll_error(ax_a, points)
        draw_spectra_panels(fig, axes, values, found, seeds, spec.get("bins", 40), hess_epoch)
        finish(fig, level, {"error": [p[3] for p in points], "NLL_train": [p[2] for p in points],
                            **spectrum_quantities(found)}, missing, out)
    return fig
