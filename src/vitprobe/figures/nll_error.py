"""NLL_train against test error (paper Fig. 5), from the `eval` table at the figure's epoch
(default: the latest epoch in the table, i.e. the last checkpoint).

(a) One marker per series at (nll_train, error) of its full-data runs (rows with fraction 1,
    or all its rows when the series names a fraction), annotated with the series label.
(b) Test error (%) and (c) nll_train (nats) against the training-data fraction (log2 axis,
    ticks 1/64 ... 1), one curve per series that has runs at several fractions.

With several seeds, a point is the mean over runs of the column and its error bars span the
runs' min..max. A series without rows is listed under the figure instead of failing.

The helpers here (epoch choice, per-run means, error bars, labelled markers, missing notes)
are shared by the other evaluation figures (gap, kernel_size, alternet).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd
from matplotlib.transforms import Bbox

from vitprobe.figures.style import FULL_WIDTH, color, note_missing, paper_style, plt, save, select

RUN_KEYS = ["dataset", "model", "kernel_size", "fraction", "seed"]
NLL_LABEL = r"NLL$_\mathrm{train}$ (nats)"
ERROR_LABEL = "Test error (%)"
FRACTION_LABEL = "Fraction of training data"


# ---- shared helpers -----------------------------------------------------------------------
def figure_epoch(table: pd.DataFrame, epoch: int | None) -> int | None:
    """The epoch shown: the figure's `epoch`, else the latest epoch in the table (None if empty)."""
    if epoch is not None:
        return int(epoch)
    return int(table["epoch"].max()) if len(table) else None


def rows_of(table: pd.DataFrame, series: dict, epoch: int | None) -> pd.DataFrame:
    """The series' rows at `epoch` (none when there is no epoch, i.e. an empty table)."""
    return select(table, series, epoch) if epoch is not None else table.iloc[:0]


def full_data(rows: pd.DataFrame, series: dict) -> pd.DataFrame:
    """Rows of the full-data runs: fraction 1, unless the series names its own fraction."""
    return rows if "fraction" in series else rows[np.isclose(rows["fraction"], 1.0)]


@dataclass(frozen=True)
class Stat:
    """A value over runs (seeds): mean, min and max of the per-run values, and how many runs."""
    mean: float
    lo: float
    hi: float
    n: int


def stat(rows: pd.DataFrame, column: str) -> Stat | None:
    """Per-run mean of `column` (e.g. over noise frequencies), then mean/min/max over runs."""
    if not len(rows):
        return None
    per_run = rows.groupby(RUN_KEYS, dropna=False)[column].mean()
    return Stat(float(per_run.mean()), float(per_run.min()), float(per_run.max()), len(per_run))


def shifted(s: Stat, offset: float, scale: float = 1.0) -> Stat:
    """offset + scale * s (min and max swap when scale < 0), e.g. accuracy = 100 - error."""
    lo, hi = sorted((offset + scale * s.lo, offset + scale * s.hi))
    return Stat(offset + scale * s.mean, lo, hi, s.n)


def _centre_and_bars(values):
    means = np.array([v.mean if isinstance(v, Stat) else float(v) for v in values])
    lo = np.array([v.lo if isinstance(v, Stat) else float(v) for v in values])
    hi = np.array([v.hi if isinstance(v, Stat) else float(v) for v in values])
    bars = np.vstack([means - lo, hi - means])
    return means, (bars if np.any(bars > 0) else None)


def errorbar(ax, xs, ys, **kwargs):
    """Points at the means of `xs`/`ys` (Stats or plain numbers) with min..max error bars
    where the runs spread. Returns the ErrorbarContainer (its .lines[0] holds the means)."""
    x, xerr = _centre_and_bars(xs)
    y, yerr = _centre_and_bars(ys)
    kwargs = {"fmt": "o", "ms": 4, "capsize": 1.5, "elinewidth": 0.8, "capthick": 0.8, **kwargs}
    return ax.errorbar(x, y, xerr=xerr, yerr=yerr, **kwargs)


_OFFSETS = [(4, 2, "left", "bottom"), (4, -2, "left", "top"), (-4, 2, "right", "bottom"),
            (-4, -2, "right", "top"), (0, 5, "center", "bottom"), (0, -5, "center", "top"),
            (4, 9, "left", "bottom"), (4, -9, "left", "top"), (-4, 9, "right", "bottom"), (-4, -9, "right", "top")]


