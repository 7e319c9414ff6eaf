"""hessian_summary: NEP, APE, λ_max and Hutchinson's trace (of NLL + wd/2·‖θ‖², and of the
NLL alone) per checkpoint.

Truth: hand-computed values, and for the probe runner the exact dense Hessian of a tiny MLP
on each mini-batch (its full spectrum, and vᵀHv for the documented Rademacher vectors, with
and without weight decay)."""

import numpy as np
import pytest
import torch
from dense_truth import dense_hessian, toy_data
from test_hessian_trace import _vectors
from torch import nn

from vitprobe import probe_runner as probe_job
from vitprobe import results
from vitprobe.analysis.inputs import RunInputs
from vitprobe.device import resolve
from vitprobe.probes.hessian.summary import nep_ape, spectrum_summary

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


def test_nep_ape_hand_computed():
    nep, ape = nep_ape(np.array([4.0, -1.0, 2.0, -3.0, 6.0]))
    assert nep == pytest.approx(2 / 5) and ape == pytest.approx(4.0)
    assert np.isnan(nep_ape([-1.0, -2.0])[1]) and nep_ape([-1.0, -2.0])[0] == 1.0
    assert nep_ape([0.0, 1.0]) == (0.0, 1.0)  # zero is neither negative nor positive
    assert all(np.isnan(nep_ape([])))


def test_spectrum_summary_hand_computed():
    s = spectrum_summary([[4.0, -1.0], [2.0, -3.0]], [[1.0, 3.0], [5.0, 7.0]], weight_decay=0.5, n_params=2)
    assert s["n_batches"] == 2 and s["n_eigenvalues"] == 4 and s["trace_samples"] == 2
    assert s["nep"] == 0.5 and s["ape"] == 3.0
    assert s["lambda_max"] == 3.0  # mean of 4 and 2
    assert s["trace"] == 4.0
    assert s["trace_nll"] == 3.0 and s["n_params"] == 2  # 4 - 0.5 · 2
    assert s["trace_std_error"] == pytest.approx(np.std([1, 3, 5, 7], ddof=1) / 2)
    s0 = spectrum_summary([[4.0, -1.0], [2.0, -3.0]], [[1.0, 3.0], [5.0, 7.0]], weight_decay=0.0, n_params=2)
    assert s0["trace_nll"] == s0["trace"] == 4.0


def test_spectrum_summary_without_trace_and_bad_samples():
    s = spectrum_summary([[-1.0, -2.0]], [], weight_decay=0.1, n_params=7)
    assert s["trace_samples"] == 0 and np.isnan(s["trace"]) and np.isnan(s["trace_std_error"])
    assert np.isnan(s["trace_nll"]) and s["n_params"] == 7
    assert s["lambda_max"] == -1.0 and np.isnan(s["ape"])
    one = spectrum_summary([[1.0]], [[2.0]], weight_decay=0.1, n_params=7)
    assert np.isnan(one["trace_std_error"])  # one sample: no error bar
    assert one["trace_nll"] == pytest.approx(2.0 - 0.7)
    with pytest.raises(ValueError, match="same number of trace samples"):
        spectrum_summary([[1.0], [2.0]], [[1.0, 2.0], [3.0]], weight_decay=0.0, n_params=1)


@pytest.mark.parametrize("wd, frozen", [(0.01, False), (0.0, False), (0.01, True)],
                         ids=["wd", "no-wd", "wd-frozen-bias"])
