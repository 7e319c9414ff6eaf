"""Intervals: how sure a number is. numpy and scipy only (no torch), so that the tables'
aggregation, the figures and the claims use them without a model in sight.

Every interval is two-sided at `level` (config key `intervals.level`, default 0.95):

- `wilson(k, n)`: the Wilson score interval of a proportion k/n (test error, accuracy):
  centre (k + z²/2)/(n + z²), half width z·√(k(n−k)/n + z²/4)/(n + z²), z = Φ⁻¹(1 − α/2)
  (Wilson 1927). Unlike the normal interval it stays inside [0, 1] and is not empty at k = 0.
- `t_interval(values)`: mean ± t_{S−1, 1−α/2}·sd/√S over S values (seeds); sd with ddof 1.
- `bootstrap(...)`: the *expanded percentile* bootstrap (Hesterberg 2015, "What teachers
  should know about the bootstrap", The American Statistician 69(4), sec. 6.2): resample the
  n units (images, mini-batches, seeds) with replacement `resamples` times, recompute the
  statistic, and read the percentiles at α'/2 and 1 − α'/2, where Φ⁻¹(1 − α'/2) =
  √(n/(n−1))·t_{n−1, 1−α/2}. The plain percentile interval is too narrow for small n (it
  is, for a mean, about the z-interval with sd·√((n−1)/n)); the expansion corrects both
  factors, so 5 mini-batches give nearly the range of the replicates and 1 000 images the
  plain percentile interval. Below `MIN_UNITS` units there is no interval (NaN).
  Resamples are multinomial weights on the units, so a statistic that is a ratio of
  weighted sums (a mean, NEP, APE, ECE) is a matrix product per replicate.
  Seeded: the same inputs and `seed` give the same interval.

A *paired* bootstrap resamples one set of units for two quantities measured on the same
units (an image clean and corrupted, two models on the same test images): the weights are
shared, so the interval of the difference sees only the spread of the per-unit differences.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: The fewest units a bootstrap interval is computed over (below: NaN). No percentile interval
#: can leave the range of the units' values, and the range of n draws holds the median with
#: probability 1 − 2^(1−n): 75 % for 3 units, 94 % for 5 (coverage measured in the tests).
MIN_UNITS = 5


@dataclass(frozen=True)
class Intervals:
    """How intervals are computed: the config block `intervals` (`of`)."""
    level: float
    resamples: int
    seed: int

    def __post_init__(self):
        if not 0 < self.level < 1:
            raise ValueError(f"intervals.level must be in (0, 1); got {self.level}")
        if self.resamples < 100:
            raise ValueError(f"intervals.resamples must be at least 100; got {self.resamples}")

    @classmethod
    def of(cls, block: dict) -> "Intervals":
        """From a complete `intervals` block (a validated config has one;
        `vitprobe.config.load.intervals` fills a partial one from the schema)."""
        return cls(**{k: block[k] for k in ("level", "resamples", "seed")})

    def rng(self, *salt) -> np.random.Generator:
        """A generator seeded by `seed` and `salt` (e.g. a run id and epoch): the same salt, the
        same resamples, whatever else is in the table."""
        return np.random.default_rng([self.seed, zlib.crc32("|".join(map(str, salt)).encode())])


def z_value(level: float) -> float:
    from scipy.stats import norm  # scipy.stats takes 0.3 s to import: only interval jobs pay it

    return float(norm.ppf(0.5 + level / 2))


def wilson(successes, n, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (low, high) of the proportion successes/n, in [0, 1]; NaN for n = 0."""
    k, n = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    z = z_value(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (k + z * z / 2) / (n + z * z)
        half = z * np.sqrt(k * (n - k) / n + z * z / 4) / (n + z * z)
        low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    bad = n <= 0
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def t_interval(values, level: float) -> tuple[float, float, float, float]:
    """(mean, sd, low, high) of `values` (NaN dropped): mean ± t_{S−1}·sd/√S; sd, low, high
    NaN below 2 values."""
    from scipy.stats import t  # scipy.stats takes 0.3 s to import: only interval jobs pay it

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (float("nan"),) * 4
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = float(v.std(ddof=1))
    half = float(t.ppf(0.5 + level / 2, v.size - 1)) * sd / np.sqrt(v.size)
    return mean, sd, mean - half, mean + half


def over_seeds(values, lows, highs, level: float) -> tuple[float, float, float, float, int]:
    """(mean, sd, low, high, n) of a quantity measured once per seed, the one rule for the
    scorecard and the figures: the seeds without a value (NaN) are left out; of several, the
    mean and its t-interval (`t_interval`); of one, its value and that seed's own interval
    lows[i]..highs[i] (sd NaN); of none, NaN. n: the seeds counted."""
    v = np.asarray(values, dtype=float)
    known = np.flatnonzero(~np.isnan(v))
    if len(known) > 1:
        mean, sd, low, high = t_interval(v[known], level)
        return mean, sd, low, high, len(known)
    if not len(known):
        return (float("nan"),) * 4 + (0,)
    i = known[0]
    return float(v[i]), float("nan"), float(np.asarray(lows, float)[i]), float(np.asarray(highs, float)[i]), 1


def expanded_alpha(n: int, level: float) -> float:
    """α' of the expanded percentile interval for n units (module docstring); NaN below
    `MIN_UNITS`."""
    from scipy.stats import norm, t  # scipy.stats takes 0.3 s to import: only interval jobs pay it

    if n < MIN_UNITS:
        return float("nan")
    q = np.sqrt(n / (n - 1)) * t.ppf(0.5 + level / 2, n - 1)
    return float(2 * norm.sf(q))


def weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) float: how often each of n units is drawn in each resample (rows sum to n)."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)


