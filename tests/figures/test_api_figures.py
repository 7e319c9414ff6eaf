"""`vitprobe.plot`: the pipeline's figures drawn from the tables `vitprobe.api` returns (no
grid columns), of tiny models: the plotted data read back from the Figure is the tables'."""

import numpy as np
import pandas as pd
import pytest
import torch
from test_figures_probes import _axes_titled, _line

import vitprobe
import vitprobe.figures
from vitprobe import api, models
from vitprobe.columns import GRID_COLUMNS
from vitprobe.figures.panels import BAND_GID
from vitprobe.probes.hessian.summary import nep_ape


@pytest.fixture(scope="module")
def tables():
    """api tables of a tiny ViT (8x8 tokens, 2 blocks) and a tiny ResNet on 8 random 32 px images."""
    torch.manual_seed(0)
    vit = models.create("vit_ti_cifar", num_classes=10, patch_size=4, embed_dim=16, depth=2, num_heads=2).eval()
    cnn = models.create("resnet18_cifar", num_classes=10, layers=(1, 1, 1, 1), widths=(4, 4, 8, 8)).eval()
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    out = {name: {"fourier": api.fourier(m, x, batch_size=4)[0], "variance": api.variance(m, x)[0]}
           for name, m in [("vit", vit), ("cnn", cnn)]}
    out["vit"]["hessian"] = api.hessian(vit, [(x[:4], y[:4]), (x[4:], y[4:])], k=3, trace_samples=0)
    return out


def _is_pdf(path):
    return path.read_bytes()[:5] == b"%PDF-"


def test_plot_is_the_figures_plot_tables():
    assert vitprobe.plot is vitprobe.figures.plot_tables


def test_fig_fourier_from_an_api_table_plots_its_values(tmp_path, tables):
    fourier = tables["vit"]["fourier"]
    assert not set(c.name for c in GRID_COLUMNS) & set(fourier.columns)  # as the API returns it
    out = tmp_path / "fourier.pdf"
    fig = vitprobe.plot("fig_fourier", fourier, out, label="ViT")
    assert _is_pdf(out)
    ax = _axes_titled(fig, "ViT")
    curves = {ln.get_gid(): ln for ln in ax.lines if (ln.get_gid() or "").startswith("map ")}
    assert len(curves) == fourier["map_index"].nunique()
    for index, rows in fourier.groupby("map_index"):
        rows = rows.sort_values("freq")
        np.testing.assert_allclose(curves[f"map {index}"].get_xdata(), rows["freq"])
        np.testing.assert_allclose(curves[f"map {index}"].get_ydata(), rows["log_amplitude"])
    profile = fourier.drop_duplicates("map_index").sort_values("map_index").dropna(subset=["high_freq_delta"])
    line = _line(_axes_titled(fig, "(b) Δ log amplitude at the highest frequency vs depth"), "ViT")
    np.testing.assert_allclose(line.get_xdata(), profile["depth"])
    np.testing.assert_allclose(line.get_ydata(), profile["high_freq_delta"])
    assert "epoch 0" in fig.subfigs[0].get_suptitle()  # the grid default: an imported model's checkpoint


def _variance_profile(table):
    return table.sort_values("map_index").dropna(subset=["variance"])


def test_fig_variance_draws_several_models_from_a_dict_or_a_model_column(tmp_path, tables):
    vit, cnn = tables["vit"]["variance"], tables["cnn"]["variance"]
    for given in ({"ViT": vit, "CNN": cnn},
                  pd.concat([vit.assign(model="ViT"), cnn.assign(model="CNN")], ignore_index=True)):
        out = tmp_path / "variance.pdf"
        fig = vitprobe.plot("fig_variance", given, out)
        assert _is_pdf(out)
        ax = fig.axes[0]
        for label, table in [("ViT", vit), ("CNN", cnn)]:
            line, profile = _line(ax, label), _variance_profile(table)
            np.testing.assert_allclose(line.get_xdata(), profile["depth"])
            np.testing.assert_allclose(line.get_ydata(), profile["variance"])
        msa = _variance_profile(vit).query("kind == 'msa'")["depth"].to_numpy()
        bands = sorted((p.get_bbox().x0 + p.get_bbox().x1) / 2 for p in ax.patches if p.get_gid() == BAND_GID)
        np.testing.assert_allclose(bands, msa)  # the ViT's MSA depths, shaded
        assert len(msa) == 2


