"""Probe figures (Fourier, variance, robustness, landscape) drawn from hand-built tables:
the plotted data read back from the Axes is what the tables say."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from vitprobe import results
from vitprobe.figures import fourier as fig_fourier
from vitprobe.figures import landscape as fig_landscape
from vitprobe.figures import robustness as fig_robustness
from vitprobe.figures import variance as fig_variance
from vitprobe.figures.panels import BAND_GID

EPOCH = 305


def _write(tmp_path, table, rows, model, fraction=1.0, seed=0, epoch=EPOCH, kernel_size=0):
    path = tmp_path / f"{table}-{model}-k{kernel_size}-f{fraction}-s{seed}-e{epoch}.parquet"
    results.write_run_table(pd.DataFrame(rows), table, path, epoch=epoch, config_hash="h",
                            run={"dataset": "synthetic", "model": model, "kernel_size": kernel_size,
                                 "fraction": fraction, "seed": seed})
    return str(path)


def _tables(table, files):
    return {table: results.aggregate(files, table)}


def _spec(*series, epoch=EPOCH):
    cfg = {"experiments": ["x"], "series": list(series)}
    if epoch is not None:
        cfg["epoch"] = epoch
    return cfg


SERIES = [{"label": "ViT", "model": "vit", "fraction": 1}, {"label": "CNN", "model": "cnn"},
          {"label": "ViT small data", "model": "vit", "fraction": "1/16"}]  # the last has no rows

# maps of the two models: (kind, depth)
VIT_MAPS = [("embed", 0.0), ("msa", 0.25), ("mlp", 0.5), ("msa", 0.75), ("mlp", 1.0)]
CNN_MAPS = [("stem", 0.0), ("conv", 0.5), ("conv", 1.0)]


def _texts(fig):
    return [t.get_text() for t in fig.texts]


def _axes_titled(fig, title):
    found = [ax for ax in fig.axes if ax.get_title() == title]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


def _line(ax, label):
    found = [ln for ln in ax.lines if ln.get_label() == label]
    assert len(found) == 1, [ln.get_label() for ln in ax.lines]
    return found[0]


def _band_centres(ax):
    bands = [p for p in ax.patches if p.get_gid() == BAND_GID]
    return sorted((p.get_bbox().x0 + p.get_bbox().x1) / 2 for p in bands)


def _is_pdf(path):
    return path.read_bytes()[:5] == b"%PDF-"


# ---- Fourier -----------------------------------------------------------------------------
def _fourier_rows(maps, side, seed_shift=0.0, scale=1.0):
    """Curve of map i at frequency f: -scale * (i + 1) * f + seed_shift (0 at f = 0 but for the shift)."""
    freqs = np.arange(side // 2) / (side / 2)
    rows = []
    for i, (kind, depth) in enumerate(maps):
        curve = -scale * (i + 1) * freqs + seed_shift
        rows += [{"map_index": i, "map_name": f"m{i}", "kind": kind, "depth": depth, "freq": f,
                  "log_amplitude": a, "high_freq_delta": curve[-1], "n_images": 8} for f, a in zip(freqs, curve)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # stored order must not matter


@pytest.fixture
def fourier_files(tmp_path):
    return [_write(tmp_path, "fourier", _fourier_rows(VIT_MAPS, 4), "vit", seed=0),
            _write(tmp_path, "fourier", _fourier_rows(VIT_MAPS, 4, seed_shift=0.2), "vit", seed=1),
            _write(tmp_path, "fourier", _fourier_rows(CNN_MAPS, 8, scale=2.0), "cnn"),
            _write(tmp_path, "fourier", _fourier_rows(VIT_MAPS, 4, seed_shift=50.0), "vit", epoch=5)]  # ignored


def test_fourier_figure_plots_the_table(tmp_path, fourier_files):
    out = tmp_path / "fourier.pdf"
    fig = fig_fourier.plot(_spec(*SERIES), _tables("fourier", fourier_files), out)
    assert _is_pdf(out)

    # (a) one panel per present series; one curve per map, coloured by depth; seeds averaged
    ax_vit, ax_cnn = _axes_titled(fig, "ViT"), _axes_titled(fig, "CNN")
    curves = {ln.get_gid(): ln for ln in ax_vit.lines if (ln.get_gid() or "").startswith("map ")}
    assert sorted(curves) == [f"map {i}" for i in range(5)]
    for i, (_, depth) in enumerate(VIT_MAPS):
        ln = curves[f"map {i}"]
        np.testing.assert_allclose(ln.get_xdata(), [0.0, 0.5])
        np.testing.assert_allclose(ln.get_ydata(), [0.1, -0.5 * (i + 1) + 0.1])  # mean of seeds 0 and 1
        assert to_rgba(ln.get_color()) == pytest.approx(fig_fourier.DEPTH_CMAP(depth))
    cnn_curves = [ln for ln in ax_cnn.lines if (ln.get_gid() or "").startswith("map ")]
    np.testing.assert_allclose(cnn_curves[2].get_xdata(), [0, 0.25, 0.5, 0.75])
    np.testing.assert_allclose(cnn_curves[2].get_ydata(), [0, -1.5, -3.0, -4.5])
    assert any(ax.get_ylabel() == "Normalized depth" for ax in fig.axes)  # the colorbar

    # (b) high-frequency Δ log amplitude against depth, in map order
    ax_b = _axes_titled(fig, "(b) Δ log amplitude at the highest frequency vs depth")
    vit = _line(ax_b, "ViT")
    np.testing.assert_allclose(vit.get_xdata(), [d for _, d in VIT_MAPS])
    np.testing.assert_allclose(vit.get_ydata(), [-0.5 * (i + 1) + 0.1 for i in range(5)])
    cnn = _line(ax_b, "CNN")
    np.testing.assert_allclose(cnn.get_xdata(), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(cnn.get_ydata(), [-1.5, -3.0, -4.5])
    # filled markers at the MSA maps, grey bands at the MSA depths of ViT (CNN has none)
    filled = [ln for ln in ax_b.lines if ln.get_label() == "_msa" and len(ln.get_xdata())]
    assert len(filled) == 1 and list(filled[0].get_xdata()) == [0.25, 0.75]
    assert _band_centres(ax_b) == pytest.approx([0.25, 0.75])
    assert "MSA depths (ViT)" in [t.get_text() for t in ax_b.get_legend().get_texts()]

    assert "no results yet for: ViT small data" in _texts(fig)
    assert "epoch 305" in fig.subfigs[0].get_suptitle()


def test_fourier_figure_default_epoch_is_the_latest(tmp_path, fourier_files):
    fig = fig_fourier.plot(_spec(SERIES[0], epoch=None), _tables("fourier", fourier_files), tmp_path / "f.pdf")
    vit = _line(_axes_titled(fig, "(b) Δ log amplitude at the highest frequency vs depth"), "ViT")
    np.testing.assert_allclose(vit.get_ydata(), [-0.5 * (i + 1) + 0.1 for i in range(5)])  # not epoch 5's


def test_series_selecting_several_runs_is_an_error(tmp_path):
    files = [_write(tmp_path, "fourier", _fourier_rows(VIT_MAPS, 4), "vit", fraction=1.0),
             _write(tmp_path, "fourier", _fourier_rows(VIT_MAPS, 4), "vit", fraction=0.0625)]
    with pytest.raises(ValueError, match="'ViT' selects rows of 2 different runs"):
        fig_fourier.plot(_spec({"label": "ViT", "model": "vit"}), _tables("fourier", files), tmp_path / "f.pdf")


def test_fourier_figure_with_no_data_at_all_still_draws(tmp_path):
    out = tmp_path / "f.pdf"
    fig = fig_fourier.plot(_spec(SERIES[0]), _tables("fourier", []), out)
    assert _is_pdf(out) and "no results yet for: ViT" in _texts(fig)



def _small_map_rows(sides, highs, kind="conv"):
    """One map per side, depth i / (n - 1): frequency rows as the probe writes them (one row at
    frequency 0 for sides 1 and 2), `highs[i]` the map's high_freq_delta (NaN for sides <= 2)."""
    n = len(sides)
    return pd.DataFrame([{"map_index": i, "map_name": f"m{i}", "kind": kind, "depth": i / (n - 1), "freq": f,
                          "log_amplitude": -f, "high_freq_delta": highs[i], "n_images": 8}
                         for i, side in enumerate(sides) for f in np.arange((side + 1) // 2) / (side / 2)])


def test_fourier_figure_leaves_out_maps_without_a_high_frequency_value(tmp_path):
    nan = float("nan")
    files = [_write(tmp_path, "fourier", _small_map_rows([8, 4, 2, 1], [-1.0, -2.0, nan, nan]), "cnn", seed=0),
             _write(tmp_path, "fourier", _small_map_rows([8, 4, 2, 1], [-3.0, -4.0, nan, nan]), "cnn", seed=1),
             _write(tmp_path, "fourier", _small_map_rows([2, 1], [nan, nan]), "tiny")]
    out = tmp_path / "f.pdf"
    fig = fig_fourier.plot(_spec({"label": "CNN", "model": "cnn"}, {"label": "Tiny", "model": "tiny"}),
                           _tables("fourier", files), out)
    assert _is_pdf(out)
    ax_b = _axes_titled(fig, "(b) Δ log amplitude at the highest frequency vs depth")
    # the 2x2 and 1x1 maps (depths 2/3 and 1) get no point: neither on the line nor as a marker
    np.testing.assert_allclose(_line(ax_b, "CNN").get_xydata(), [[0.0, -2.0], [1 / 3, -3.0]])  # seed means
    markers = np.concatenate([ln.get_xydata() for ln in ax_b.lines if ln.get_label() in ("_msa", "_other")])
    np.testing.assert_allclose(markers[np.argsort(markers[:, 0])], [[0.0, -2.0], [1 / 3, -3.0]])
    # a series with no value at all draws nothing and says so in the legend
    assert len(_line(ax_b, "Tiny (no map above 2x2 px)").get_xydata()) == 0
    assert "Tiny (no map above 2x2 px)" in [t.get_text() for t in ax_b.get_legend().get_texts()]
    assert not np.isnan(np.concatenate([ln.get_xydata() for ln in ax_b.lines])).any()

# ---- variance ----------------------------------------------------------------------------
def _variance_rows(maps, values):
    return pd.DataFrame([{"map_index": i, "map_name": f"m{i}", "kind": k, "depth": d, "variance": v, "n_images": 8}
                         for i, ((k, d), v) in enumerate(zip(maps, values))]).iloc[::-1]


def test_variance_figure_plots_the_table(tmp_path):
    files = [_write(tmp_path, "variance", _variance_rows(VIT_MAPS, [1.0, 2.0, 4.0, 8.0, 16.0]), "vit", seed=0),
             _write(tmp_path, "variance", _variance_rows(VIT_MAPS, [3.0, 4.0, 6.0, 10.0, 18.0]), "vit", seed=1),
             _write(tmp_path, "variance", _variance_rows(CNN_MAPS, [5.0, 0.5, 0.05]), "cnn")]
    out = tmp_path / "variance.pdf"
    fig = fig_variance.plot(_spec(*SERIES), _tables("variance", files), out)
    assert _is_pdf(out)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    vit = _line(ax, "ViT")
    np.testing.assert_allclose(vit.get_xdata(), [0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(vit.get_ydata(), [2.0, 3.0, 5.0, 9.0, 17.0])  # mean of the seeds
    np.testing.assert_allclose(_line(ax, "CNN").get_ydata(), [5.0, 0.5, 0.05])
    assert _band_centres(ax) == pytest.approx([0.25, 0.75])
    assert "no results yet for: ViT small data" in _texts(fig)


def test_variance_bands_follow_the_first_series_with_msa(tmp_path):
    small_vit = [("embed", 0.0), ("msa", 0.5), ("mlp", 1.0)]
    files = [_write(tmp_path, "variance", _variance_rows(CNN_MAPS, [5.0, 0.5, 0.05]), "cnn"),
             _write(tmp_path, "variance", _variance_rows(VIT_MAPS, [1.0, 2.0, 4.0, 8.0, 16.0]), "vit"),
             _write(tmp_path, "variance", _variance_rows(small_vit, [1.0, 2.0, 3.0]), "vit2")]
    spec = _spec(SERIES[1], {"label": "ViT", "model": "vit", "fraction": 1}, {"label": "ViT2", "model": "vit2"})
    fig = fig_variance.plot(spec, _tables("variance", files), tmp_path / "v.pdf")
    ax = fig.axes[0]
    assert _band_centres(ax) == pytest.approx([0.25, 0.75])  # ViT's, not ViT2's 0.5
    bands = [p.get_bbox() for p in ax.patches if p.get_gid() == BAND_GID]
    assert [b.x1 - b.x0 for b in bands] == pytest.approx([0.25, 0.25])  # one map spacing wide


def test_variance_figure_leaves_out_1x1_maps(tmp_path):
    nan = float("nan")
    maps = [("stem", 0.0), ("conv", 1 / 3), ("conv", 2 / 3), ("conv", 1.0)]  # the last two 1x1: NaN
    files = [_write(tmp_path, "variance", _variance_rows(maps, [4.0, 2.0, nan, nan]), "cnn", seed=0),
             _write(tmp_path, "variance", _variance_rows(maps, [6.0, 1.0, nan, nan]), "cnn", seed=1),
             _write(tmp_path, "variance", _variance_rows([("conv", 0.0), ("conv", 1.0)], [nan, nan]), "tiny")]
    out = tmp_path / "v.pdf"
    fig = fig_variance.plot(_spec({"label": "CNN", "model": "cnn"}, {"label": "Tiny", "model": "tiny"}),
                            _tables("variance", files), out)
    assert _is_pdf(out)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    # no point at depths 2/3 and 1: neither on the line nor as a marker; seed means elsewhere
    np.testing.assert_allclose(_line(ax, "CNN").get_xydata(), [[0.0, 5.0], [1 / 3, 1.5]])
    markers = np.concatenate([ln.get_xydata() for ln in ax.lines if ln.get_label() in ("_msa", "_other")])
    np.testing.assert_allclose(markers[np.argsort(markers[:, 0])], [[0.0, 5.0], [1 / 3, 1.5]])
    # a series with no value at all draws nothing and says so in the legend
    assert len(_line(ax, "Tiny (every map 1x1)").get_xydata()) == 0
    assert "Tiny (every map 1x1)" in [t.get_text() for t in fig.legends[0].get_texts()]
    assert not np.isnan(np.concatenate([ln.get_xydata() for ln in ax.lines])).any()


# ---- robustness --------------------------------------------------------------------------
def _robustness_rows(freqs, deltas, clean):
    return pd.DataFrame({"freq": freqs, "accuracy": [clean + d for d in deltas], "clean_accuracy": clean,
                         "delta_accuracy": deltas, "eps": 0.1, "width": 0.1, "n_images": 100})


def test_robustness_figure_plots_the_table(tmp_path):
    files = [_write(tmp_path, "robustness", _robustness_rows([0.5, 0.1, 0.3], [-3.0, -1.0, -2.0], 80.0), "vit", seed=0),
             _write(tmp_path, "robustness", _robustness_rows([0.1, 0.3, 0.5], [-2.0, -4.0, -5.0], 70.0), "vit", seed=1),
             _write(tmp_path, "robustness", _robustness_rows([0.1, 0.3, 0.5], [-9.0, -8.0, -7.0], 90.0), "cnn")]
    out = tmp_path / "robustness.pdf"
    fig = fig_robustness.plot(_spec(*SERIES), _tables("robustness", files), out)
    assert _is_pdf(out)
    ax = fig.axes[0]
    vit = _line(ax, "ViT (clean 75.0%)")
    np.testing.assert_allclose(vit.get_xdata(), [0.1, 0.3, 0.5])
    np.testing.assert_allclose(vit.get_ydata(), [-1.5, -3.0, -4.0])  # freq order, mean of the seeds
    cnn = _line(ax, "CNN (clean 90.0%)")
    np.testing.assert_allclose(cnn.get_ydata(), [-9.0, -8.0, -7.0])
    assert vit.get_marker() == "o"
    zero = [ln for ln in ax.lines if list(ln.get_ydata()) == [0, 0]]
    assert len(zero) == 1  # the horizontal line at 0
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ViT (clean 75.0%)", "CNN (clean 90.0%)"]
    assert "ε = 0.1" in ax.get_title() and "epoch 305" in ax.get_title()
    assert "no results yet for: ViT small data" in _texts(fig)


# ---- landscape ---------------------------------------------------------------------------
def _landscape_rows(offset, curvature):
    """1-D: loss = offset + curvature * x²; 2-D: loss = offset + curvature * (x² + 2 y²); nll = loss - 1."""
    rows = []
    for x in [1.0, -1.0, 0.0, 0.5, -0.5]:
        loss = offset + curvature * x * x
        rows.append({"grid": "1d", "x": x, "y": 0.0, "nll": loss - 1, "l2": 40.0, "loss": loss})
    for x in [-1.0, 0.0, 1.0]:
        for y in [1.0, 0.0, -1.0]:
            loss = offset + curvature * (x * x + 2 * y * y)
            rows.append({"grid": "2d", "x": x, "y": y, "nll": loss - 1, "l2": 40.0, "loss": loss})
    return pd.DataFrame(rows).assign(style="release")


def test_landscape_figure_plots_the_table(tmp_path):
    files = [_write(tmp_path, "landscape", _landscape_rows(2.0, 1.0), "vit", seed=0),
             _write(tmp_path, "landscape", _landscape_rows(4.0, 3.0), "vit", seed=1),  # mean: 3 + 2·(...)
             _write(tmp_path, "landscape", _landscape_rows(1.0, 0.5), "cnn")]
    out = tmp_path / "landscape.pdf"
    fig = fig_landscape.plot(_spec(*SERIES), _tables("landscape", files), out)
    assert _is_pdf(out)
    xs = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    ax_loss = _axes_titled(fig, "(a) NLL + L2 along a random direction")
    ax_nll = _axes_titled(fig, "(b) NLL along the same direction")
    vit = _line(ax_loss, "ViT")
    np.testing.assert_allclose(vit.get_xdata(), xs)
    np.testing.assert_allclose(vit.get_ydata(), 3.0 + 2.0 * xs ** 2)
    np.testing.assert_allclose(_line(ax_loss, "CNN").get_ydata(), 1.0 + 0.5 * xs ** 2)
    np.testing.assert_allclose(_line(ax_nll, "ViT").get_ydata(), 2.0 + 2.0 * xs ** 2)

    # 2-D: one panel per series, each its own evenly spaced levels spanning its own loss range
    for title, lo, hi in [("(c) ViT: NLL + L2", 3.0, 9.0), ("CNN", 1.0, 2.5)]:
        ax = _axes_titled(fig, title)
        filled = [c for c in ax.collections if getattr(c, "filled", False)]
        assert len(filled) == 1
        levels = filled[0].levels
        assert (filled[0].zmin, filled[0].zmax) == pytest.approx((lo, hi))
        assert levels[0] <= lo < levels[1] and levels[-2] < hi <= levels[-1]
        assert np.diff(levels) == pytest.approx(np.full(len(levels) - 1, levels[1] - levels[0]))
        assert 6 <= len(levels) <= fig_landscape.N_LEVELS + 1
    assert "no results yet for: ViT small data" in _texts(fig)
    suptitles = [sf._suptitle.get_text() for sf in fig.subfigs if sf._suptitle is not None]
    assert any("Loss landscape (the release's definition;" in t for t in suptitles), suptitles


def test_landscape_grid_is_read_as_loss_of_y_and_x():
    plane = _landscape_rows(0.0, 1.0).query("grid == '2d'")
    x, y, z = fig_landscape.plane_arrays(plane)
    assert list(x) == [-1.0, 0.0, 1.0] and list(y) == [-1.0, 0.0, 1.0]
    np.testing.assert_allclose(z[:, 1], [2.0, 0.0, 2.0])  # x = 0, y = -1, 0, 1: 2·y²
    np.testing.assert_allclose(z[1, :], [1.0, 0.0, 1.0])  # y = 0: x²
