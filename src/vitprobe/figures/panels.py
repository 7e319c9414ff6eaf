"""What the figures share: the rows a series selects, the epoch shown, axis labels, error
bars and bands (their values and note: `bars`), and the panels several figures draw
(labelled points, Hessian spectra with NEP/APE, depth profiles, grids of small panels).
Figure modules import this module, `bars` and `style`, never each other."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox

from vitprobe.config.identity import series_matches
from vitprobe.figures.bars import MINIBATCHES, NLL_TRAIN, RUN_KEYS, WILSON_TEST, Stat, bars_note, scaled, stat
from vitprobe.figures.style import FULL_WIDTH, color, note_bars, note_missing, plt, save
from vitprobe.probes.hessian.summary import nep_ape

NLL_LABEL = r"NLL$_\mathrm{train}$ (nats)"
ERROR_LABEL = "Test error (%)"
PANELS_PER_ROW = 4
MSA_KINDS = ("msa",)
BAND_COLOR = "0.88"
BAND_GID = "msa-band"
INTERVAL_GID = "interval-band"  # the band of an interval over depth or frequency


# ---- rows -------------------------------------------------------------------------------
def series_rows(table: pd.DataFrame, series: dict, epoch: int | None, one_run: bool = False) -> pd.DataFrame:
    """The rows of `table` that a figure series selects (model, and fraction/kernel_size when
    the series names them) at `epoch`, or at the series' latest epoch when `epoch` is None.

    With `one_run`, the rows may come from several seeds of one run (they are averaged later)
    but not from different runs: a series matching e.g. several data fractions must name the
    one it shows."""
    rows = table if epoch is None else table[table["epoch"] == epoch]
    rows = rows[[series_matches(series, r) for r in rows.itertuples()]] if len(rows) else rows
    if len(rows) and epoch is None:
        rows = rows[rows["epoch"] == rows["epoch"].max()]
    if one_run:
        runs = rows[[k for k in RUN_KEYS if k != "seed"]].drop_duplicates()
        if len(runs) > 1:
            found = "; ".join(", ".join(f"{k}={v}" for k, v in r.items()) for r in runs.to_dict("records"))
            raise ValueError(f"figure series {series['label']!r} selects rows of {len(runs)} different runs "
                             f"({found}); give its fraction and/or kernel_size so it selects one run "
                             "(seeds are averaged)")
    return rows


def figure_epoch(table: pd.DataFrame, epoch: int | None) -> int | None:
    """The epoch shown: the figure's `epoch`, else the latest epoch in the table (None if empty)."""
    if epoch is not None:
        return int(epoch)
    return int(table["epoch"].max()) if len(table) else None


def full_data(rows: pd.DataFrame, series: dict) -> pd.DataFrame:
    """Rows of the full-data runs: fraction 1, unless the series names its own fraction."""
    return rows if "fraction" in series else rows[np.isclose(rows["fraction"], 1.0)]


def series_eigenvalues(table: pd.DataFrame, series: list[dict], epoch: int | None) -> dict[str, np.ndarray]:
    """Hessian eigenvalues per series label at one epoch (empty arrays for series without data)."""
    return {s["label"]: series_rows(table, s, epoch)["eigenvalue"].to_numpy() for s in series}


def seed_mean(rows: pd.DataFrame, keys: list[str], mean: list[str], first: tuple[str, ...] = ()) -> pd.DataFrame:
    """Average the `mean` columns over seeds for every value of `keys` (sorted by `keys`);
    the `first` columns describe the key (e.g. a map's kind and depth) and are kept as is."""
    agg = {c: "mean" for c in mean} | {c: "first" for c in first}
    return rows.groupby(keys, sort=True, as_index=False).agg(agg)


def seeds_of(rows: pd.DataFrame) -> int:
    """How many runs (seeds) the rows come from."""
    return rows.groupby(RUN_KEYS, dropna=False).ngroups if len(rows) else 0


# ---- labels -----------------------------------------------------------------------------
def epoch_title(title: str, epochs: dict[str, int]) -> str:
    """`title` followed by the epoch shown (one epoch), or each series' epoch."""
    values = sorted(set(epochs.values()))
    if not values:
        return title
    if len(values) == 1:
        return f"{title} (epoch {values[0]})"
    return f"{title} (epochs: " + ", ".join(f"{k} {v}" for k, v in epochs.items()) + ")"