def percentile(replicates, n: int, level: float) -> tuple[float, float]:
    """(low, high) of the expanded percentile interval from bootstrap `replicates` of a
    statistic over `n` units (NaN replicates dropped; NaN if none, or n < MIN_UNITS)."""
    r = np.asarray(replicates, dtype=float)
    r = r[~np.isnan(r)]
    a = expanded_alpha(n, level)
    if r.size == 0 or np.isnan(a):
        return float("nan"), float("nan")
    low, high = np.quantile(r, [a / 2, 1 - a / 2])
    return float(low), float(high)


def ratio_replicates(numerators, denominators, w: np.ndarray) -> np.ndarray:
    """Replicates of Σ num / Σ den under weights `w` (resamples, n): per-unit sums in, a
    pooled ratio out (a mean: den = 1; NEP: negatives / eigenvalues per batch)."""
    num = np.asarray(numerators, dtype=float)
    den = np.broadcast_to(np.asarray(denominators, dtype=float), num.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ num) / (w @ den)


def bootstrap_mean(values, level: float, resamples: int, seed: int) -> tuple[float, float]:
    """Expanded percentile interval of the mean of `values` (NaN dropped)."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size < MIN_UNITS:
        return float("nan"), float("nan")
    w = weights(v.size, resamples, np.random.default_rng(seed))
    return percentile(w @ v / v.size, v.size, level)


def bootstrap_ratio(numerators, denominators, level: float, resamples: int,
                    seed: int) -> tuple[float, float]:
    """Expanded percentile interval of Σ num / Σ den over units (e.g. NEP over mini-batches)."""
    num = np.asarray(numerators, dtype=float)
    if num.size < MIN_UNITS:
        return float("nan"), float("nan")
    w = weights(num.size, resamples, np.random.default_rng(seed))
    return percentile(ratio_replicates(num, denominators, w), num.size, level)


def paired_bootstrap_mean_difference(a, b, level: float, resamples: int,
                                     seed: int) -> tuple[float, float, float]:
    """(mean(a − b), low, high): a and b measured on the same units (a[i], b[i] of unit i),
    resampled together."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per unit in each: shapes {a.shape} and {b.shape}")
    d = a - b
    return (float(np.nanmean(d)) if d.size else float("nan"), *bootstrap_mean(d, level, resamples, seed))


