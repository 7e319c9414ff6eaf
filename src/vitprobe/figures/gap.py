"""Class token vs global average pooling (paper Fig. 6), e.g. ViT-Ti against ViT-Ti with a
GAP head, at the figure's epoch (default: the latest epoch of each table).

(a) One labelled marker per series at (nll_train, error) of its full-data runs, from the
    `eval` table (columns nll_train, error; fraction 1 unless the series names a fraction);
    with several seeds the mean, and error bars over the runs' min..max.
(b, c) Hessian max-eigenvalue spectra of the series from the `hessian` table (column
    eigenvalue, all batches and ranks pooled): negative eigenvalues left, positive right,
    density on a log axis; NEP (share of negative eigenvalues) and APE (mean of the positive
    ones) in the legend.

A series without rows is listed under the figure (with the table it lacks) instead of failing.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.hessian import draw_spectra
from vitprobe.figures.nll_error import draw_nll_error, figure_epoch, missing_label, nll_error_points, rows_of
from vitprobe.figures.style import FULL_WIDTH, note_missing, paper_style, plt, save


def spectra_axes(fig, gs_neg, gs_pos):
    """The negative/positive spectrum panels, sharing their (log) density axis."""
    ax_neg = fig.add_subplot(gs_neg)
    ax_pos = fig.add_subplot(gs_pos, sharey=ax_neg)
    ax_pos.tick_params(which="both", labelleft=False)
    return ax_neg, ax_pos


def spectra_legend(fig, ax_neg, ax_pos, handles, epoch) -> None:
    """The NEP/APE legend centred above the two spectrum panels (over their titles)."""
    renderer = fig.canvas.get_renderer()
    top = max(ax.title.get_window_extent(renderer).y1 for ax in (ax_neg, ax_pos))
    y = fig.transFigure.inverted().transform((0, top))[1]
    x = (ax_neg.get_position().x0 + ax_pos.get_position().x1) / 2
    title = "Hessian max-eigenvalue spectra" + (f" at epoch {epoch}" if epoch is not None else "")
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(x, y), bbox_transform=fig.transFigure,
               ncol=1 if len(handles) > 4 else min(2, max(len(handles), 1)), title=title, handlelength=1.5,
               columnspacing=1.2)


def finish_with_spectra(fig, ax_neg, ax_pos, values: dict, bins: int, epoch, missing: list, out) -> None:
    """Panels (b, c): the Hessian spectra with their NEP/APE legend; then the missing-series
    note, and save. The common ending of the figures that pair panel (a) with spectra."""
    handles = draw_spectra(ax_neg, ax_pos, values, bins)
    ax_neg.set_title("(b) Negative eigenvalues")
    ax_pos.set_title("(c) Positive eigenvalues")
    spectra_legend(fig, ax_neg, ax_pos, handles, epoch)
    note_missing(fig, [m for m in missing if m])
    save(fig, out)


def layout(height: float = 2.4, wspace: float = 0.32, a_rows: int = 1):
    """A full-width row: panel (a) (split into `a_rows` stacked axes sharing x, returned as a
    tuple when more than one), then the two spectrum panels close together; `wspace` is the
    gap between (a) and the spectra, as a share of the mean panel width."""
    fig = plt.figure(figsize=(FULL_WIDTH, height))
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 2.1], wspace=wspace, left=0.08, right=0.99, bottom=0.2)
    sub = gs[0, 1].subgridspec(1, 2, wspace=0.08)
    if a_rows == 1:
        ax_a = fig.add_subplot(gs[0, 0])
    else:
        left = gs[0, 0].subgridspec(a_rows, 1, hspace=0.12)
        ax_a = (fig.add_subplot(left[0, 0]),)
        ax_a += tuple(fig.add_subplot(left[i, 0], sharex=ax_a[0]) for i in range(1, a_rows))
        for ax in ax_a[:-1]:
            ax.tick_params(labelbottom=False)
    ax_neg, ax_pos = spectra_axes(fig, sub[0, 0], sub[0, 1])
    return fig, ax_a, ax_neg, ax_pos


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    cfg = spec
    series = cfg["series"]
    eval_epoch = figure_epoch(tables["eval"], cfg.get("epoch"))
    hess_epoch = figure_epoch(tables["hessian"], cfg.get("epoch"))
    points, _ = nll_error_points(tables["eval"], series, eval_epoch)
    values = {s["label"]: rows_of(tables["hessian"], s, hess_epoch)["eigenvalue"].to_numpy() for s in series}
    with_points = {p[0] for p in points}
    missing = [missing_label(s["label"], [t for t, ok in [("eval", s["label"] in with_points),
                                                          ("hessian", len(values[s["label"]]) > 0)] if not ok], 2)
               for s in series]
    with paper_style():
        fig, ax_a, ax_neg, ax_pos = layout()
        ax_a.set_title("(a) Error and NLL" + (f", epoch {eval_epoch}" if eval_epoch is not None else ""))
        draw_nll_error(ax_a, points)
        finish_with_spectra(fig, ax_neg, ax_pos, values, cfg.get("bins", 40), hess_epoch, missing, out)
    return fig