def missing_label(label: str, lacking: list[str], sources: int) -> str | None:
    """How a series is listed under the figure: its label when it has no data at all, the
    label and the lacking parts when some are there, None when nothing lacks."""
    if not lacking:
        return None
    return label if len(lacking) == sources else f"{label} ({', '.join(lacking)})"


def empty_panel(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="0.5", fontsize=7,
            wrap=True)


# ---- error bars and bands: a Stat's interval (`bars`) ------------------------------------
def _centre_and_bars(values):
    means = np.array([v.mean if isinstance(v, Stat) else float(v) for v in values])
    lo = np.array([v.lo if isinstance(v, Stat) else math.nan for v in values])
    hi = np.array([v.hi if isinstance(v, Stat) else math.nan for v in values])
    bars = np.clip(np.vstack([means - lo, hi - means]), 0, None)  # NaN stays NaN: no bar
    return means, (None if np.isnan(bars).all() else bars)


def errorbar(ax, xs, ys, **kwargs):
    """Points at the means of `xs`/`ys` (Stats or plain numbers) with error bars over each
    Stat's lo..hi (none where NaN). Returns the ErrorbarContainer (.lines[0]: the means)."""
    x, xerr = _centre_and_bars(xs)
    y, yerr = _centre_and_bars(ys)
    kwargs = {"fmt": "o", "ms": 4, "capsize": 1.5, "elinewidth": 0.8, "capthick": 0.8, **kwargs}
    return ax.errorbar(x, y, xerr=xerr, yerr=yerr, **kwargs)


def band(ax, x, lo, hi, color: str, alpha: float = 0.22) -> list:
    """Shade lo..hi over `x` (ascending) in `color` where both bounds are known (NaN: a gap);
    a known point between gaps gets a short vertical bar. Artists with gid `INTERVAL_GID`."""
    x, lo, hi = (np.asarray(a, dtype=float) for a in (x, lo, hi))
    known = np.flatnonzero(~(np.isnan(lo) | np.isnan(hi)))
    artists = []
    for run in np.split(known, np.flatnonzero(np.diff(known) > 1) + 1) if len(known) else []:
        if len(run) > 1:
            artists.append(ax.fill_between(x[run], lo[run], hi[run], color=color, alpha=alpha, lw=0, zorder=1,
                                           gid=INTERVAL_GID))
        else:
            artists.append(ax.vlines(x[run], lo[run], hi[run], color=color, alpha=0.6, lw=2, zorder=1,
                                     gid=INTERVAL_GID))
    return artists


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


def draw_labelled_points(ax, points, xlabel: str, ylabel: str, margins=(0.2, 0.15)) -> None:
    """One labelled marker per series at (x, y), in the series' colours, with bars over the
    Stats' intervals; `points` holds (label, series index, x Stat, y Stat)."""
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


def nll_error_points(table: pd.DataFrame, series: list[dict], epoch: int | None, level: float):
    """(label, series index, nll_train Stat, error Stat) per series with full-data rows in the
    `eval` table, and the labels of the series without ("label (full data)" when it only has
    smaller fractions)."""
    points, missing = [], []
    for i, s in enumerate(series):
        rows = series_rows(table, s, epoch)
        full = full_data(rows, s)
        if len(full):
            points.append((s["label"], i, stat(full, "nll_train", level, NLL_TRAIN),
                           stat(full, "error", level, WILSON_TEST)))
        else:
            missing.append(s["label"] if not len(rows) else f"{s['label']} (full data)")
    return points, missing


def draw_nll_error(ax, points) -> None:
    """Labelled markers at (NLL_train, error), one per series."""
    draw_labelled_points(ax, points, NLL_LABEL, ERROR_LABEL)


