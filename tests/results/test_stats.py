"""Intervals against known cases: Wilson against hand-computed values, the bootstrap's
coverage on simulated data with a known truth, the paired bootstrap on a constructed pair."""

import numpy as np
import pytest

from vitprobe import stats


def test_wilson_matches_hand_computed_values():
    # 10 of 100 at 95 %: z = 1.959964, centre (10 + z²/2)/(100 + z²) = 0.114797,
    # half width z·√(10·90/100 + z²/4)/(100 + z²) = 0.059568
    low, high = stats.wilson(10, 100, 0.95)
    assert low == pytest.approx(0.055229, abs=2e-6) and high == pytest.approx(0.174366, abs=2e-6)
    # 0 of 20: the interval starts at 0 and is not empty: (0, z²/(n + z²)) = (0, 0.161125)
    low, high = stats.wilson(0, 20, 0.95)
    assert low == 0 and high == pytest.approx(3.841459 / 23.841459, abs=1e-6)
    # symmetric: k of n and n-k of n mirror each other; vectorised; n = 0 is NaN
    low, high = stats.wilson(np.array([3, 17, 0]), np.array([20, 20, 0]), 0.95)
    assert low[0] == pytest.approx(1 - high[1]) and np.isnan(low[2]) and np.isnan(high[2])


def test_wilson_level_widens_the_interval():
    narrow, wide = stats.wilson(30, 100, 0.8), stats.wilson(30, 100, 0.99)
    assert wide[0] < narrow[0] < 0.3 < narrow[1] < wide[1]


def test_t_interval_matches_the_t_quantile():
    mean, sd, low, high = stats.t_interval([1.0, 2.0, 3.0], 0.95)
    # mean 2, sd 1, t_{2, 0.975} = 4.302653: 2 ± 4.302653/√3
    assert (mean, sd) == (2.0, 1.0)
    assert low == pytest.approx(2 - 4.302653 / np.sqrt(3), abs=1e-6)
    assert high == pytest.approx(2 + 4.302653 / np.sqrt(3), abs=1e-6)
    one = stats.t_interval([5.0], 0.95)
    assert one[0] == 5.0 and all(np.isnan(one[1:]))


@pytest.mark.parametrize("n", [5, 30])
def test_bootstrap_coverage_is_close_to_its_level(n):
    """The expanded percentile interval of a mean covers the true mean in about 95 % of
    simulated samples, at 5 units (where the plain percentile interval covers about 88 %)
    and at 30."""
    rng = np.random.default_rng(12345)
    sims, hits = 600, 0
    for s in range(sims):
        x = rng.normal(loc=3.0, scale=2.0, size=n)
        low, high = stats.bootstrap_mean(x, 0.95, 500, s)
        hits += low <= 3.0 <= high
    assert 0.91 <= hits / sims <= 0.98, hits / sims


def test_bootstrap_has_no_interval_below_min_units():
    assert all(np.isnan(stats.bootstrap_mean([1.0, 2.0, 3.0, 4.0], 0.95, 500, 0)))
    assert not any(np.isnan(stats.bootstrap_mean([1.0, 2.0, 3.0, 4.0, 5.0], 0.95, 500, 0)))
    assert all(np.isnan(stats.bootstrap_ratio([1, 0, 2], [5, 5, 5], 0.95, 500, 0)))


def test_bootstrap_is_seeded():
    x = np.random.default_rng(0).normal(size=50)
    assert stats.bootstrap_mean(x, 0.95, 500, 3) == stats.bootstrap_mean(x, 0.95, 500, 3)
    assert stats.bootstrap_mean(x, 0.95, 500, 3) != stats.bootstrap_mean(x, 0.95, 500, 4)


def test_paired_bootstrap_sees_only_the_differences():
    """a = b + 1 exactly on every unit: the difference is 1 with a zero-width interval, however
    spread a and b are; unpaired, the same data would give a wide interval."""
    b = np.random.default_rng(1).normal(scale=10.0, size=200)
    effect, low, high = stats.paired_bootstrap_mean_difference(b + 1.0, b, 0.95, 2000, 0)
    assert effect == pytest.approx(1.0) and low == pytest.approx(1.0) and high == pytest.approx(1.0)
    # a difference of known mean 0.5 and sd 1 per unit: interval about 0.5 ± 1.96/√400
    d = np.random.default_rng(2).normal(size=400)
    d = (d - d.mean()) / d.std(ddof=1) + 0.5
    effect, low, high = stats.paired_bootstrap_mean_difference(b[:1].repeat(400) + d, b[:1].repeat(400), 0.95, 2000, 0)
    assert effect == pytest.approx(0.5)
    assert low == pytest.approx(0.5 - 1.96 / 20, abs=0.02) and high == pytest.approx(0.5 + 1.96 / 20, abs=0.02)
    with pytest.raises(ValueError, match="one value per unit"):
        stats.paired_bootstrap_mean_difference([1, 2], [1, 2, 3], 0.95, 2000, 0)


