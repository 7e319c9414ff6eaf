"""Figures drawn from hand-built tables: the plotted data is what the tables say."""

import numpy as np
import pandas as pd
import pytest

from vitprobe import results
from vitprobe.figures import hessian as fig_hessian

RUN = {"dataset": "synthetic", "kernel_size": 0, "seed": 0}


def _write(tmp_path, model, fraction, values, epoch=1):
    path = tmp_path / f"{model}_{fraction}_{epoch}.parquet"
    rows = pd.DataFrame({"batch": np.arange(len(values)) // 2, "rank": np.arange(len(values)) % 2 + 1,
                         "eigenvalue": values, "batch_size": 16, "method": "lanczos", "n_hvp": 10})
    results.write_run_table(rows, "hessian", path, run={**RUN, "model": model, "fraction": fraction},
                            epoch=epoch, config_hash="h")
    return str(path)


def test_hessian_figure_plots_the_table(tmp_path):
    files = [_write(tmp_path, "cnn", 1.0, [8.0, -2.0, 4.0, 2.0]),
             _write(tmp_path, "vit", 1.0, [10.0, -6.0, -4.0, 2.0]),
             _write(tmp_path, "vit", 1.0, [99.0, 99.0], epoch=5)]  # another epoch: ignored
    spec = {"figure": {"epoch": 1, "bins": 4, "series": [
        {"label": "CNN", "model": "cnn"}, {"label": "ViT", "model": "vit", "fraction": 1},
        {"label": "ViT small data", "model": "vit", "fraction": "1/16"}]}}
    out = tmp_path / "fig.pdf"
    fig = fig_hessian.plot(spec, {"hessian": results.aggregate(files, "hessian")}, out)
    assert out.read_bytes()[:5] == b"%PDF-"
    ax_neg, ax_pos = fig.axes[:2]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["CNN (NEP 25.0%, APE 4.67)", "ViT (NEP 50.0%, APE 6)"]
    # densities over the whole spectrum: the areas of both panels add up to 1 per series
    for i in range(2):
        area = sum(np.nansum(ax.patches[i].get_data().values * np.diff(ax.patches[i].get_data().edges))
                   for ax in (ax_neg, ax_pos))
        assert area == pytest.approx(1.0)
    assert "no results yet for: ViT small data" in [t.get_text() for t in fig.texts]


def test_hessian_figure_without_negative_eigenvalues(tmp_path):
    files = [_write(tmp_path, "cnn", 1.0, [8.0, 2.0, 4.0, 2.0])]
    spec = {"figure": {"epoch": 1, "series": [{"label": "CNN", "model": "cnn"}]}}
    fig = fig_hessian.plot(spec, {"hessian": results.aggregate(files, "hessian")}, tmp_path / "fig.pdf")
    ax_neg = fig.axes[0]
    assert [t.get_text() for t in ax_neg.texts] == ["none"]
    assert ax_neg.get_xlim()[0] == pytest.approx(-0.4)  # 5% of the largest magnitude


def test_hessian_figure_with_no_data_at_all_still_draws(tmp_path):
    spec = {"figure": {"epoch": 1, "series": [{"label": "CNN", "model": "cnn"}]}}
    fig = fig_hessian.plot(spec, {"hessian": results.aggregate([], "hessian")}, tmp_path / "fig.pdf")
    assert (tmp_path / "fig.pdf").exists()
    assert "no results yet for: CNN" in [t.get_text() for t in fig.texts]


def test_files_are_grouped_by_table():
    from vitprobe.figures import table_of
    assert table_of("results/runs/a-b-k0-f1-s0/hessian_e5.parquet") == "hessian"
    assert table_of("results/runs/a-b-k0-f1-s0/train_log.parquet") == "train_log"
    assert table_of("x/eval_e305.parquet") == "eval"
