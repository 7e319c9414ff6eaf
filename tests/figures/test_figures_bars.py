"""Error bars and bands drawn from hand-built tables with interval columns: a run's own
interval with one seed, the mean and t-interval over seeds with several, no bar where the
interval is NaN, and the note under the figure naming the level and the counts."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba

import vitprobe.figures
from vitprobe import results, stats
from vitprobe.config import load
from vitprobe.config.identity import Run
from vitprobe.data.cifar_c import CORRUPTIONS
from vitprobe.figures import alternet as fig_alternet
from vitprobe.figures import buildup as fig_buildup
from vitprobe.figures import corruption as fig_corruption
from vitprobe.figures import fourier as fig_fourier
from vitprobe.figures import hessian as fig_hessian
from vitprobe.figures import kernel_size as fig_kernel
from vitprobe.figures import nll_error as fig_nll
from vitprobe.figures import robustness as fig_robustness
from vitprobe.figures import variance as fig_variance
from vitprobe.figures.bars import SEEDS, WILSON_TEST, Stat, bars_note, stat
from vitprobe.figures.panels import INTERVAL_GID
from vitprobe.figures.style import NOTE_GID, color

EPOCH = 5
NAN = float("nan")
T1 = 12.706204736174694  # t(0.975) with 1 degree of freedom: two seeds
T2 = 4.302652729749462   # with 2: three seeds


def _run(model, seed=0, fraction=1.0, kernel_size=0, epoch=EPOCH):
    run = {"dataset": "synthetic", "model": model, "kernel_size": kernel_size, "fraction": fraction, "seed": seed}
    return {"run": Run(**run).id, **run, "epoch": epoch}


def _frame(rows):
    return pd.DataFrame(rows).assign(interval_level=0.95)


def _note(fig):
    (note,) = [t.get_text() for t in fig.texts if t.get_gid() == NOTE_GID]
    return " ".join(note.split())  # the note's line breaks as spaces


def _container(ax, label):
    (c,) = [c for c in ax.containers if c.get_label() == label]
    return c


def _bars(container):
    """x bars then y bars of an ErrorbarContainer as (lo, hi) per point; None: no bar there."""
    out = []
    for col in container.lines[2]:
        for seg in col.get_segments():
            if not len(seg):
                out.append(None)
                continue
            (x0, y0), (x1, y1) = seg
            out.append((min(x0, x1), max(x0, x1)) if y0 == y1 else (min(y0, y1), max(y0, y1)))
    return out


def _band(ax, i):
    """{x: (lo, hi)} of the interval bands drawn in series colour i (polygons and lone bars)."""
    out = {}
    for c in ax.collections:
        if c.get_gid() != INTERVAL_GID:
            continue
        rgba = c.get_color()[0] if isinstance(c, LineCollection) else c.get_facecolor()[0]
        if tuple(rgba[:3]) != pytest.approx(to_rgba(color(i))[:3]):
            continue
        points = np.concatenate([seg for seg in c.get_segments()]) if isinstance(c, LineCollection) else \
            np.concatenate([p.vertices for p in c.get_paths()])
        for x in np.unique(np.round(points[:, 0], 9)):
            ys = points[np.isclose(points[:, 0], x), 1]
            out[float(x)] = (float(ys.min()), float(ys.max()))
    return out


# ---- the note and the statistics -----------------------------------------------------------
def test_bars_note_names_the_level_counts_and_seeds():
    one = Stat(20.0, 19.0, 21.5, 1, (WILSON_TEST[0], 1000))
    assert bars_note(0.95, {"error": [one]}) == "bars: 95 % Wilson interval over 1000 test images; 1 seed"
    other = Stat(30.0, 29.0, 31.0, 1, (WILSON_TEST[0], 500))
    seeds = Stat(25.0, 20.0, 30.0, 3, (SEEDS, 3))
    no_bar = Stat(25.0, NAN, NAN, 1)
    assert bars_note(0.9, {"error": [one, other, no_bar]}) == \
        "bars: 90 % Wilson interval over 500–1000 test images; 1 seed"
    assert bars_note(0.95, {"error": [one, seeds], "NLL": [no_bar]}, kind="bands") == \
        "bands: 95 % intervals — error: Wilson interval over 1000 test images (1 seed) or t-interval over 3 seeds; " \
        "NLL: no interval"
    assert bars_note(0.95, {"NEP": [one], "APE": [one]}) == "bars: 95 % Wilson interval over 1000 test images; 1 seed"
    assert bars_note(0.95, {"error": [no_bar]}) == "bars: none (no intervals in the tables); 1 seed"
    assert bars_note(0.95, {"error": []}) == ""


def test_stat_is_the_runs_interval_with_one_seed_and_the_t_interval_over_several():
    rows = pd.DataFrame([{**_run("m", seed=s), "error": e, "error_low": e - 1, "error_high": e + 2, "n_test": 100}
                         for s, e in [(0, 20.0), (1, 22.0)]])
    one = stat(rows[rows["seed"] == 0], "error", 0.95, WILSON_TEST)
    assert (one.mean, one.lo, one.hi, one.n, one.basis) == (20.0, 19.0, 22.0, 1, (WILSON_TEST[0], 100))
    two = stat(rows, "error", 0.95, WILSON_TEST)
    assert (two.mean, two.lo, two.hi, two.n) == pytest.approx((21.0, 21 - T1, 21 + T1, 2))
    assert two.basis == (SEEDS, 2)
    _, _, lo, hi = stats.t_interval([20.0, 22.0], 0.9)
    assert (stat(rows, "error", 0.9).lo, stat(rows, "error", 0.9).hi) == pytest.approx((lo, hi))
    nan = stat(rows[rows["seed"] == 0].assign(error_low=NAN), "error", 0.95, WILSON_TEST)
    assert np.isnan(nan.lo) and np.isnan(nan.hi) and nan.basis is None


# ---- Fig. 5 ----------------------------------------------------------------------------------
def _eval_row(model, error, nll, low, high, nll_low, nll_high, **run):
    return {**_run(model, **run), "error": error, "error_low": low, "error_high": high, "nll_test": 1.0,
            "nll_train": nll, "nll_train_low": nll_low, "nll_train_high": nll_high, "nll_train_std_error": 0.01,
            "ece": 0.05, "n_test": 1000, "n_train": int(50000 * run.get("fraction", 1.0))}


def test_nll_error_bars_on_both_axes_are_the_runs_intervals(tmp_path):
    table = _frame([
        _eval_row("vit", 35.0, 2.5, 33.0, 38.0, 2.4, 2.7),
        _eval_row("vit", 45.0, 2.8, 44.0, 47.0, 2.75, 2.85, fraction=0.5),
        _eval_row("cnn", 20.0, 2.0, NAN, NAN, NAN, NAN),  # no interval: no bar
        _eval_row("mixer", 30.0, 2.2, 29.0, 31.0, 2.1, 2.3, seed=0),
        _eval_row("mixer", 32.0, 2.4, 31.0, 33.0, 2.3, 2.5, seed=1),
    ])
    spec = {"epoch": EPOCH, "series": [{"label": "ViT", "model": "vit"}, {"label": "CNN", "model": "cnn"},
                                       {"label": "Mixer", "model": "mixer"}]}
    out = tmp_path / "fig.png"
    fig = fig_nll.plot(spec, {"eval": table}, out)
    ax_a, ax_err, ax_nll = fig.axes
    assert _bars(_container(ax_a, "ViT")) == [pytest.approx((2.4, 2.7)), pytest.approx((33.0, 38.0))]
    assert _container(ax_a, "CNN").lines[2] == ()  # neither bar
    assert _bars(_container(ax_a, "Mixer")) == [pytest.approx((2.3 - 0.1 * T1, 2.3 + 0.1 * T1)),
                                                pytest.approx((31.0 - T1, 31.0 + T1))]
    # (b, c): the same intervals per fraction
    assert _bars(_container(ax_err, "ViT")) == [pytest.approx((44.0, 47.0)), pytest.approx((33.0, 38.0))]
    assert _bars(_container(ax_nll, "ViT")) == [pytest.approx((2.75, 2.85)), pytest.approx((2.4, 2.7))]
    assert _note(fig) == ("bars: 95 % intervals — error: Wilson interval over 1000 test images (1 seed) or "
                          "t-interval over 2 seeds; NLL_train: mean ± z·SE over 25000–50000 augmented training "
                          "images (1 seed) or t-interval over 2 seeds")
    assert out.stat().st_size > 1000


# ---- Hessian: NEP/APE panels -----------------------------------------------------------------
def _hessian_rows(model, values, seed=0, kernel_size=0, batches=10):
    values = np.asarray(values, dtype=float)
    return [{**_run(model, seed=seed, kernel_size=kernel_size), "batch": b % batches, "rank": b // batches + 1,
             "eigenvalue": v, "batch_size": 16, "method": "lanczos", "n_hvp": 10} for b, v in enumerate(values)]


def _summary_row(model, nep, ape, nep_ci, ape_ci, seed=0, kernel_size=0, batches=10):
    return {**_run(model, seed=seed, kernel_size=kernel_size), "n_batches": batches, "n_eigenvalues": 2 * batches,
            "nep": nep, "ape": ape, "nep_low": nep_ci[0], "nep_high": nep_ci[1], "ape_low": ape_ci[0],
            "ape_high": ape_ci[1], "lambda_max": 1.0, "trace": NAN, "trace_nll": NAN, "trace_std_error": NAN,
            "trace_samples": 0, "n_params": 10, "batch_size": 16, "method": "lanczos"}


def test_hessian_nep_ape_panel_draws_the_summary_intervals(tmp_path):
    eig = pd.DataFrame(_hessian_rows("cnn", np.tile([4.0, -1.0], 10)) + _hessian_rows("vit", np.tile([6.0, -2.0], 10))
                       + _hessian_rows("vit", np.tile([2.0, 2.0], 10), seed=1)
                       + _hessian_rows("few", [3.0, -1.0, 5.0, 1.0], batches=2))
    summary = _frame([_summary_row("cnn", 0.5, 4.0, (0.4, 0.6), (3.5, 4.4)),
                      _summary_row("vit", 0.5, 6.0, (0.45, 0.55), (5.0, 7.0)),
                      _summary_row("vit", 0.0, 2.0, (0.0, 0.0), (2.0, 2.0), seed=1),
                      _summary_row("few", 0.25, 3.0, (NAN, NAN), (NAN, NAN), batches=2)])  # < 5 batches: NaN
    spec = {"epoch": EPOCH, "bins": 4, "series": [{"label": "CNN", "model": "cnn"}, {"label": "ViT", "model": "vit"},
                                                  {"label": "Few", "model": "few"}]}
    fig = fig_hessian.plot(spec, {"hessian": eig, "hessian_summary": summary}, tmp_path / "h.png")
    _, _, ax_nep, ax_ape = fig.axes
    assert _bars(_container(ax_nep, "CNN")) == [pytest.approx((40.0, 60.0))]  # a share, drawn in %
    assert _bars(_container(ax_ape, "CNN")) == [pytest.approx((3.5, 4.4))]
    vit = _container(ax_nep, "ViT")
    assert tuple(vit.lines[0].get_xydata()[0]) == pytest.approx((1, 25.0))  # the mean of the two seeds' NEP
    assert _bars(vit) == [pytest.approx((25 - 25 * T1, 25 + 25 * T1))]
    assert _bars(_container(ax_ape, "ViT")) == [pytest.approx((4 - 2 * T1, 4 + 2 * T1))]
    assert _container(ax_nep, "Few").lines[2] == () and _container(ax_ape, "Few").lines[2] == ()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[1] == "ViT (NEP 25.0%, APE 3.33; 2 seeds pooled)"  # the histogram's: both seeds' values
    assert legend[0] == "CNN (NEP 50.0%, APE 4)"
    assert _note(fig) == ("bars: 95 % bootstrap over 10 mini-batches (1 seed) or t-interval over 2 seeds")


def test_hessian_intervals_through_draw_are_the_tables(tmp_path):
    """`vitprobe.figures.draw` adds the interval columns (`with_intervals`); the NEP bar is
    the summary's nep_low..nep_high in %."""
    rng = np.random.default_rng(0)
    eig = pd.DataFrame(_hessian_rows("vit", rng.normal(1.0, 2.0, 16), batches=8))
    summary = pd.DataFrame([_summary_row("vit", *(0.0, 0.0), (0, 0), (0, 0), batches=8)]).drop(
        columns=["nep_low", "nep_high", "ape_low", "ape_high"])
    v = eig["eigenvalue"].to_numpy()
    summary = summary.assign(nep=(v < 0).mean(), ape=v[v > 0].mean())
    spec = {"epoch": EPOCH, "series": [{"label": "ViT", "model": "vit"}]}
    fig = vitprobe.figures.draw("fig_hessian", spec, {"hessian": eig, "hessian_summary": summary}, tmp_path / "h.png")
    expected = results.with_intervals("hessian_summary", summary, eig, load.intervals(spec))
    (lo, hi), = _bars(_container(fig.axes[2], "ViT"))
    assert (lo, hi) == pytest.approx((100 * expected["nep_low"][0], 100 * expected["nep_high"][0]))
    assert "bootstrap over 8 mini-batches; 1 seed" in _note(fig)