def ece_replicates(confidence, correct, w: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Replicates of the expected calibration error (10 equal-width bins, as the eval probe's
    `expected_calibration_error`) under bootstrap weights `w` over images; NaN where any
    confidence is not finite (a diverged model has no calibration)."""
    conf = np.asarray(confidence, dtype=float)
    if not np.isfinite(conf).all():
        return np.full(len(w), np.nan)
    gap = np.asarray(correct, dtype=float) - conf
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    onehot = np.zeros((conf.size, n_bins))
    onehot[np.arange(conf.size), bins] = 1.0
    per_bin = w @ (onehot * gap[:, None])  # (resamples, bins): Σ_i w_i (correct_i − conf_i) over the bin
    return np.abs(per_bin).sum(axis=1) / w.sum(axis=1)


def ece(confidence, correct, n_bins: int = 10) -> float:
    """Expected calibration error of per-image confidences and correctness (one replicate of
    weight 1 each)."""
    conf = np.asarray(confidence, dtype=float)
    return float(ece_replicates(conf, correct, np.ones((1, conf.size)), n_bins)[0])


#: A claim's verdict from its effect (positive = the paper's direction) and interval.
VERDICTS = ("shows", "leans", "leans against", "contradicts", "n/a")


def verdict(effect: float, low: float, high: float) -> str:
    """shows: the interval excludes 0 in the paper's direction (low > 0); contradicts: it
    excludes 0 against it (high < 0); leans / leans against: the interval holds 0 and the
    point estimate is for / against (0 itself: leans against), and so where the interval is
    undefined (NaN: too few units); n/a: no effect (NaN: a run it needs is missing)."""
    if np.isnan(effect):
        return "n/a"
    if low > 0:
        return "shows"
    if high < 0:
        return "contradicts"
    return "leans" if effect > 0 else "leans against"


def percentile_columns(replicates: np.ndarray, n: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """`percentile` of each column of `replicates` (resamples, columns), all over `n` units."""
    reps = np.asarray(replicates, dtype=float)
    a = expanded_alpha(n, level)
    if np.isnan(a) or reps.size == 0:
        return np.full(reps.shape[1], np.nan), np.full(reps.shape[1], np.nan)
    with np.errstate(invalid="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
            low, high = np.nanquantile(reps, [a / 2, 1 - a / 2], axis=0)
    return low, high


def mean_intervals(rows: pd.DataFrame, units: pd.DataFrame, keys: list[str], column: str, ci: Intervals,
                   unit: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """For each row of `rows` (a summary table), the interval of the mean of `units[column]`
    over the units (`unit`: image, batch) of the row's run and epoch with the row's `keys`
    values (e.g. map_index): one bootstrap per run and epoch, its resamples shared by all
    of that checkpoint's rows (so differences between them are paired). NaN values are left
    out of a mean; a row without units gets NaN."""
    low, high = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    if units is None or units.empty or rows.empty:
        return low, high
    groups = dict(tuple(units.groupby(["run", "epoch"], sort=False)))
    for (run, epoch), idx in rows.groupby(["run", "epoch"], sort=False).groups.items():
        sub = groups.get((run, epoch))
        if sub is None:
            continue
        wide = sub.pivot_table(index=unit, columns=keys, values=column, aggfunc="mean", dropna=False) if keys else \
            sub.groupby(unit)[[column]].mean()
        values = wide.to_numpy(dtype=float)
        known = ~np.isnan(values)
        w = weights(len(wide), ci.resamples, ci.rng(run, epoch, column))
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = (w @ np.where(known, values, 0.0)) / (w @ known)
        lo, hi = percentile_columns(reps, len(wide), ci.level)
        at = {k if isinstance(k, tuple) else (k,): i for i, k in enumerate(wide.columns)} if keys else {(): 0}
        for i in idx:
            j = at.get(tuple(rows.loc[i, keys]) if keys else ())
            if j is not None:
                low[i], high[i] = lo[j], hi[j]
    return low, high


def checkpoint_intervals(rows: pd.DataFrame, units: pd.DataFrame, statistic, ci: Intervals, name: str,
                         unit: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """For each row of `rows` (one per run and epoch), the interval of `statistic(units, w)`,
    the replicates (resamples,) of a statistic of that checkpoint's units (sorted by `unit`)
    under bootstrap weights w (resamples, units): e.g. `ece_replicates`."""
    low, high = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    if units is None or units.empty:
        return low, high
    groups = dict(tuple(units.groupby(["run", "epoch"], sort=False)))
    for i, (run, epoch) in enumerate(zip(rows["run"], rows["epoch"])):
        sub = groups.get((run, epoch))
        if sub is None or len(sub) < MIN_UNITS:
            continue
        sub = sub.sort_values(unit)
        w = weights(len(sub), ci.resamples, ci.rng(run, epoch, name))
        low[i], high[i] = percentile(statistic(sub, w), len(sub), ci.level)
    return low, high


def wilson_columns(rows: pd.DataFrame, percent: str, n: str, ci: Intervals):
    """Wilson (low, high) in % of a column in % (an accuracy or an error) over the `n`
    column's images: the proportion's count is round(percent/100 · n)."""
    k = np.round(rows[percent].to_numpy(dtype=float) / 100 * rows[n].to_numpy(dtype=float))
    low, high = wilson(k, rows[n].to_numpy(dtype=float), ci.level)
    return 100 * low, 100 * high
