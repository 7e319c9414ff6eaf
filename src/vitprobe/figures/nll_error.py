"""NLL_train against test error (paper Fig. 5), from the `eval` table at the figure's epoch
(default: the latest epoch in the table, i.e. the last checkpoint).

(a) One marker per series at (nll_train, error) of its full-data runs (rows with fraction 1,
    or all its rows when the series names a fraction), annotated with the series label.
(b) Test error (%) and (c) nll_train (nats) against the training-data fraction (log2 axis,
    ticks 1/64 ... 1), one curve per series that has runs at several fractions.

Bars on both axes (`vitprobe.figures.bars`): with several seeds, the mean over seeds and the
t-interval of the per-seed values; with one seed, the run's own interval (error: Wilson over
the n_test test images; nll_train: mean ± z·standard error over the n_train augmented
training images); none where NaN. The note under the figure says which, at what level and
over how many seeds and images. A series without rows is listed under the figure instead of
failing.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd

from vitprobe.figures.bars import NLL_TRAIN, WILSON_TEST, level_of, stat
from vitprobe.figures.panels import (
    ERROR_LABEL,
    NLL_LABEL,
    draw_nll_error,
    empty_panel,
    errorbar,
    figure_epoch,
    finish,
    nll_error_points,
    series_rows,
)
from vitprobe.figures.style import FULL_WIDTH, color, paper_style, plt

FRACTION_LABEL = "Fraction of training data"


# ---- panels (b, c): error and NLL_train vs data fraction --------------------------------
def fraction_label(f: float) -> str:
    frac = Fraction(f).limit_denominator(4096)
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


def fraction_axis(ax, fractions) -> None:
    """log2 x axis with ticks at the powers of two 1/2^k from the smallest fraction to 1."""
    ax.set_xscale("log", base=2)
    kmax = max(0, math.ceil(-math.log2(min(fractions)) - 1e-9))
    ticks = [2.0 ** -k for k in range(kmax, -1, -1)]
    ax.set_xticks(ticks, [fraction_label(t) for t in ticks], rotation=45, ha="right", rotation_mode="anchor")
    ax.minorticks_off()
    ax.set_xlabel(FRACTION_LABEL)


def fraction_curves(table: pd.DataFrame, series: list[dict], epoch: int | None, level: float):
    """Per series with several fractions: (label, index, fractions ascending, error Stats,
    nll_train Stats)."""
    curves = []
    for i, s in enumerate(series):
        rows = series_rows(table, s, epoch)
        fractions = sorted(rows["fraction"].unique())
        if len(fractions) < 2:
            continue
        groups = [rows[rows["fraction"] == f] for f in fractions]
        curves.append((s["label"], i, [float(f) for f in fractions],
                       [stat(g, "error", level, WILSON_TEST) for g in groups],
                       [stat(g, "nll_train", level, NLL_TRAIN) for g in groups]))
    return curves


def draw_fraction_curves(ax_err, ax_nll, curves) -> None:
    for label, i, fractions, errors, nlls in curves:
        errorbar(ax_err, fractions, errors, fmt="o-", ms=3, color=color(i), label=label)
        errorbar(ax_nll, fractions, nlls, fmt="o-", ms=3, color=color(i), label=label)
    ax_err.set_ylabel(ERROR_LABEL)
    ax_nll.set_ylabel(NLL_LABEL)
    if not curves:
        for ax in (ax_err, ax_nll):
            ax.set_xlabel(FRACTION_LABEL)
            empty_panel(ax, "no series with\nseveral data fractions")
        return
    for ax in (ax_err, ax_nll):
        fraction_axis(ax, [f for c in curves for f in c[2]])
    ax_err.legend(loc="best")


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    table = tables["eval"]
    epoch = figure_epoch(table, spec.get("epoch"))
    level = level_of(spec, table)
    points, missing = nll_error_points(table, spec["series"], epoch, level)
    curves = fraction_curves(table, spec["series"], epoch, level)
    found = {"error": [p[3] for p in points] + [s for c in curves for s in c[3]],
             "NLL_train": [p[2] for p in points] + [s for c in curves for s in c[4]]}
    with paper_style():
        fig, (ax_a, ax_err, ax_nll) = plt.subplots(
            1, 3, figsize=(FULL_WIDTH, 2.3), gridspec_kw={"width_ratios": [1.3, 1, 1], "wspace": 0.42})
        fig.subplots_adjust(left=0.08, right=0.99, bottom=0.26)
        ax_a.set_title("(a) Full data" + (f", epoch {epoch}" if epoch is not None else ""))
        ax_err.set_title("(b) Error vs data size")
        ax_nll.set_title(r"(c) NLL$_\mathrm{train}$ vs data size")
        draw_fraction_curves(ax_err, ax_nll, curves)
        draw_nll_error(ax_a, points)
        finish(fig, level, found, missing, out)
    return fig