def test_probe_runner_summary_matches_dense_hessians(tmp_path, monkeypatch, wd, frozen):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 5)).double()  # 261 parameters
    if frozen:  # not in the Hessian, so neither in n_params nor in the weight decay's wd·I
        model[0].bias.requires_grad_(False)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n == (261 - 16 if frozen else 261)
    batches = [toy_data(soft=True, seed=1), toy_data(soft=True, seed=2)]
    seed, samples = 3, 6
    monkeypatch.setattr(probe_job, "load_run_model", lambda path, spec: (model, {"epoch": 4}))
    monkeypatch.setattr(RunInputs, "augmented_batches", lambda *args, **kwargs: iter(batches))
    run = {"dataset": "synthetic", "model": "mlp", "kernel_size": 0, "fraction": 1.0, "seed": 0}
    spec = {"run": run, "data": {"dataset": "synthetic"}, "model": {"arch": "mlp", "kwargs": {}},
            "train": {"weight_decay": wd},
            "probe": {"n_batches": 2, "batch_size": 16, "k": n, "method": "lanczos", "tol": 1e-3,
                      "seed": seed, "trace_samples": samples, "trace_estimator": "hutchinson", "batches_at_once": 1,
                      "hvp": "double_backward"}}
    out, summary_out = tmp_path / "hessian_e4.parquet", tmp_path / "hessian_summary_e4.parquet"
    probe_job.run_probe("hessian", spec, "unused.pt", {"hessian": out, "hessian_summary": summary_out},
                        device=resolve("cpu"))

    dense = [dense_hessian(model, x, y, wd) for x, y in batches]
    spectra = [np.linalg.eigvalsh(H) for H in dense]
    pooled = np.concatenate(spectra)
    # the documented vectors: random_vectors(n, seed + batch)
    quad = [[v @ H @ v for v in _vectors(n, samples, seed + b)] for b, H in enumerate(dense)]

    row = results.aggregate([summary_out], "hessian_summary").iloc[0]
    assert row["epoch"] == 4 and row["model"] == "mlp" and row["n_eigenvalues"] == 2 * n
    # without weight decay the Hessian has a null space whose eigenvalues (±1e-17) have no sign
    zero = 1e-10 * np.abs(pooled).max()
    assert (pooled < -zero).mean() <= row["nep"] <= (pooled < zero).mean()
    if wd:  # null space lifted to wd: every sign is defined
        assert row["nep"] == pytest.approx((pooled < 0).mean())
        assert row["ape"] == pytest.approx(pooled[pooled > 0].mean(), rel=1e-6)
    assert row["lambda_max"] == pytest.approx(np.mean([s.max() for s in spectra]), rel=1e-6)
    assert row["trace"] == pytest.approx(np.mean(quad), rel=1e-8)
    assert row["trace_std_error"] == pytest.approx(np.std(quad, ddof=1) / np.sqrt(2 * samples), rel=1e-6)
    # trace_nll: the same estimate for the NLL's own Hessian (dense, weight decay 0), same vectors
    dense_nll = [dense_hessian(model, x, y, 0.0) for x, y in batches]
    quad_nll = [[v @ H @ v for v in _vectors(n, samples, seed + b)] for b, H in enumerate(dense_nll)]
    assert row["n_params"] == n
    assert row["trace_nll"] == pytest.approx(np.mean(quad_nll), rel=1e-8)
    assert row["trace"] - row["trace_nll"] == pytest.approx(wd * n, rel=1e-12, abs=1e-12)
    assert np.std(quad_nll, ddof=1) / np.sqrt(2 * samples) == pytest.approx(row["trace_std_error"], rel=1e-6)
    if wd == 0:
        assert row["trace_nll"] == row["trace"]
    # unbiased: near the exact mean trace (not a check of the formula, which is above)
    exact = np.mean([np.trace(H) for H in dense])
    assert abs(row["trace"] - exact) < 5 * row["trace_std_error"]
    eig = results.aggregate([out], "hessian")
    assert len(eig) == 2 * n
    np.testing.assert_allclose(np.sort(eig["eigenvalue"]), np.sort(pooled), rtol=1e-6, atol=1e-9)


def test_probe_cli_wants_one_out_per_table(tmp_path, capsys):
    """`--out TABLE=PATH` for each table the probe writes, checked before any work."""
    from vitprobe.cli import main
    base = ["hessian", "--spec", "{}", "--device", "cpu", "--checkpoint", "x.pt"]
    assert main(base + ["--out", f"hessian={tmp_path / 'a'}"]) == 2
    assert capsys.readouterr().err.strip() == ("vitprobe hessian: error: --out: missing hessian_summary=PATH "
                                               "(one per table it writes)")
    assert main(base + ["--out", f"eval={tmp_path / 'a'}"]) == 2
    assert "expected NAME=PATH with NAME one of hessian, hessian_summary" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
