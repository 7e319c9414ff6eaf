"""Fourier analysis of feature maps (paper Fig. 2a and 8), from the ``fourier`` table.

(a) One small panel per series: the relative log amplitude curve of every feature map
    (x = ``freq``, frequency in units of π; y = ``log_amplitude``, the log amplitude minus its
    value at frequency 0), each curve coloured by the map's normalized depth (``depth``) on a
    sequential colormap with a shared "normalized depth" colorbar.
(b) One panel: Δ log amplitude at the highest frequency (``high_freq_delta``) against
    normalized depth (``depth``), one line per series in map order (``map_index``). Markers
    show the map ``kind``: filled = after an MSA sub-block (kind "msa"), open = any other map
    (embed, stem, mlp, conv, pool, mixer_*). The depths of the MSA maps of the first series
    that has any are shaded as light grey bands.

Rows are taken at the figure's ``epoch`` (default: each series' latest epoch); several seeds
of a run are averaged. A series without rows is named on the figure (``note_missing``).

The helpers ``series_rows``, ``seed_mean``, ``draw_depth_profile`` and ``epoch_title`` are
shared with the variance, robustness and landscape figures.
"""

from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from vitprobe.figures.style import FULL_WIDTH, color, note_missing, paper_style, plt, save, select

# Sequential, perceptually uniform; the pale yellow end of viridis is cut off so that the
# deepest maps stay visible on white.
DEPTH_CMAP = ListedColormap(mpl.colormaps["viridis"](np.linspace(0.0, 0.9, 256)), name="viridis_depth")
DEPTH_NORM = Normalize(0.0, 1.0)
BAND_COLOR = "0.88"
BAND_GID = "msa-band"
MSA_KINDS = ("msa",)
RUN_KEYS = ["dataset", "model", "kernel_size", "fraction"]
PANELS_PER_ROW = 4


# ---- shared helpers ---------------------------------------------------------------------
def series_rows(table: pd.DataFrame, series: dict, epoch: int | None) -> pd.DataFrame:
    """The rows a figure series selects, at `epoch`, or at the series' latest epoch when
    `epoch` is None. Rows may come from several seeds of one run (they are averaged later),
    but not from different runs: a series matching e.g. several data fractions must name
    the one it shows."""
    rows = select(table, series, epoch)
    if len(rows) and epoch is None:
        rows = rows[rows["epoch"] == rows["epoch"].max()]
    runs = rows[RUN_KEYS].drop_duplicates()
    if len(runs) > 1:
        found = "; ".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in runs.to_dict("records"))
        raise ValueError(f"figure series {series['label']!r} selects rows of {len(runs)} different runs "
                         f"({found}); give its fraction and/or kernel_size so it selects one run (seeds are averaged)")
    return rows


def seed_mean(rows: pd.DataFrame, keys: list[str], mean: list[str], first: tuple[str, ...] = ()) -> pd.DataFrame:
    """Average the `mean` columns over seeds for every value of `keys` (sorted by `keys`);
    the `first` columns describe the key (e.g. a map's kind and depth) and are kept as is."""
    agg = {c: "mean" for c in mean} | {c: "first" for c in first}
    return rows.groupby(keys, sort=True, as_index=False).agg(agg)


def epoch_title(title: str, epochs: dict[str, int]) -> str:
    """`title` followed by the epoch shown (one epoch), or each series' epoch."""
    values = sorted(set(epochs.values()))
    if not values:
        return title
    if len(values) == 1:
        return f"{title} (epoch {values[0]})"
    return f"{title} (epochs: " + ", ".join(f"{k} {v}" for k, v in epochs.items()) + ")"


def _band_half_width(depths: np.ndarray) -> float:
    steps = np.diff(np.unique(depths))
    return float(steps.min()) / 2 if len(steps) else 0.02


def draw_depth_profile(ax, profiles: dict[str, pd.DataFrame], value: str, colors: dict[str, str]) -> list:
    """One line per series of `value` against normalized depth, in map order, on `ax`.

    `profiles[label]` has one row per map with columns map_index, depth, kind and `value`.
    Markers: filled for MSA maps, open for the others. The MSA depths of the first series
    that has MSA maps are shaded as grey bands (gid ``BAND_GID``). Returns legend handles:
    the series, then the marker and band keys."""
    handles = []
    band_of = None
    for label, prof in profiles.items():
        prof = prof.sort_values("map_index")
        x, y = prof["depth"].to_numpy(), prof[value].to_numpy()
        msa = prof["kind"].isin(MSA_KINDS).to_numpy()
        c = colors[label]
        (line,) = ax.plot(x, y, color=c, label=label, zorder=2)
        ax.plot(x[msa], y[msa], ls="none", marker="o", ms=3.5, color=c, zorder=3, label="_msa")
        ax.plot(x[~msa], y[~msa], ls="none", marker="o", ms=3.5, color=c, mfc="white", mew=0.9, zorder=3,
                label="_other")
        handles.append(line)
        if band_of is None and msa.any():
            band_of = label
            half = _band_half_width(x)
            for d in x[msa]:
                ax.axvspan(d - half, d + half, color=BAND_COLOR, lw=0, zorder=0, gid=BAND_GID)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("Normalized depth")
    if profiles:
        handles += [Line2D([], [], ls="none", marker="o", ms=3.5, color="0.3", label="MSA map"),
                    Line2D([], [], ls="none", marker="o", ms=3.5, color="0.3", mfc="white", mew=0.9,
                           label="other map")]
    if band_of is not None:
        handles.append(Patch(color=BAND_COLOR, label=f"MSA depths ({band_of})"))
    return handles


