"""Evaluation figures (Fig. 5, 6, 7, 12) drawn from hand-built tables: the plotted data is
what the tables say (means over seeds, t-intervals over seeds or the run's own interval as
error bars, curves in order), and a series without rows is listed on the figure."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from vitprobe import results
from vitprobe.figures import alternet as fig_alternet
from vitprobe.figures import gap as fig_gap
from vitprobe.figures import kernel_size as fig_kernel
from vitprobe.figures import nll_error as fig_nll

EPOCH = 5


def _write(tmp_path, table, rows: dict, *, model, fraction=1.0, seed=0, kernel_size=0, epoch=EPOCH):
    path = tmp_path / f"{table}-{model}-k{kernel_size}-f{fraction}-s{seed}-e{epoch}.parquet"
    run = {"dataset": "synthetic", "model": model, "kernel_size": kernel_size, "fraction": fraction, "seed": seed}
    results.write_run_table(pd.DataFrame(rows), table, path, run=run, epoch=epoch, config_hash="h")
    return str(path)


def _eval(tmp_path, model, error, nll_train, **run):
    rows = {"error": [error], "nll_test": [1.0], "nll_train": [nll_train], "nll_train_std_error": [0.01],
            "ece": [0.05], "n_test": [100], "n_train": [100]}
    return _write(tmp_path, "eval", rows, model=model, **run)


def _hessian(tmp_path, model, values, **run):
    n = len(values)
    rows = {"batch": np.arange(n) // 2, "rank": np.arange(n) % 2 + 1, "eigenvalue": values, "batch_size": 16,
            "method": "lanczos", "n_hvp": 10}
    return _write(tmp_path, "hessian", rows, model=model, **run)


def _robustness(tmp_path, model, accuracies, **run):
    freqs = np.linspace(0.1, 0.9, len(accuracies))
    rows = {"freq": freqs, "accuracy": accuracies, "clean_accuracy": 80.0,
            "delta_accuracy": np.asarray(accuracies) - 80.0, "eps": 0.1, "width": 0.1, "n_images": 100}
    return _write(tmp_path, "robustness", rows, model=model, **run)


def _tables(files: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
    return {t: results.aggregate(paths, t) for t, paths in files.items()}


def _markers(ax):
    """{label: (x, y)} of the single-point error-bar markers on an axes."""
    return {c.get_label(): tuple(c.lines[0].get_xydata()[0]) for c in ax.containers if len(c.lines[0].get_xdata()) == 1}


def _curves(ax):
    return {c.get_label(): c.lines[0].get_xydata() for c in ax.containers}


def _bar_extents(container):
    """(lo, hi) of every error bar segment of a container, x bars then y bars (a NaN
    interval draws no segment)."""
    out = []
    for col in container.lines[2]:
        for seg in col.get_segments():
            if not len(seg):
                continue
            (x0, y0), (x1, y1) = seg
            out.append((min(x0, x1), max(x0, x1)) if y0 == y1 else (min(y0, y1), max(y0, y1)))
    return out


def _texts(fig):
    return [t.get_text() for t in fig.texts]


def _legend(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()]


def _pdf(path):
    assert path.read_bytes()[:5] == b"%PDF-"


# ---- Fig. 5 ------------------------------------------------------------------------------
def test_nll_error_figure_plots_the_table(tmp_path):
    files = [
        _eval(tmp_path, "resnet", 20.0, 2.0, seed=0), _eval(tmp_path, "resnet", 22.0, 2.2, seed=1),
        _eval(tmp_path, "resnet", 21.0, 2.1, seed=2),
        # written out of order: the curve is drawn by increasing fraction
        _eval(tmp_path, "vit", 45.0, 2.8, fraction=0.5), _eval(tmp_path, "vit", 35.0, 2.5, fraction=1.0),
        _eval(tmp_path, "vit", 60.0, 3.0, fraction=0.25),
        _eval(tmp_path, "vit", 99.0, 9.9, fraction=1.0, epoch=1),  # another epoch: ignored
    ]
    spec = {"epoch": EPOCH, "series": [
        {"label": "ResNet", "model": "resnet"}, {"label": "ViT", "model": "vit"},
        {"label": "ViT (25% data)", "model": "vit", "fraction": "1/4"}, {"label": "Mixer", "model": "mixer"}]}
    out = tmp_path / "fig.pdf"
    fig = fig_nll.plot(spec, _tables({"eval": files}), out)
    _pdf(out)
    ax_a, ax_err, ax_nll = fig.axes
    markers = _markers(ax_a)
    assert markers["ResNet"] == pytest.approx((2.1, 21.0))  # mean of three seeds
    assert markers["ViT"] == pytest.approx((2.5, 35.0))  # the full-data run only
    assert markers["ViT (25% data)"] == pytest.approx((3.0, 60.0))  # the series' own fraction
    assert set(markers) == {"ResNet", "ViT", "ViT (25% data)"}
    resnet = next(c for c in ax_a.containers if c.get_label() == "ResNet")
    half = 4.302653 * 0.1 / np.sqrt(3)  # t(0.975, 2 dof) · sd / √3 seeds
    assert _bar_extents(resnet) == [pytest.approx((2.1 - half, 2.1 + half)),
                                    pytest.approx((21 - 10 * half, 21 + 10 * half))]
    vit = next(c for c in ax_a.containers if c.get_label() == "ViT")
    assert _bar_extents(vit) == []  # one seed, and the table has no interval: no bar
    assert {t.get_text() for t in ax_a.texts} == {"ResNet", "ViT", "ViT (25% data)"}
    # (b, c): only ViT has several fractions
    assert list(_curves(ax_err)) == ["ViT"] and list(_curves(ax_nll)) == ["ViT"]
    np.testing.assert_allclose(_curves(ax_err)["ViT"], [[0.25, 60.0], [0.5, 45.0], [1.0, 35.0]])
    np.testing.assert_allclose(_curves(ax_nll)["ViT"], [[0.25, 3.0], [0.5, 2.8], [1.0, 2.5]])
    assert ax_err.get_xscale() == "log"
    assert [t.get_text() for t in ax_err.get_xticklabels()] == ["1/4", "1/2", "1"]
    assert "no results yet for: Mixer" in _texts(fig)


def test_nll_error_figure_defaults_to_the_last_epoch_and_notes_missing_full_data(tmp_path):
    files = [_eval(tmp_path, "vit", 70.0, 3.0, fraction=1 / 64, epoch=1),
             _eval(tmp_path, "vit", 50.0, 2.6, fraction=1 / 64, epoch=6),
             _eval(tmp_path, "vit", 40.0, 2.4, fraction=1 / 32, epoch=6)]
    spec = {"series": [{"label": "ViT", "model": "vit"}]}
    fig = fig_nll.plot(spec, _tables({"eval": files}), tmp_path / "fig.pdf")
    ax_a, ax_err, _ = fig.axes
    assert _markers(ax_a) == {}
    np.testing.assert_allclose(_curves(ax_err)["ViT"], [[1 / 64, 50.0], [1 / 32, 40.0]])  # epoch 6
    assert [t.get_text() for t in ax_err.get_xticklabels()] == ["1/64", "1/32", "1/16", "1/8", "1/4", "1/2", "1"]
    assert "no results yet for: ViT (full data)" in _texts(fig)


def test_nll_error_figure_with_no_data_at_all_still_draws(tmp_path):
    spec = {"epoch": EPOCH, "series": [{"label": "ViT", "model": "vit"}]}
    fig = fig_nll.plot(spec, _tables({"eval": []}), tmp_path / "fig.pdf")
    _pdf(tmp_path / "fig.pdf")
    assert "no results yet for: ViT" in _texts(fig)


# ---- Fig. 6 ------------------------------------------------------------------------------
def test_gap_figure_plots_error_nll_and_spectra(tmp_path):
    files = {"eval": [_eval(tmp_path, "vit", 34.0, 2.5, seed=0), _eval(tmp_path, "vit", 36.0, 2.7, seed=1),
                      _eval(tmp_path, "vit_gap", 30.0, 2.3)],
             "hessian": [_hessian(tmp_path, "vit", [10.0, -6.0, -4.0, 2.0]),
                         _hessian(tmp_path, "vit", [99.0, 99.0], epoch=1)]}  # another epoch: ignored
    spec = {"epoch": EPOCH, "bins": 4, "series": [
        {"label": "ViT (CLS)", "model": "vit"}, {"label": "ViT (GAP)", "model": "vit_gap"}]}
    out = tmp_path / "fig.pdf"
    fig = fig_gap.plot(spec, _tables(files), out)
    _pdf(out)
    ax_a, ax_neg, ax_pos, ax_nep, ax_ape = fig.axes
    assert _markers(ax_a) == {"ViT (CLS)": pytest.approx((2.6, 35.0)), "ViT (GAP)": pytest.approx((2.3, 30.0))}
    assert _markers(ax_nep) == {"ViT (CLS)": pytest.approx((0, 50.0))}  # from the eigenvalues: no summary rows
    assert _markers(ax_ape) == {"ViT (CLS)": pytest.approx((0, 6.0))}
    assert _legend(fig) == ["ViT (CLS) (NEP 50.0%, APE 6)"]
    assert fig.legends[0].get_title().get_text() == f"Hessian max-eigenvalue spectra at epoch {EPOCH}"
    # the density of the negative panel integrates to the share of negative eigenvalues
    stairs = ax_neg.patches[0].get_data()
    assert np.nansum(stairs.values * np.diff(stairs.edges)) == pytest.approx(0.5)
    assert "no results yet for: ViT (GAP) (hessian)" in _texts(fig)


def test_gap_figure_with_no_data_at_all_still_draws(tmp_path):
    spec = {"epoch": EPOCH, "series": [{"label": "ViT (GAP)", "model": "vit_gap"}]}
    fig = fig_gap.plot(spec, _tables({"eval": [], "hessian": []}), tmp_path / "fig.pdf")
    _pdf(tmp_path / "fig.pdf")
    assert "no results yet for: ViT (GAP)" in _texts(fig)


# ---- Fig. 7 ------------------------------------------------------------------------------
def _kernel_files(tmp_path):
    return {"eval": [_eval(tmp_path, "lmsa", 29.0, 2.47, kernel_size=8),
                     _eval(tmp_path, "lmsa", 27.0, 2.45, kernel_size=3, seed=0),
                     _eval(tmp_path, "lmsa", 29.0, 2.45, kernel_size=3, seed=1),
                     _eval(tmp_path, "lmsa", 28.0, 2.40, kernel_size=5)],
            "hessian": [_hessian(tmp_path, "lmsa", [4.0, -1.0, 2.0, 6.0], kernel_size=3),
                        _hessian(tmp_path, "lmsa", [8.0, -2.0, -2.0, 4.0], kernel_size=8)]}


def _nll_axes(fig):
    return next(ax for ax in fig.axes if ax.get_ylabel().startswith("NLL"))


def test_kernel_size_figure_groups_a_series_by_kernel(tmp_path):
    spec = {"epoch": EPOCH, "bins": 4, "series": [{"label": "Local MSA", "model": "lmsa"}]}
    out = tmp_path / "fig.pdf"
    fig = fig_kernel.plot(spec, _tables(_kernel_files(tmp_path)), out)
    _pdf(out)
    ax_a = fig.axes[0]
    (error,) = _curves(ax_a).values()
    np.testing.assert_allclose(error, [[3, 28.0], [5, 28.0], [8, 29.0]])  # mean of the two k=3 seeds
    (nll,) = _curves(_nll_axes(fig)).values()
    np.testing.assert_allclose(nll, [[3, 2.45], [5, 2.40], [8, 2.47]])
    assert [t.get_text() for t in _nll_axes(fig).get_xticklabels()] == ["3×3", "5×5", "8×8"]
    k3 = ax_a.containers[0]
    assert _bar_extents(k3)[0] == pytest.approx((28 - 12.706205, 28 + 12.706205))  # t over the two k=3 seeds
    assert _legend(fig) == ["Local MSA 3×3 (NEP 25.0%, APE 4)", "Local MSA 8×8 (NEP 50.0%, APE 6)"]
    assert not any(t.startswith("no results") for t in _texts(fig))


def test_kernel_size_figure_with_a_series_per_kernel(tmp_path):
    spec = {"epoch": EPOCH, "bins": 4, "series": [
        {"label": f"{k}×{k}", "model": "lmsa", "kernel_size": k} for k in (8, 5, 3, 4)]}
    fig = fig_kernel.plot(spec, _tables(_kernel_files(tmp_path)), tmp_path / "fig.pdf")
    (error,) = _curves(fig.axes[0]).values()
    np.testing.assert_allclose(error, [[3, 28.0], [5, 28.0], [8, 29.0]])  # one curve per model, by kernel
    assert _legend(fig) == ["8×8 (NEP 50.0%, APE 6)", "3×3 (NEP 25.0%, APE 4)"]
    assert "no results yet for: 5×5 (hessian); 4×4" in _texts(fig)


# ---- Fig. 12 -----------------------------------------------------------------------------
def test_alternet_figure_plots_accuracy_robustness_and_spectra(tmp_path):
    files = {"eval": [_eval(tmp_path, "preact", 18.0, 2.1, seed=0), _eval(tmp_path, "preact", 16.0, 2.1, seed=1),
                      _eval(tmp_path, "alternet", 16.0, 2.0), _eval(tmp_path, "vit", 34.0, 2.5)],
             "robustness": [_robustness(tmp_path, "preact", [70.0, 60.0, 50.0], seed=0),    # mean 60
                            _robustness(tmp_path, "preact", [66.0, 64.0, 62.0], seed=1),    # mean 64
                            _robustness(tmp_path, "alternet", [80.0, 60.0, 70.0, 66.0])],   # mean 69
             "hessian": [_hessian(tmp_path, "preact", [5.0, 3.0, -1.0, 1.0]),
                         _hessian(tmp_path, "alternet", [2.0, -2.0, 4.0, 6.0])]}
    spec = {"epoch": EPOCH, "bins": 4, "series": [
        {"label": "ResNet", "model": "preact"}, {"label": "AlterNet", "model": "alternet"},
        {"label": "ViT", "model": "vit"}]}
    out = tmp_path / "fig.pdf"
    fig = fig_alternet.plot(spec, _tables(files), out)
    _pdf(out)
    ax_a = fig.axes[0]
    assert _markers(ax_a) == {"ResNet": pytest.approx((83.0, 62.0)), "AlterNet": pytest.approx((84.0, 69.0))}
    resnet = next(c for c in ax_a.containers if c.get_label() == "ResNet")
    t = 12.706205  # t(0.975, 1 dof); sd/√2 over two seeds: 1 (accuracy), 2 (robustness)
    assert _bar_extents(resnet) == [pytest.approx((83 - t, 83 + t)), pytest.approx((62 - 2 * t, 62 + 2 * t))]
    assert {t.get_text() for t in ax_a.texts} == {"ResNet", "AlterNet"}
    assert _legend(fig) == ["ResNet (NEP 25.0%, APE 3)", "AlterNet (NEP 25.0%, APE 4)"]
    assert "no results yet for: ViT (robustness, hessian)" in _texts(fig)


def test_alternet_figure_with_no_data_at_all_still_draws(tmp_path):
    spec = {"epoch": EPOCH, "series": [{"label": "AlterNet", "model": "alternet"}]}
    fig = fig_alternet.plot(spec, _tables({"eval": [], "robustness": [], "hessian": []}), tmp_path / "fig.pdf")
    _pdf(tmp_path / "fig.pdf")
    assert "no results yet for: AlterNet" in _texts(fig)


def test_missing_note_does_not_cover_the_panels(tmp_path):
    files = {"eval": [_eval(tmp_path, "preact", 18.0, 2.1)], "robustness": [], "hessian": []}
    spec = {"epoch": EPOCH, "series": [{"label": "ResNet", "model": "preact"}]}
    fig = fig_alternet.plot(spec, _tables(files), tmp_path / "fig.pdf")
    renderer = FigureCanvasAgg(fig).get_renderer()  # the figure is closed once saved
    (note,) = [t for t in fig.texts if t.get_text().startswith("no results yet for")]
    assert note.get_text() == "no results yet for: ResNet (robustness, hessian)"
    box = note.get_window_extent(renderer)
    assert not any(box.overlaps(ax.get_tightbbox(renderer)) for ax in fig.axes)