def test_kernel_size_nep_ape_per_kernel_and_error_bars(tmp_path):
    ev = _frame([_eval_row("lmsa", 28.0, 2.4, 27.0, 29.5, 2.35, 2.45, kernel_size=k) for k in (3, 8)])
    eig = pd.DataFrame(_hessian_rows("lmsa", np.tile([4.0, -1.0], 10), kernel_size=3)
                       + _hessian_rows("lmsa", np.tile([4.0, 2.0], 10), kernel_size=8))
    summary = _frame([_summary_row("lmsa", 0.5, 4.0, (0.3, 0.7), (3.0, 5.0), kernel_size=3),
                      _summary_row("lmsa", 0.0, 3.0, (0.0, 0.1), (2.5, 3.5), kernel_size=8)])
    spec = {"epoch": EPOCH, "bins": 4, "series": [{"label": "Local MSA", "model": "lmsa"}]}
    fig = fig_kernel.plot(spec, {"eval": ev, "hessian": eig, "hessian_summary": summary}, tmp_path / "k.png")
    ax_err = fig.axes[0]
    assert _bars(ax_err.containers[0]) == [pytest.approx((27.0, 29.5))] * 2
    ax_nep, ax_ape = fig.axes[-2:]
    assert _bars(_container(ax_nep, "Local MSA 3×3")) == [pytest.approx((30.0, 70.0))]
    assert _bars(_container(ax_nep, "Local MSA 8×8")) == [pytest.approx((0.0, 10.0))]
    assert _bars(_container(ax_ape, "Local MSA 8×8")) == [pytest.approx((2.5, 3.5))]
    assert "NEP, APE: bootstrap over 10 mini-batches" in _note(fig) and _note(fig).endswith("; 1 seed")