# ---- Hessian spectra: negative eigenvalues left, positive right -------------------------
def draw_spectra(ax_neg, ax_pos, values: dict[str, np.ndarray], bins: int = 40,
                 seeds: dict[str, int] | None = None) -> list:
    """Histogram densities of each series' eigenvalues, negative part on `ax_neg` and the rest
    on `ax_pos`, normalized over the whole spectrum (both panels together integrate to 1).
    Returns legend handles labelled with the NEP and APE of the histogram's eigenvalues, and
    "k seeds pooled" where `seeds` says a series' eigenvalues come from k > 1 runs."""
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
        pooled = (seeds or {}).get(label, 1)
        text = f"{label} (NEP {100 * nep:.1f}%, APE {ape:.3g}" + (f"; {pooled} seeds pooled)" if pooled > 1 else ")")
        for ax, edges, part in [(ax_neg, bins_neg, v[v < 0]), (ax_pos, bins_pos, v[v >= 0])]:
            counts, _ = np.histogram(part, bins=edges)
            density = counts / (len(v) * np.diff(edges))
            h = ax.stairs(np.where(density > 0, density, np.nan), edges, color=color(i), label=text)
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


def spectrum_stats(summary: pd.DataFrame, eigenvalues: pd.DataFrame, level: float) -> tuple[Stat, Stat] | None:
    """NEP (%) and APE of one spectrum over its seeds: from its hessian_summary rows (a run's
    own interval: the bootstrap over its mini-batches), else from each run's eigenvalues (no
    run interval); None without either."""
    if len(summary):
        rows = scaled(summary, "nep", 100.0)
        return stat(rows, "nep", level, MINIBATCHES), stat(rows, "ape", level, MINIBATCHES)
    if not len(eigenvalues):
        return None
    rows = pd.DataFrame([{**dict(zip(RUN_KEYS, key)), **dict(zip(("nep", "ape"), nep_ape(g["eigenvalue"])))}
                         for key, g in eigenvalues.groupby(RUN_KEYS, dropna=False)])
    rows = scaled(rows, "nep", 100.0)
    return stat(rows, "nep", level), stat(rows, "ape", level)


def series_spectra(tables: dict[str, pd.DataFrame], series: list[dict], epoch: int | None, level: float):
    """Per series label, from the `hessian` and `hessian_summary` tables at `epoch`: its
    eigenvalues, the (NEP, APE) Stats (`spectrum_stats`) and how many seeds its rows pool."""
    values, found, seeds = {}, {}, {}
    summaries = tables.get("hessian_summary")
    for s in series:
        eig = series_rows(tables["hessian"], s, epoch)
        summary = series_rows(summaries, s, epoch) if summaries is not None else eig.iloc[:0]
        values[s["label"]] = eig["eigenvalue"].to_numpy()
        found[s["label"]] = spectrum_stats(summary, eig, level)
        seeds[s["label"]] = seeds_of(eig)
    return values, found, seeds


def spectrum_quantities(found: dict) -> dict[str, list]:
    """The NEP and APE Stats of `series_spectra`, for `bars_note`."""
    return {"NEP": [f[0] for f in found.values() if f], "APE": [f[1] for f in found.values() if f]}


def draw_nep_ape(ax_nep, ax_ape, found: dict) -> None:
    """NEP (%) above APE: one marker per spectrum with bars over its interval, at the spectrum's
    place and in its colour in `draw_spectra` (the same order of labels)."""
    for i, (label, pair) in enumerate(found.items()):
        for ax, s in zip((ax_nep, ax_ape), pair or ()):
            if s is not None and not np.isnan(s.mean):
                errorbar(ax, [i], [s], color=color(i), label=label, ms=3.5)
    n = max(len(found), 1)
    for ax, name in [(ax_nep, "NEP (%)"), (ax_ape, "APE")]:
        ax.set_ylabel(name, labelpad=1)
        ax.set_xticks(range(n), [""] * n)
        ax.set_xlim(-0.6, n - 0.4)
        ax.margins(y=0.25)
        ax.yaxis.set_major_locator(MaxNLocator(3))
    ax_nep.set_title("(d) NEP, APE")