def label_points(ax, points: list[tuple[str, float, float]]) -> list:
    """Annotate each (label, x, y) next to its marker, on the first side (right, left, above,
    below, then a little further away) where the label stays inside the axes and covers no
    other label or marker; failing that, where it covers least (labels weigh most).
    Call after the axes limits are final."""
    renderer = ax.figure.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    pad = 3 * ax.figure.dpi / 72  # a marker's radius, in pixels
    markers = [Bbox.from_extents(px - pad, py - pad, px + pad, py + pad)
               for px, py in ax.transData.transform([(x, y) for _, x, y in points])]
    placed, texts = [], []
    for label, x, y in points:
        best = None
        for dx, dy, ha, va in _OFFSETS:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=6.5, annotation_clip=False)
            box = text.get_window_extent(renderer)
            outside = not (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1)
            cost = 2 * outside + 3 * sum(box.overlaps(b) for b in placed) + sum(box.overlaps(b) for b in markers)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, text, box)
            else:
                text.remove()
            if cost == 0:
                break
        placed.append(best[2])
        texts.append(best[1])
    return texts


def missing_label(label: str, lacking: list[str], sources: int) -> str | None:
    """How a series is listed under the figure: its label when it has no data at all, the
    label and the lacking parts when some are there, None when nothing lacks."""
    if not lacking:
        return None
    return label if len(lacking) == sources else f"{label} ({', '.join(lacking)})"


def empty_panel(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.5", fontsize=7,
            wrap=True)


# ---- panel (a): NLL_train vs error --------------------------------------------------------
def nll_error_points(table: pd.DataFrame, series: list[dict], epoch: int | None):
    """(label, series index, nll_train Stat, error Stat) per series with full-data rows, and the
    labels of the series without ("label (full data)" when it only has smaller fractions)."""
    points, missing = [], []
    for i, s in enumerate(series):
        rows = rows_of(table, s, epoch)
        full = full_data(rows, s)
        if len(full):
            points.append((s["label"], i, stat(full, "nll_train"), stat(full, "error")))
        else:
            missing.append(s["label"] if not len(rows) else f"{s['label']} (full data)")
    return points, missing


def draw_labelled_points(ax, points, xlabel: str, ylabel: str, margins=(0.2, 0.15)) -> None:
    """One labelled marker per series at (x, y), in the series' colours, with bars over
    min..max of its runs; `points` holds (label, series index, x Stat, y Stat)."""
    for label, i, x, y in points:
        errorbar(ax, [x], [y], color=color(i), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if not points:
        empty_panel(ax, "no results yet")
        return
    ax.margins(x=margins[0], y=margins[1])
    ax.autoscale_view()
    label_points(ax, [(label, x.mean, y.mean) for label, _, x, y in points])


def draw_nll_error(ax, points) -> None:
    """Labelled markers at (NLL_train, error), one per series."""
    draw_labelled_points(ax, points, NLL_LABEL, ERROR_LABEL)


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


def fraction_curves(table: pd.DataFrame, series: list[dict], epoch: int | None):
    """Per series with several fractions: (label, index, fractions ascending, error Stats,
    nll_train Stats)."""
    curves = []
    for i, s in enumerate(series):
        rows = rows_of(table, s, epoch)
        fractions = sorted(rows["fraction"].unique())
        if len(fractions) < 2:
            continue
        groups = [rows[rows["fraction"] == f] for f in fractions]
        curves.append((s["label"], i, [float(f) for f in fractions], [stat(g, "error") for g in groups],
                       [stat(g, "nll_train") for g in groups]))
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
    cfg = spec
    table = tables["eval"]
    epoch = figure_epoch(table, cfg.get("epoch"))
    points, missing = nll_error_points(table, cfg["series"], epoch)
    curves = fraction_curves(table, cfg["series"], epoch)
    with paper_style():
        fig, (ax_a, ax_err, ax_nll) = plt.subplots(
            1, 3, figsize=(FULL_WIDTH, 2.3), gridspec_kw={"width_ratios": [1.3, 1, 1], "wspace": 0.42})
        fig.subplots_adjust(left=0.08, right=0.99, bottom=0.26)
        ax_a.set_title("(a) Full data" + (f", epoch {epoch}" if epoch is not None else ""))
        ax_err.set_title("(b) Error vs data size")
        ax_nll.set_title(r"(c) NLL$_\mathrm{train}$ vs data size")
        draw_fraction_curves(ax_err, ax_nll, curves)
        draw_nll_error(ax_a, points)
        note_missing(fig, missing)
        save(fig, out)
    return fig
