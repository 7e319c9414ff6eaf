"""Hessian top-eigenvalue backends against the exact dense Hessian.

Truth: torch.func.hessian of the loss as a function of the flat parameter vector (float64,
eval mode, NLL written here independently of vitprobe), then eigvalsh, top-k by |λ|.
Unless stated otherwise the comparison is per value: |got_i - true_i| <= 1e-3 · |true_i|.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dense_truth import dense_hessian, nll, toy_data
from torch import nn
from torch.func import functional_call, grad, jvp

from vitprobe.models.losses import nll as loss_fn
from vitprobe.probes.hessian.solvers import double_backward_attention, make_hvp, top_eigenvalues

# torch.func's forward-mode decompositions still go through torch.jit.script
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

RTOL = 1e-3
TIGHT = dict(tol=1e-8, max_iter=5000)  # power iteration converged far past 1e-3


# ---------------------------------------------------------------- truth
def _true_top(model, x, y, k=5, wd=0.0):
    e = np.linalg.eigvalsh(dense_hessian(model, x, y, wd))
    return e[np.argsort(-np.abs(e), kind="stable")][:k]


def _assert_rel(got, want, rtol=RTOL):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    err = np.abs(got - want) / np.abs(want)
    assert np.all(err <= rtol), f"relative errors {err}\n got {got}\nwant {want}"


# ---------------------------------------------------------------- models and data
def _mlp(act, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 24), act(), nn.Linear(24, 24), act(), nn.Linear(24, 5)).double()


def _cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.GELU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 5)
    ).double()


def _train(model, x, y, steps=50, lr=0.2, sign=1.0):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (sign * nll(model(x), y)).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model


# ---------------------------------------------------------------- loss and HVP
def test_loss_fn_int_and_soft():
    x, y = toy_data()
    out = torch.randn(16, 5, dtype=torch.float64)
    assert torch.allclose(loss_fn(out, y), F.cross_entropy(out, y))
    assert torch.allclose(loss_fn(out, F.one_hot(y, 5).double()), F.cross_entropy(out, y))
    _, ys = toy_data(soft=True)
    assert torch.allclose(loss_fn(out, ys), nll(out, ys))
    with pytest.raises(ValueError):
        loss_fn(out, y.double())


def test_make_hvp_matches_dense_hessian():
    x, y = toy_data(soft=True)
    model = _mlp(nn.Tanh).eval()
    H = torch.from_numpy(dense_hessian(model, x, y, wd=0.05))
    hvp, params = make_hvp(model, x, y, weight_decay=0.05)
    assert sum(p.numel() for p in params) == H.shape[0]
    for seed in range(3):
        v = torch.randn(H.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert torch.allclose(hvp(v), H @ v, rtol=1e-8, atol=1e-10)


def test_unused_parameter_has_zero_curvature():
    x, y = toy_data()
    model = _mlp(nn.GELU)
    model.register_parameter("unused", nn.Parameter(torch.ones(3, dtype=torch.float64)))
    hvp, params = make_hvp(model.eval(), x, y, weight_decay=0.5)
    v = torch.ones(sum(p.numel() for p in params), dtype=torch.float64)
    blocks = torch.split(hvp(v), [p.numel() for p in params])
    unused = next(b for b, p in zip(blocks, params) if p is model.unused)
    assert torch.equal(unused, torch.full((3,), 0.5, dtype=torch.float64))


# ---------------------------------------------------------------- lanczos (default) on MLPs
@pytest.mark.parametrize("act", [nn.Tanh, nn.GELU])
@pytest.mark.parametrize("trained", [False, True])
@pytest.mark.parametrize("wd", [0.0, 0.05])
@pytest.mark.parametrize("soft", [False, True])
def test_lanczos_matches_dense(act, trained, wd, soft):
    x, y = toy_data(soft=soft)
    model = _mlp(act)
    if trained:
        _train(model, x, y)
    want = _true_top(model, x, y, wd=wd)
    got, info = top_eigenvalues(model, x, y, k=5, weight_decay=wd, return_info=True)
    _assert_rel(got, want)
    assert got.dtype == np.float64 and info["method"] == "lanczos" and not info["dense"]
    assert 0 < info["n_hvp"] < 200 and info["seconds"] > 0


@pytest.mark.parametrize("act,trained,wd,soft", [(nn.Tanh, True, 0.05, True), (nn.GELU, False, 0.0, False)])
def test_power_matches_dense(act, trained, wd, soft):
    x, y = toy_data(soft=soft)
    model = _mlp(act)
    if trained:
        _train(model, x, y)
    got, info = top_eigenvalues(model, x, y, weight_decay=wd, method="power", return_info=True, **TIGHT)
    _assert_rel(got, _true_top(model, x, y, wd=wd))
    assert info["method"] == "power" and info["n_hvp"] > 0


def test_pyhessian_matches_dense_mlp():
    x, y = toy_data(soft=True)
    model = _train(_mlp(nn.GELU), x, y)
    got, info = top_eigenvalues(model, x, y, weight_decay=0.05, method="pyhessian", return_info=True, **TIGHT)
    _assert_rel(got, _true_top(model, x, y, wd=0.05))
    assert info["method"] == "pyhessian" and info["n_hvp"] > 5


def test_lanczos_float32():
    """float32 model and HVPs against the float64 truth: 1e-3 per value still holds."""
    x, y = toy_data()
    model = _train(_mlp(nn.Tanh), x, y)
    want = _true_top(model, x, y, wd=0.05)
    got = top_eigenvalues(model.float(), x.float(), y, weight_decay=0.05)
    _assert_rel(got, want)


# ---------------------------------------------------------------- CNN
@pytest.mark.parametrize("method", ["block", "lanczos", "power", "pyhessian"])
def test_cnn_all_backends(method):
    x, y = toy_data(shape=(3, 8, 8), soft=True)
    model = _train(_cnn(), x, y, steps=30, lr=0.1)
    kw = {} if method == "lanczos" else TIGHT
    got = top_eigenvalues(model, x, y, weight_decay=0.05, method=method, **kw)
    _assert_rel(got, _true_top(model, x, y, wd=0.05))


# ---------------------------------------------------------------- negative spectra
def test_negative_eigenvalues_dominate_after_gradient_ascent():
    """Gradient ascent on a tanh MLP reaches a region where the top-5 by |λ| are all negative."""
    x, y = toy_data()
    model = _train(_mlp(nn.Tanh), x, y, steps=60, lr=0.1, sign=-1.0)
    want = _true_top(model, x, y)
    assert np.all(want < 0)
    _assert_rel(top_eigenvalues(model, x, y), want)
    _assert_rel(top_eigenvalues(model, x, y, method="power", **TIGHT), want)
    _assert_rel(top_eigenvalues(model, x, y, method="block"), want)


@pytest.mark.parametrize("method", ["block", "lanczos", "power", "pyhessian"])
def test_negative_weight_decay_shift(method):
    """H - 0.5·I: the largest |λ| are the most negative of H_NLL shifted by -0.5, not H_NLL's
    own top-|λ| (positive) shifted, which catches backends that add wd after the fact."""
    x, y = toy_data(soft=True)
    model = _mlp(nn.GELU)
    k = 3
    want = _true_top(model, x, y, k=k, wd=-0.5)
    assert np.all(want < -0.5)
    assert np.all(np.abs(_true_top(model, x, y, k=k) - 0.5 - want) > 0.1)
    kw = {} if method == "lanczos" else TIGHT
    _assert_rel(top_eigenvalues(model, x, y, k=k, weight_decay=-0.5, method=method, **kw), want)


# ---------------------------------------------------------------- clustered spectrum
def _symmetric_mlp(copies=6, base=3, seed=0, jitter=0.0):
    """Hidden units in `copies` identical groups: the Hessian has exactly repeated eigenvalues
    (jitter > 0 perturbs the weights, splitting them into a tight cluster)."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(10, base * copies), nn.Tanh(), nn.Linear(base * copies, 5)).double()
    with torch.no_grad():
        m[0].weight.copy_((torch.randn(base, 10) / 3).repeat(copies, 1))
        m[0].bias.copy_((torch.randn(base) / 10).repeat(copies))
        m[2].weight.copy_(torch.randn(5, base).repeat(1, copies) / copies)
        for p in m.parameters():
            p.add_(jitter * torch.randn_like(p))
    return m