def spectra_axes(fig, cell):
    """In a gridspec `cell`: the two spectrum panels close together, sharing their (log)
    density axis, then a narrow column of NEP above APE; (neg, pos, nep, ape)."""
    outer = cell.subgridspec(1, 2, width_ratios=[2, 0.5], wspace=0.3)
    sub = outer[0, 0].subgridspec(1, 2, wspace=0.08)
    ax_neg = fig.add_subplot(sub[0, 0])
    ax_pos = fig.add_subplot(sub[0, 1], sharey=ax_neg)
    ax_pos.tick_params(which="both", labelleft=False)
    right = outer[0, 1].subgridspec(2, 1, hspace=0.15)
    ax_nep = fig.add_subplot(right[0, 0])
    ax_ape = fig.add_subplot(right[1, 0], sharex=ax_nep)
    ax_nep.tick_params(labelbottom=False)
    return ax_neg, ax_pos, ax_nep, ax_ape


def layout(height: float = 2.4, wspace: float = 0.32, a_rows: int = 1):
    """A full-width row: panel (a) (split into `a_rows` stacked axes sharing x, returned as a
    tuple when more than one), then the spectrum and NEP/APE panels (`spectra_axes`, a
    tuple); `wspace` is the gap between (a) and the spectra, as a share of the mean panel
    width. Returns (fig, (a), spectra axes)."""
    fig = plt.figure(figsize=(FULL_WIDTH, height))
    gs = fig.add_gridspec(1, 2, width_ratios=[1, 2.6], wspace=wspace, left=0.08, right=0.99, bottom=0.2)
    if a_rows == 1:
        ax_a = fig.add_subplot(gs[0, 0])
    else:
        left = gs[0, 0].subgridspec(a_rows, 1, hspace=0.12)
        ax_a = (fig.add_subplot(left[0, 0]),)
        ax_a += tuple(fig.add_subplot(left[i, 0], sharex=ax_a[0]) for i in range(1, a_rows))
        for ax in ax_a[:-1]:
            ax.tick_params(labelbottom=False)
    return fig, ax_a, spectra_axes(fig, gs[0, 1])


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


def draw_spectra_panels(fig, axes, values: dict, found: dict, seeds: dict, bins: int, epoch) -> None:
    """The Hessian spectra (b, c) with their legend above and NEP/APE (d) on `spectra_axes`."""
    ax_neg, ax_pos, ax_nep, ax_ape = axes
    handles = draw_spectra(ax_neg, ax_pos, values, bins, seeds)
    ax_neg.set_title("(b) Negative part")
    ax_pos.set_title("(c) Positive part")
    draw_nep_ape(ax_nep, ax_ape, found)
    spectra_legend(fig, ax_neg, ax_pos, handles, epoch)


def finish(fig, level: float, found: dict[str, list], missing: list, out, kind: str = "bars") -> None:
    """Under the figure, what its bars are (`bars_note` of the Stats drawn, by quantity) and
    the series without data; then save."""
    note_bars(fig, bars_note(level, found, kind))
    note_missing(fig, [m for m in missing if m])
    save(fig, out)


# ---- depth profiles and grids of small panels -------------------------------------------
def _band_half_width(depths: np.ndarray) -> float:
    steps = np.diff(np.unique(depths))
    return float(steps.min()) / 2 if len(steps) else 0.02


def draw_depth_profile(ax, profiles: dict[str, pd.DataFrame], value: str, colors: dict[str, str]) -> list:
    """One line per series of `value` against normalized depth, in map order, on `ax`.

    `profiles[label]` has one row per map with columns map_index, depth, kind and `value`,
    and if it has `<value>_low`/`_high` a band over them (`band`). Markers: filled for MSA
    maps, open for the others. The MSA depths of the first series that has MSA maps are
    shaded as grey bands (gid ``BAND_GID``). Returns legend handles: the series, then the
    marker and band keys."""
    handles = []
    band_of = None
    for label, prof in profiles.items():
        prof = prof.sort_values("map_index")
        x, y = prof["depth"].to_numpy(), prof[value].to_numpy()
        msa = prof["kind"].isin(MSA_KINDS).to_numpy()
        c = colors[label]
        (line,) = ax.plot(x, y, color=c, label=label, zorder=2)
        if f"{value}_low" in prof:
            band(ax, x, prof[f"{value}_low"], prof[f"{value}_high"], c)
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


def grid_rows(n: int, per_row: int = PANELS_PER_ROW) -> int:
    """How many rows `panel_grid` uses for `n` panels (at least one)."""
    n = max(n, 1)
    return math.ceil(n / min(n, per_row))


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