# ---- Fig. 12: accuracy against robustness ----------------------------------------------------
def _image_correct(n, share, rng):
    c = np.zeros(n)
    c[rng.permutation(n)[:round(share * n)]] = 1.0
    return c


def test_corruption_bars_are_wilson_and_a_bootstrap_over_images(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    rows, images = [], []
    for model, seed, clean in [("a", 0, 80.0), ("b", 0, 70.0), ("b", 1, 74.0)]:
        run = _run(model, seed=seed)
        for k, name in enumerate([*CORRUPTIONS, "spatter"]):  # spatter: an extra one, left out
            for sev in (1, 5):
                share = 0.0 if name == "spatter" else 0.4 + 0.01 * k - 0.05 * sev + 0.05 * seed
                correct = _image_correct(n, share, rng)
                rows.append({**run, "corruption": name, "severity": sev, "accuracy": 100 * correct.mean(),
                             "nll": 1.0, "clean_accuracy": clean, "clean_accuracy_low": clean - 4,
                             "clean_accuracy_high": clean + 3.5, "clean_nll": 0.5, "n_images": n})
                images += [{**run, "image": i, "corruption": name, "severity": sev, "correct": c, "nll": 1.0,
                            "clean_correct": 1.0, "clean_nll": 0.5} for i, c in enumerate(correct)]
    tables = {"corruption": _frame(rows), "corruption_images": pd.DataFrame(images)}
    spec = {"epoch": EPOCH, "series": [{"label": "A", "model": "a"}, {"label": "B", "model": "b"}]}
    fig = fig_corruption.plot(spec, tables, tmp_path / "c.png")
    ax = fig.axes[0]
    (x_bar, y_bar) = _bars(_container(ax, "A"))
    assert x_bar == pytest.approx((76.0, 83.5))  # clean: the table's Wilson interval
    # corrupted: the per-image mean over the 15 corruptions x 2 severities, bootstrapped over
    # the 400 images; about the normal interval of that mean
    a = pd.DataFrame(images).query("model == 'a' and corruption != 'spatter'").groupby("image")["correct"].mean()
    mean, half = 100 * a.mean(), 1.96 * 100 * a.std(ddof=1) / np.sqrt(n)
    (y,) = _container(ax, "A").lines[0].get_ydata()
    assert y == pytest.approx(mean)
    assert y_bar[0] == pytest.approx(mean - half, abs=0.15 * half) and y_bar[1] == pytest.approx(mean + half,
                                                                                                 abs=0.15 * half)
    # two seeds: the mean and t-interval of the seeds' values
    b = _container(ax, "B")
    (bx,), (by,) = b.lines[0].get_xdata(), b.lines[0].get_ydata()
    assert bx == 72.0 and _bars(b)[0] == pytest.approx((72 - 2 * T1, 72 + 2 * T1))
    per_seed = pd.DataFrame(rows).query("model == 'b' and corruption != 'spatter'").groupby("seed")["accuracy"].mean()
    _, _, lo, hi = stats.t_interval(per_seed, 0.95)
    assert by == pytest.approx(per_seed.mean()) and _bars(b)[1] == pytest.approx((lo, hi))
    assert "mean corrupted accuracy: bootstrap over 400 images (1 seed) or t-interval over 2 seeds" in _note(fig)
    assert "clean accuracy: Wilson interval over 400 test images (1 seed)" in _note(fig)


def test_corruption_without_its_image_table_draws_no_corrupted_bar(tmp_path):
    row = {**_run("a"), "corruption": CORRUPTIONS[0], "severity": 1, "accuracy": 50.0, "nll": 1.0,
           "clean_accuracy": 80.0, "clean_accuracy_low": 76.0, "clean_accuracy_high": 83.0, "clean_nll": 0.5,
           "n_images": 100}
    fig = fig_corruption.plot({"epoch": EPOCH, "series": [{"label": "A", "model": "a"}]},
                              {"corruption": _frame([row])}, tmp_path / "c.png")
    assert _bars(_container(fig.axes[0], "A")) == [pytest.approx((76.0, 83.0))]  # the clean bar only
    assert "mean corrupted accuracy: no interval" in _note(fig)


def test_alternet_robustness_bar_is_a_bootstrap_over_images(tmp_path):
    rng = np.random.default_rng(1)
    n, freqs = 300, [0.1, 0.5, 0.9]
    rob, images = [], []
    for f, share in zip(freqs, (0.7, 0.6, 0.5)):
        correct = _image_correct(n, share, rng)
        rob.append({**_run("alt"), "freq": f, "accuracy": 100 * correct.mean(), "clean_accuracy": 80.0,
                    "delta_accuracy": 100 * correct.mean() - 80, "eps": 0.1, "width": 0.1, "n_images": n})
        images += [{**_run("alt"), "image": i, "freq": f, "correct": c, "clean_correct": 1.0}
                   for i, c in enumerate(correct)]
    ev = _frame([_eval_row("alt", 16.0, 2.0, 14.0, 18.5, 1.9, 2.1)])
    eig = pd.DataFrame(_hessian_rows("alt", np.tile([4.0, -1.0], 10)))
    summary = _frame([_summary_row("alt", 0.5, 4.0, (0.4, 0.6), (3.5, 4.4))])
    tables = {"eval": ev, "robustness": _frame(rob), "robustness_images": pd.DataFrame(images), "hessian": eig,
              "hessian_summary": summary}
    fig = fig_alternet.plot({"epoch": EPOCH, "bins": 4, "series": [{"label": "AlterNet", "model": "alt"}]}, tables,
                            tmp_path / "a.png")
    (x_bar, y_bar) = _bars(_container(fig.axes[0], "AlterNet"))
    assert x_bar == pytest.approx((81.5, 86.0))  # accuracy = 100 - error: the error's Wilson interval, flipped
    per_image = pd.DataFrame(images).groupby("image")["correct"].mean()
    mean, half = 100 * per_image.mean(), 1.96 * 100 * per_image.std(ddof=1) / np.sqrt(n)
    assert y_bar == pytest.approx((mean - half, mean + half), abs=0.15 * half)
    assert _bars(_container(fig.axes[-2], "AlterNet")) == [pytest.approx((40.0, 60.0))]
    assert "robustness: bootstrap over 300 images" in _note(fig)


# ---- bands over depth and frequency ----------------------------------------------------------
MAPS = [("embed", 0.0), ("msa", 0.25), ("mlp", 0.5), ("msa", 0.75), ("mlp", 1.0)]


def _fourier_rows(model, highs, lows, tops, seed=0):
    return [{**_run(model, seed=seed), "map_index": i, "map_name": f"m{i}", "kind": k, "depth": d, "freq": f,
             "log_amplitude": -f * (i + 1), "high_freq_delta": h, "high_freq_delta_low": lo,
             "high_freq_delta_high": hi, "n_images": 64}
            for i, ((k, d), h, lo, hi) in enumerate(zip(MAPS, highs, lows, tops)) for f in (0.0, 0.5)]


def test_fourier_band_follows_the_maps_intervals(tmp_path):
    highs = [-1.0, -2.0, -3.0, -4.0, -5.0]
    lows = [-1.2, -2.3, NAN, -4.2, -5.4]  # map 2 has no interval: a gap in the band
    tops = [-0.9, -1.8, NAN, -3.9, -4.7]
    table = _frame(_fourier_rows("vit", highs, lows, tops) + _fourier_rows("cnn", highs, lows, tops)
                   + _fourier_rows("cnn", [h + 1 for h in highs], lows, tops, seed=1))
    spec = {"epoch": EPOCH, "series": [{"label": "ViT", "model": "vit"}, {"label": "CNN", "model": "cnn"}]}
    fig = fig_fourier.plot(spec, {"fourier": table}, tmp_path / "f.png")
    (ax_b,) = [ax for ax in fig.axes if ax.get_title().startswith("(b)")]
    band = _band(ax_b, 0)
    assert sorted(band) == [0.0, 0.25, 0.75, 1.0]  # no band at depth 0.5
    assert band[0.25] == pytest.approx((-2.3, -1.8)) and band[1.0] == pytest.approx((-5.4, -4.7))
    cnn = _band(ax_b, 1)  # two seeds: t-interval of (h, h + 1) around h + 0.5, also where a seed's is NaN
    assert sorted(cnn) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert cnn[0.5] == pytest.approx((-2.5 - 0.5 * T1, -2.5 + 0.5 * T1))
    assert _note(fig) == "bands in (b): 95 % bootstrap over 64 images (1 seed) or t-interval over 2 seeds"


def test_variance_band_and_a_lone_interval(tmp_path):
    values = [1.0, 2.0, 4.0, 8.0, 16.0]
    lows = [0.8, NAN, 3.0, NAN, 12.0]  # known at maps 0, 2, 4 only: three lone bars
    rows = [{**_run("vit"), "map_index": i, "map_name": f"m{i}", "kind": k, "depth": d, "variance": v,
             "variance_low": lo, "variance_high": v * 1.5, "n_images": 32}
            for i, ((k, d), v, lo) in enumerate(zip(MAPS, values, lows))]
    fig = fig_variance.plot({"epoch": EPOCH, "series": [{"label": "ViT", "model": "vit"}]}, {"variance": _frame(rows)},
                            tmp_path / "v.png")
    band = _band(fig.axes[0], 0)
    assert band == {0.0: pytest.approx((0.8, 1.5)), 0.5: pytest.approx((3.0, 6.0)), 1.0: pytest.approx((12.0, 24.0))}
    assert _note(fig) == "bands: 95 % bootstrap over 32 images; 1 seed"


def test_robustness_band_is_the_paired_interval_of_delta_accuracy(tmp_path):
    freqs, deltas = [0.1, 0.5, 0.9], [-1.0, -4.0, -9.0]
    rows = [{**_run("vit", seed=s), "freq": f, "accuracy": 80 + d, "clean_accuracy": 80.0, "delta_accuracy": d + s,
             "delta_accuracy_low": d + s - 1.5, "delta_accuracy_high": d + s + 1.0, "eps": 0.1, "width": 0.1,
             "n_images": 500} for f, d in zip(freqs, deltas) for s in (0,)]
    rows += [{**r, **_run("cnn", seed=s), "delta_accuracy": r["delta_accuracy"] + 2 * s}  # d and d + 2
             for r in list(rows) for s in (0, 1)]
    spec = {"epoch": EPOCH, "series": [{"label": "ViT", "model": "vit"}, {"label": "CNN", "model": "cnn"}]}
    fig = fig_robustness.plot(spec, {"robustness": _frame(rows)}, tmp_path / "r.png")
    ax = fig.axes[0]
    assert _band(ax, 0) == {f: pytest.approx((d - 1.5, d + 1.0)) for f, d in zip(freqs, deltas)}
    assert _band(ax, 1) == {f: pytest.approx((d + 1 - T1, d + 1 + T1)) for f, d in zip(freqs, deltas)}
    assert _note(fig) == ("bands: 95 % paired bootstrap over 500 images (clean and noisy) (1 seed) or "
                          "t-interval over 2 seeds")


# ---- the build-up search ---------------------------------------------------------------------
def test_buildup_bars_are_wilson_over_the_holdout_images(tmp_path):
    df = pd.DataFrame({"step": [0, 1, 2], "msa_blocks": ["0,0", "0,1", "1,1"], "stage": [0, 2, 1],
                       "accuracy": [50.0, 60.0, 55.0], "best_before": [NAN, 50.0, 60.0],
                       "kept": [True, True, False], "n_holdout": [200, 200, 200]})
    fig = fig_buildup.plot({"intervals": {"level": 0.9}}, {"search": df}, tmp_path / "b.png")
    ax = fig.axes[0]
    kept, rejected = [c for c in ax.containers]
    lo, hi = stats.wilson(np.array([100, 120, 110]), 200, 0.9)
    assert _bars(kept) == [pytest.approx((100 * lo[i], 100 * hi[i])) for i in (0, 1)]
    assert _bars(rejected) == [pytest.approx((100 * lo[2], 100 * hi[2]))]
    assert _note(fig) == "bars: 90 % Wilson interval over 200 held-out images; 1 seed"
    assert [ln.get_label() for ln in ax.get_lines()].count("kept (current best)") == 1