@pytest.mark.parametrize("method", ["block", "lanczos", "power", "pyhessian"])
def test_clustered_spectrum(method):
    """Ranks 6-10 lie within 0.5 % of each other and k=8 cuts into them. Power iteration needs
    a tight tol here (with pyhessian's default tol=1e-3 the per-step change is small long
    before convergence)."""
    x, y = toy_data()
    model = _symmetric_mlp(jitter=1e-3)
    want = _true_top(model, x, y, k=10)
    assert np.ptp(want[5:10]) < 5e-3 * abs(want[5])
    kw = {} if method == "lanczos" else TIGHT
    _assert_rel(top_eigenvalues(model, x, y, k=8, method=method, **kw), want[:8])


@pytest.mark.parametrize("method", [
    pytest.param("lanczos", marks=pytest.mark.xfail(
        strict=True, reason="single-vector Krylov methods see one copy of an exactly repeated eigenvalue")),
    pytest.param("block", marks=pytest.mark.xfail(
        strict=True, reason="a block of BLOCK=2 columns sees at most 2 copies (test_hessian_batched: block=10 does)")),
    "power", "pyhessian",
])
def test_exactly_repeated_eigenvalue(method):
    """k=8 cuts into an eigenvalue of multiplicity 5 (ranks 6-10), from an exact symmetry."""
    x, y = toy_data()
    model = _symmetric_mlp()
    want = _true_top(model, x, y, k=10)
    assert np.allclose(want[5:10], want[5], rtol=1e-10) and not np.isclose(want[4], want[5])
    kw = {} if method == "lanczos" else TIGHT
    _assert_rel(top_eigenvalues(model, x, y, k=8, method=method, **kw), want[:8])


