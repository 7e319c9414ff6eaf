"""The interval columns of the aggregated tables, computed from the per-unit tables at
aggregation (`vitprobe.results.with_intervals`), against cases whose interval is known."""

import numpy as np
import pandas as pd
import pytest

from vitprobe import results, stats

CI = stats.Intervals(level=0.95, resamples=2000, seed=0)
GRID = {"run": "d-m-k0-f1-s0", "dataset": "d", "model": "m", "kernel_size": 0, "fraction": 1.0, "seed": 0, "epoch": 6}


def _standardised(n, mean, sd, seed=0):
    x = np.random.default_rng(seed).normal(size=n)
    return (x - x.mean()) / x.std(ddof=1) * sd + mean


def test_variance_interval_is_the_interval_of_the_mean_over_images():
    """400 images with per-image variances of mean 2 and sd 0.5: about 2 ± 1.96·0.5/20; a map
    of one position (NaN for every image) has no interval."""
    values = _standardised(400, 2.0, 0.5)
    units = pd.DataFrame([{**GRID, "map_index": m, "image": i, "variance": v if m == 0 else np.nan}
                          for m in (0, 1) for i, v in enumerate(values)])
    rows = pd.DataFrame([{**GRID, "map_index": 0, "variance": 2.0}, {**GRID, "map_index": 1, "variance": np.nan}])
    out = results.with_intervals("variance", rows, units, CI)
    half = 1.96 * 0.5 / 20
    assert out.loc[0, "variance_low"] == pytest.approx(2 - half, abs=0.01)
    assert out.loc[0, "variance_high"] == pytest.approx(2 + half, abs=0.01)
    assert np.isnan(out.loc[1, "variance_low"]) and out["interval_level"].eq(0.95).all()


def test_fourier_intervals_per_frequency_and_at_the_highest_frequency():
    a = _standardised(300, -1.0, 0.3)
    units = pd.DataFrame(
        [{**GRID, "map_index": 0, "image": i, "freq": f, "log_amplitude": v}
         for i, x in enumerate(a) for f, v in ((0.0, 0.0), (0.5, x / 2), (0.75, x))]
        + [{**GRID, "map_index": 1, "image": i, "freq": 0.0, "log_amplitude": 0.0} for i in range(300)])  # a 2x2 map
    rows = pd.DataFrame([{**GRID, "map_index": 0, "freq": f, "log_amplitude": v, "high_freq_delta": -1.0}
                         for f, v in ((0.0, 0.0), (0.5, -0.5), (0.75, -1.0))]
                        + [{**GRID, "map_index": 1, "freq": 0.0, "log_amplitude": 0.0, "high_freq_delta": np.nan}])
    out = results.with_intervals("fourier", rows, units, CI).set_index(["map_index", "freq"])
    half = 1.96 * 0.3 / np.sqrt(300)
    assert out.loc[(0, 0.75), "log_amplitude_low"] == pytest.approx(-1 - half, abs=0.01)
    assert out.loc[(0, 0.5), "log_amplitude_high"] == pytest.approx(-0.5 + half / 2, abs=0.01)
    assert out.loc[(0, 0.0), "log_amplitude_low"] == out.loc[(0, 0.0), "log_amplitude_high"] == 0.0
    # the map's highest-frequency value, on every row of the map; none for the 2x2 map
    # (the same bootstrap, its sums in another order: equal to rounding)
    assert out.loc[(0, 0.0), "high_freq_delta_low"] == pytest.approx(out.loc[(0, 0.75), "log_amplitude_low"],
                                                                       rel=1e-12)
    assert np.isnan(out.loc[(1, 0.0), "high_freq_delta_low"])


def test_hessian_summary_intervals_resample_whole_mini_batches():
    def eig(per_batch):
        return pd.DataFrame([{**GRID, "batch": b, "rank": r + 1, "eigenvalue": v}
                             for b, values in enumerate(per_batch) for r, v in enumerate(values)])
    summary = pd.DataFrame([{**GRID, "nep": 0.4, "ape": 2.0, "lambda_max": 3.0, "trace": 10.0, "trace_nll": 4.0,
                             "trace_std_error": 1.0}])
    # every batch the same: 2 of 5 negative, positives 1, 2, 3 -> zero-width intervals
    same = results.with_intervals("hessian_summary", summary, eig([[3, 2, 1, -1, -2]] * 6), CI).iloc[0]
    assert same["nep_low"] == same["nep_high"] == pytest.approx(0.4)
    assert same["ape_low"] == same["ape_high"] == pytest.approx(2.0)
    assert same["lambda_max_low"] == same["lambda_max_high"] == 3.0
    assert same["trace_low"] == pytest.approx(10 - 1.959964) and same["trace_nll_high"] == pytest.approx(4 + 1.959964)
    # batches of 0 or 5 negatives: the NEP interval lies within [0, 1] and around the pooled 0.5
    mixed = results.with_intervals("hessian_summary", summary, eig([[-1] * 5, [1] * 5] * 5), CI).iloc[0]
    assert 0 <= mixed["nep_low"] < 0.5 < mixed["nep_high"] <= 1
    # 4 batches are fewer than stats.MIN_UNITS: no interval
    few = results.with_intervals("hessian_summary", summary, eig([[3, 2, 1, -1, -2]] * 4), CI).iloc[0]
    assert np.isnan(few["nep_low"]) and np.isnan(few["ape_high"])


def test_aggregate_adds_intervals_and_the_per_run_files_keep_their_schema(tmp_path):
    run = {k: GRID[k] for k in ("dataset", "model", "kernel_size", "fraction", "seed")}
    rows = pd.DataFrame([{"map_index": 0, "map_name": "x", "kind": "conv", "depth": 0.0, "variance": 1.5,
                          "n_images": 10}])
    units = pd.DataFrame([{"map_index": 0, "image": i, "variance": 1.0 + i / 9} for i in range(10)])
    results.write_run_table(rows, "variance", tmp_path / "v.parquet", run=run, config_hash="h", epoch=6)
    results.write_run_table(units, "variance_images", tmp_path / "u.parquet", run=run, config_hash="h", epoch=6)
    results.write_aggregate([tmp_path / "v.parquet"], "variance", tmp_path / "agg.parquet", [tmp_path / "u.parquet"],
                            CI)
    agg = pd.read_parquet(tmp_path / "agg.parquet")
    assert list(agg.columns) == results.schema("variance", aggregated=True).names
    assert agg.loc[0, "variance_low"] < 1.5 < agg.loc[0, "variance_high"]
    assert results.read_run_table(tmp_path / "v.parquet", "variance").schema.names == results.schema("variance").names