def panel_grid(subfig, n: int, per_row: int = PANELS_PER_ROW, min_cols: int = 1, **kwargs):
    """`n` small panels (at least one) in rows of up to `per_row`, in at least `min_cols`
    columns (so that a lone square panel is not stretched over the whole width); unused
    slots hidden."""
    n = max(n, 1)
    cols = max(min(n, per_row), min(min_cols, per_row))
    rows = math.ceil(n / cols)
    axes = subfig.subplots(rows, cols, squeeze=False, **kwargs).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return list(axes[:n])


def label_panels(axes: list, xlabel: str, ylabel: str, per_row: int = PANELS_PER_ROW) -> None:
    """Axis labels (and tick labels) on a panel grid: y on the first column, x on every
    panel with no panel below it."""
    n, cols = len(axes), min(len(axes), per_row)
    for i, ax in enumerate(axes):
        bottom = i + cols >= n
        ax.tick_params(labelbottom=bottom)
        ax.set_xlabel(xlabel if bottom else "")
        ax.set_ylabel(ylabel if i % cols == 0 else "")


# ---- the figure -------------------------------------------------------------------------
def series_data(table: pd.DataFrame, series: list[dict], epoch: int | None):
    """Per present series: (curves, high-frequency profile, epoch). `curves` has one row per
    (map, frequency) with the seed-mean log amplitude; the profile one row per map."""
    data = {}
    for s in series:
        rows = series_rows(table, s, epoch)
        if not len(rows):
            continue
        curves = seed_mean(rows, ["map_index", "freq"], ["log_amplitude"], ("depth", "kind"))
        profile = seed_mean(rows, ["map_index"], ["high_freq_delta"], ("depth", "kind"))
        data[s["label"]] = (curves, profile, int(rows["epoch"].iloc[0]))
    return data


def draw_curves(ax, curves: pd.DataFrame) -> None:
    for index, m in curves.groupby("map_index", sort=True):
        m = m.sort_values("freq")
        ax.plot(m["freq"], m["log_amplitude"], color=DEPTH_CMAP(DEPTH_NORM(m["depth"].iloc[0])), lw=0.9,
                gid=f"map {index}")


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    cfg = spec
    series = cfg["series"]
    data = series_data(tables["fourier"], series, cfg.get("epoch"))
    colors = {s["label"]: color(i) for i, s in enumerate(series)}
    n_panels = max(len(data), 1)
    rows_a = math.ceil(n_panels / min(n_panels, PANELS_PER_ROW))
    with paper_style():
        fig = plt.figure(figsize=(FULL_WIDTH, 1.75 * rows_a + 2.5), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.75 * rows_a + 0.3, 2.2])
        axes_a = panel_grid(top, n_panels, sharex=True, sharey=True)
        for ax, (label, (curves, _, _)) in zip(axes_a, data.items()):
            draw_curves(ax, curves)
            ax.set_title(label)
        label_panels(axes_a, "Frequency (units of π)", "Δ log amplitude")
        for ax in axes_a:
            ax.set_xlim(0, 1)
            ax.axhline(0, color="0.6", lw=0.6, ls=":", zorder=0)
        if not data:
            axes_a[0].text(0.5, 0.5, "no data", transform=axes_a[0].transAxes, ha="center", va="center", color="0.5")
        sm = mpl.cm.ScalarMappable(norm=DEPTH_NORM, cmap=DEPTH_CMAP)
        top.colorbar(sm, ax=axes_a, label="Normalized depth", shrink=0.9, aspect=25 * rows_a)
        top.suptitle(epoch_title("(a) Relative log amplitude of Fourier-transformed feature maps",
                                 {k: v[2] for k, v in data.items()}))

        ax_b = bottom.subplots()
        handles = draw_depth_profile(ax_b, {k: v[1] for k, v in data.items()}, "high_freq_delta", colors)
        ax_b.set_ylabel("Δ log amplitude\nat high frequency")
        ax_b.set_title("(b) Δ log amplitude at the highest frequency vs depth")
        if handles:
            ax_b.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5))
        note_missing(fig, [s["label"] for s in series if s["label"] not in data])
        save(fig, out)
    return fig