def test_ratio_replicates_pool_before_dividing():
    # NEP over 2 batches of 5 eigenvalues, 1 and 3 negative: unit weights give 4/10, and
    # drawing batch 1 twice gives 6/10 (not the mean of the per-batch shares, which it equals here)
    w = np.array([[1.0, 1.0], [0.0, 2.0], [2.0, 0.0]])
    assert stats.ratio_replicates([1, 3], [5, 5], w).tolist() == pytest.approx([0.4, 0.6, 0.2])
    # APE: sums of positives over their counts (batches of unequal counts)
    assert stats.ratio_replicates([6.0, 2.0], [3, 1], np.ones((1, 2)))[0] == pytest.approx(2.0)


def test_ece_from_per_image_values_matches_the_definition():
    # 4 images: confidences 0.95, 0.95 (bin 10), 0.55 (bin 6), 0.15 (bin 2); correct 1, 0, 1, 0
    conf, correct = [0.95, 0.95, 0.55, 0.15], [1, 0, 1, 0]
    # |B|/n·|acc − conf| per bin: 2/4·|0.5 − 0.95| + 1/4·|1 − 0.55| + 1/4·|0 − 0.15|
    assert stats.ece(conf, correct) == pytest.approx(0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.15)
    # a diverged model's NaN confidences have no calibration error (not bin 1's)
    assert np.isnan(stats.ece([0.95, float("nan")], [1, 0]))


@pytest.mark.parametrize("effect, low, high, expected", [
    (2.0, 0.5, 3.0, "shows"),
    (1.0, -0.5, 2.0, "leans"),
    (-1.0, -2.0, 0.5, "leans against"),
    (-2.0, -3.0, -0.5, "contradicts"),
    (1.0, float("nan"), float("nan"), "leans"),
    (float("nan"), float("nan"), float("nan"), "n/a"),
])
def test_verdicts(effect, low, high, expected):
    assert stats.verdict(effect, low, high) == expected


def test_intervals_config_is_checked():
    from vitprobe.config.load import intervals
    assert intervals({"intervals": {"level": 0.9}}).level == 0.9
    assert intervals() == stats.Intervals(level=0.95, resamples=2000, seed=0)  # the schema's defaults
    with pytest.raises(ValueError, match="intervals.level must be in"):
        stats.Intervals(level=95, resamples=2000, seed=0)


def test_over_seeds_is_one_rule_for_the_scorecard_and_the_figures():
    """A seed without a value is left out, in the scorecard and in a figure alike (they once
    differed: the scorecard took the t-interval of what was left, the figure the seed's own)."""
    from types import SimpleNamespace

    from vitprobe.figures.bars import over_seeds as figure_rule
    from vitprobe.report.scorecard import _over_seeds as scorecard_rule
    nan = float("nan")
    # two seeds with values: mean 2, sd sqrt(2), half-width t_{0.975, 1} * sd / sqrt(2) = 12.706
    mean, sd, low, high, n = stats.over_seeds([1.0, nan, 3.0], [0, 0, 0], [9, 9, 9], 0.95)
    assert (mean, n) == (2.0, 2) and sd == pytest.approx(2 ** 0.5)
    assert (low, high) == pytest.approx((2 - 12.7062047, 2 + 12.7062047))
    # one seed with a value: its own interval, whichever position it has
    assert stats.over_seeds([nan, 5.0], [0.0, 4.0], [0.0, 6.0], 0.95)[2:] == (4.0, 6.0, 1)
    assert np.isnan(stats.over_seeds([nan, nan], [0, 0], [1, 1], 0.95)[0])
    fig = figure_rule([nan, 5.0], [0.0, 4.0], [0.0, 6.0], [10, 10], 0.95, "over {n} images")
    card = scorecard_rule([nan, 5.0], [0.0, 4.0], [0.0, 6.0], SimpleNamespace(level=0.95), "own")
    assert (fig.mean, fig.lo, fig.hi) == (card[0], card[1], card[2]) == (5.0, 4.0, 6.0)