def test_clustered_spectrum_weight_decay_dominates():
    x, y = toy_data()
    model = _symmetric_mlp()
    want = _true_top(model, x, y, wd=1.0)
    # per-value relative error of the curvature part λ - wd, which is stricter
    got = top_eigenvalues(model, x, y, weight_decay=1.0)
    _assert_rel(got - 1.0, want - 1.0)


# ---------------------------------------------------------------- tiny models: dense path
def test_dense_path_for_tiny_models():
    x, y = toy_data(shape=(4,), classes=3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()  # 43 parameters
    n = sum(p.numel() for p in model.parameters())
    want = _true_top(model, x, y, k=n, wd=0.05)
    got, info = top_eigenvalues(model, x, y, k=n, weight_decay=0.05, return_info=True)
    assert info["dense"] and info["n_hvp"] == n
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError):
        top_eigenvalues(model, x, y, k=n + 1)


# ---------------------------------------------------------------- timm ViT
def _vit():
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=3).double()


def test_vit_hvp_matches_forward_over_reverse_and_finite_differences():
    x, y = toy_data(shape=(3, 8, 8), classes=3, n=8, soft=True)
    model = _vit().eval()
    names = [n for n, _ in model.named_parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    shapes = [p.shape for p in model.parameters()]

    def f(theta):
        params = {n: c.view(s) for n, c, s in zip(names, torch.split(theta, sizes), shapes)}
        return nll(functional_call(model, params, (x,)), y)

    v = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with double_backward_attention():
        hvp, _ = make_hvp(model, x, y)
        got = hvp(v)
        _, fwd = jvp(grad(f), (flat,), (v,))
        eps = 1e-5
        fd = (grad(f)(flat + eps * v) - grad(f)(flat - eps * v)) / (2 * eps)
    assert torch.allclose(got, fwd, rtol=1e-8, atol=1e-10)
    assert torch.allclose(got, fd, rtol=1e-4, atol=1e-5 * fd.abs().max().item())


def test_vit_top_eigenvalues_attention_block():
    """Only the attention block trainable (~1.1k params) so that the dense truth is cheap;
    top_eigenvalues enters double_backward_attention by itself."""
    x, y = toy_data(shape=(3, 8, 8), classes=3, n=8)
    model = _vit()
    for name, p in model.named_parameters():
        p.requires_grad_(".attn." in name)
    got, info = top_eigenvalues(model, x, y, weight_decay=0.05, return_info=True)
    assert info["n_hvp"] > 0 and not info["dense"]
    with double_backward_attention():
        want = _true_top(model, x, y, wd=0.05)
    _assert_rel(got, want)


# ---------------------------------------------------------------- API contract
def test_unknown_method():
    x, y = toy_data()
    with pytest.raises(ValueError, match="block.*lanczos.*power.*pyhessian"):
        top_eigenvalues(_mlp(nn.Tanh), x, y, method="arnoldi")


def test_sorted_by_magnitude_and_modes_restored():
    x, y = toy_data()
    model = nn.Sequential(nn.Linear(10, 24), nn.Dropout(0.5), nn.Tanh(), nn.Linear(24, 5)).double()
    model.train()
    model[1].eval()  # mixed modes must come back exactly
    for method in ("block", "lanczos", "power", "pyhessian"):
        values = top_eigenvalues(model, x, y, k=6, weight_decay=-0.5, method=method)
        assert values.shape == (6,)
        assert np.all(np.diff(np.abs(values)) <= 0)
        assert [m.training for m in model] == [True, False, True, True]


def test_existing_gradients_untouched():
    x, y = toy_data()
    model = _mlp(nn.Tanh)
    nll(model(x), y).backward()
    before = [p.grad.clone() for p in model.parameters()]
    for method in ("block", "lanczos", "power", "pyhessian"):
        top_eigenvalues(model, x, y, k=2, method=method)
        assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before))


def test_power_reports_non_convergence():
    x, y = toy_data()
    with pytest.warns(RuntimeWarning, match="max_iter=3"):
        _, info = top_eigenvalues(_mlp(nn.Tanh), x, y, k=2, method="power", tol=1e-12, max_iter=3, return_info=True)
    assert info["converged"] is False and info["n_hvp"] == 6