def test_fig_hessian_from_api_hessians_pair_plots_its_eigenvalues(tmp_path, tables):
    eigs, _ = pair = tables["vit"]["hessian"]
    out = [tmp_path / "hessian.pdf", tmp_path / "hessian.png"]
    fig = vitprobe.plot("fig_hessian", pair, out, label="ViT", epoch=3)  # the summary is told apart and unused
    assert all(p.stat().st_size for p in out) and _is_pdf(out[0])
    values = eigs["eigenvalue"].to_numpy()
    nep, ape = nep_ape(values)
    legend = fig.legends[0]
    assert legend.get_title().get_text() == "Hessian max-eigenvalue spectra at epoch 3"
    assert [t.get_text() for t in legend.get_texts()] == [f"ViT (NEP {100 * nep:.1f}%, APE {ape:.3g})"]
    for ax, part in zip(fig.axes[:2], (values[values < 0], values[values >= 0])):
        (stairs,) = ax.patches
        data = stairs.get_data()
        counts, _ = np.histogram(part, bins=data.edges)
        np.testing.assert_allclose(np.nan_to_num(data.values) * len(values) * np.diff(data.edges), counts)


def test_grid_columns_are_filled_from_keywords_or_kept(tmp_path, tables, monkeypatch):
    drawn = []
    monkeypatch.setattr(vitprobe.figures, "draw", lambda name, spec, frames, out: drawn.append((spec, frames)))
    variance = tables["vit"]["variance"]
    vitprobe.plot("fig_variance", variance, tmp_path / "v.pdf", model="mine", fraction="1/4", seed=2)
    spec, frames = drawn[-1]
    names = [c.name for c in GRID_COLUMNS]
    frame = frames["variance"]
    assert list(frame.columns[:len(names)]) == names and len(frame) == len(variance)
    first = frame.iloc[0]
    assert (first["dataset"], first["model"], first["kernel_size"], first["fraction"], first["seed"],
            first["epoch"]) == ("custom", "mine", 0, 0.25, 2, 0)
    if "run" in names:
        assert first["run"] == "custom-mine-k0-f1of4-s2"
    assert spec == {"series": [{"label": "mine", "model": "mine"}]}
    # grid columns the frame has are kept; a given spec is used, what it lacks filled
    vitprobe.plot("fig_hessian", tables["vit"]["hessian"][0].assign(model="vit", epoch=7), tmp_path / "h.pdf",
                  spec={"bins": 5})
    spec, frames = drawn[-1]
    assert spec == {"bins": 5, "series": [{"label": "vit", "model": "vit"}], "epoch": 7}
    assert (frames["hessian"]["model"] == "vit").all() and (frames["hessian"]["epoch"] == 7).all()


def test_plot_errors_say_what_is_allowed(tmp_path, tables):
    vit, cnn = tables["vit"], tables["cnn"]
    with pytest.raises(ValueError, match="unknown figure 'fig_nope'; allowed: fig_hessian"):
        vitprobe.plot("fig_nope", vit["fourier"], tmp_path / "f.pdf")
    with pytest.raises(ValueError, match="fig_hessian draws table\\(s\\) hessian, hessian_summary; got fourier"):
        vitprobe.plot("fig_hessian", vit["fourier"], tmp_path / "f.pdf")
    with pytest.raises(ValueError, match="model 'same' is in the tables of 'a' and 'b'"):
        vitprobe.plot("fig_variance", {"a": vit["variance"].assign(model="same"),
                                       "b": cnn["variance"].assign(model="same")}, tmp_path / "v.pdf")
    with pytest.raises(ValueError, match="is none of the tables"):
        vitprobe.plot("fig_variance", pd.DataFrame({"x": [1]}), tmp_path / "v.pdf")
    with pytest.raises(TypeError, match="unknown keyword argument\\(s\\) modle; allowed: label, dataset, model"):
        vitprobe.plot("fig_variance", vit["variance"], tmp_path / "v.pdf", modle="x")
    assert not list(tmp_path.iterdir())
