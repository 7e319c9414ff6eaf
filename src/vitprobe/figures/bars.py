"""What a figure's error bars and bands are: a series' value over its seeds with its interval
(`Stat`), the same per map or frequency (`seed_profile`), the interval of a mean over images
from a per-image table, and the note that says what the bars are (`bars_note`).

With several seeds, a value is the mean of the per-seed values and its interval the
t-interval over seeds (`vitprobe.stats.t_interval`); with one seed, the run's own interval
(the table's `<column>_low`/`_high`, from `vitprobe.figures.with_intervals`). NaN bounds:
no interval, the point is drawn without a bar."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vitprobe import stats
from vitprobe.config import load

# The columns that name one run in every table; a run's other rows differ only in what was measured.
RUN_KEYS = ["dataset", "model", "kernel_size", "fraction", "seed"]
SEEDS = "t-interval over {n} seeds"

# What a run's own interval is: (the note's words, with {n} the count; the column with the count).
WILSON_TEST = ("Wilson interval over {n} test images", "n_test")
NLL_TRAIN = ("mean ± z·SE over {n} augmented training images", "n_train")
MINIBATCHES = ("bootstrap over {n} mini-batches", "n_batches")
IMAGES = ("bootstrap over {n} images", "n_images")
PAIRED_IMAGES = ("paired bootstrap over {n} images (clean and noisy)", "n_images")
WILSON_IMAGES = ("Wilson interval over {n} test images", "n_images")
WILSON_HOLDOUT = ("Wilson interval over {n} held-out images", "n_holdout")


@dataclass(frozen=True)
class Stat:
    """A series' value: the mean over its `n` runs (seeds), and its interval lo..hi (NaN: none,
    no bar). `basis`: what the interval is, (the note's words, count), None without one."""
    mean: float
    lo: float
    hi: float
    n: int
    basis: tuple[str, int] | None = None


def over_seeds(values, lows, highs, counts, level: float, words: str | None = None) -> Stat:
    """Stat of per-seed `values` by `vitprobe.stats.over_seeds` (the scorecard's rule): several
    (not NaN), their mean and t-interval; one, the value and its own interval lows[i]..highs[i]
    (over counts[i] units, `words`)."""
    mean, _, lo, hi, n = stats.over_seeds(values, lows, highs, level)
    if n != 1:
        return Stat(mean, lo, hi, n, (SEEDS, n) if n else None)
    if np.isnan(lo) or np.isnan(hi):
        return Stat(mean, math.nan, math.nan, 1)
    i = int(np.flatnonzero(~np.isnan(np.asarray(values, dtype=float)))[0])
    return Stat(mean, lo, hi, 1, (words, int(counts[i])) if words else None)


def _own_interval(run: pd.DataFrame, column: str) -> tuple[float, float]:
    """The run's `<column>_low`/`_high` when all its rows agree on the column (one summary row,
    or a value repeated on every row, e.g. a map's high-frequency Δ); else none."""
    low, high = f"{column}_low", f"{column}_high"
    if low not in run or high not in run or run[column].nunique(dropna=False) != 1:
        return math.nan, math.nan
    lo, hi = run[low].unique(), run[high].unique()
    return (float(lo[0]), float(hi[0])) if len(lo) == 1 and len(hi) == 1 else (math.nan, math.nan)


def stat(rows: pd.DataFrame, column: str, level: float, basis: tuple[str, str | None] | None = None,
         interval=None) -> Stat | None:
    """Each run's mean of `column` over its rows (e.g. over noise frequencies), then `over_seeds`
    (None without rows). A run's own interval: `interval(run rows)` -> (low, high, count) if
    given, else `_own_interval` over the count in column basis[1]."""
    if not len(rows):
        return None
    values, lows, highs, counts = [], [], [], []
    for _, run in rows.groupby(RUN_KEYS, dropna=False, sort=True):
        values.append(run[column].mean())
        if interval is not None:
            lo, hi, count = interval(run)
        else:
            lo, hi = _own_interval(run, column)
            col = basis[1] if basis else None
            count = run[col].max() if col in run else 0
        lows.append(lo)
        highs.append(hi)
        counts.append(count)
    return over_seeds(values, lows, highs, counts, level, basis[0] if basis else None)


def shifted(s: Stat, offset: float, scale: float = 1.0) -> Stat:
    """offset + scale * s (low and high swap when scale < 0), e.g. accuracy = 100 - error."""
    lo, hi = sorted((offset + scale * s.lo, offset + scale * s.hi))
    return Stat(offset + scale * s.mean, lo, hi, s.n, s.basis)


def scaled(rows: pd.DataFrame, column: str, factor: float) -> pd.DataFrame:
    """`rows` with `column` and its interval columns times `factor` (e.g. a share in %)."""
    cols = [c for c in (column, f"{column}_low", f"{column}_high") if c in rows]
    return rows.assign(**{c: rows[c] * factor for c in cols})


def seed_profile(rows: pd.DataFrame, keys: list[str], column: str, level: float, basis=None,
                 first: tuple[str, ...] = ()) -> tuple[pd.DataFrame, list[Stat]]:
    """Per value of `keys` (sorted; e.g. a map, a noise frequency): `stat` of `column` as the
    columns `column`, `<column>_low`, `<column>_high`, with the `first` columns (e.g. a map's
    depth and kind) as they are; and the Stats (for `bars_note`)."""
    out, found = [], []
    for key, g in rows.groupby(keys, sort=True):
        s = stat(g, column, level, basis)
        found.append(s)
        out.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))),
                    **{c: g[c].iloc[0] for c in first},
                    column: s.mean, f"{column}_low": s.lo, f"{column}_high": s.hi})
    cols = [*keys, *first, column, f"{column}_low", f"{column}_high"]
    return pd.DataFrame(out, columns=cols), found


def level_of(spec: dict, *tables: pd.DataFrame | None) -> float:
    """The level of the bars: the tables' `interval_level` (None: no table), else the spec's
    `intervals.level`."""
    for t in tables:
        if t is not None and "interval_level" in t and t["interval_level"].notna().any():
            return float(t["interval_level"].dropna().iloc[0])
    return load.intervals(spec).level


def image_mean_interval(units: pd.DataFrame | None, run: pd.DataFrame, column: str, ci: stats.Intervals,
                        keep=None) -> tuple[float, float, int]:
    """(low, high, images) of 100 · the mean over images of each image's mean `column` over
    its rows in `units` (a per-image table, e.g. correctness under each corruption and
    severity) at the run and epoch of the summary rows `run`; `keep(units)` selects the unit
    rows (e.g. the 15 standard corruptions). The expanded percentile bootstrap over images
    (`vitprobe.stats`); NaN with fewer than `stats.MIN_UNITS` images."""
    if units is None or not len(units) or "run" not in run:
        return math.nan, math.nan, 0
    rid, epoch = run["run"].iloc[0], run["epoch"].iloc[0]
    sub = units[(units["run"] == rid) & (units["epoch"] == epoch)]
    if keep is not None:
        sub = sub[keep(sub)]
    per_image = 100.0 * sub.groupby("image")[column].mean().to_numpy(dtype=float)
    n = per_image.size
    if n < stats.MIN_UNITS:
        return math.nan, math.nan, n
    w = stats.weights(n, ci.resamples, ci.rng(rid, epoch, column, "image mean"))
    lo, hi = stats.percentile(w @ per_image / n, n, ci.level)
    return lo, hi, n


def _counts(ns: list[int]) -> str:
    lo, hi = min(ns), max(ns)
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


def bars_note(level: float, found: dict[str, list], kind: str = "bars") -> str:
    """What the bars are, e.g. "bars: 95 % Wilson interval over 1000 test images; 1 seed":
    per quantity (`found`: {name: Stats drawn}; quantities saying the same are merged) the
    kinds of interval drawn with their counts; "1 seed" when no series has several, else a
    run's own interval is marked "(1 seed)"."""
    found = {q: [s for s in ss if s is not None and not np.isnan(s.mean)] for q, ss in found.items()}
    drawn = [s for ss in found.values() for s in ss]
    if not drawn:
        return ""
    several = any(s.n > 1 for s in drawn)
    texts: dict[str, list[str]] = {}
    for q, ss in found.items():
        words: dict[str, list[int]] = {}
        for s in ss:
            if s.basis is not None:
                words.setdefault(s.basis[0], []).append(s.basis[1])
        text = " or ".join(w.format(n=_counts(ns)) + (" (1 seed)" if several and w != SEEDS else "")
                           for w, ns in words.items()) or "no interval"
        texts.setdefault(text, []).append(q)
    if all(t == "no interval" for t in texts):
        return f"{kind}: none (no intervals in the tables)" + ("" if several else "; 1 seed")
    if len(texts) == 1:
        body = next(iter(texts))
    else:
        body = "intervals — " + "; ".join(f"{', '.join(qs)}: {t}" for t, qs in texts.items())
    return f"{kind}: {100 * level:g} % {body}" + ("" if several else "; 1 seed")
