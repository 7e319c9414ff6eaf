"""Hessian trace (Hutchinson) and eigenvalue density (SLQ) against the exact dense Hessian.

Truth: torch.func.hessian of the loss as a function of the flat parameter vector (float64,
eval mode, NLL from dense_truth, independent of vitprobe) for tiny models of a few hundred
parameters; the random vectors are those the probes document (``random_vectors``).
"""

import itertools

import numpy as np
import pytest
import torch
from dense_truth import dense_hessian, nll, toy_data
from torch import nn

from vitprobe.probes.hessian.solvers import double_backward_attention
from vitprobe.probes.hessian.trace import density_on_grid, eigenvalue_density, hessian_trace, random_vectors

# torch.func's decompositions still go through torch.jit.script
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


# ---------------------------------------------------------------- truth
def _vectors(n, count, seed=0, kind="rademacher"):
    return [v.numpy() for v in itertools.islice(random_vectors(n, seed, kind), count)]


def _moments(H, v, p_max):
    """vᵀH^p v / vᵀv and vᵀ|H|^p v / vᵀv (a scale for the tolerance) for p = 0..p_max."""
    lam, U = np.linalg.eigh(H)
    c2 = (U.T @ v) ** 2 / (v @ v)
    p = np.arange(p_max + 1)[:, None]
    return (c2 * lam ** p).sum(1), (c2 * np.abs(lam) ** p).sum(1)


# ---------------------------------------------------------------- models and data
def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 5)).double()  # 261 parameters


def _data(**kwargs):
    return toy_data(**{"soft": True, **kwargs})  # mixup-like targets unless told


def _train(model, x, y, steps=30, lr=0.2):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        nll(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model


@pytest.fixture(scope="module")
def mlp_case():
    x, y = _data()
    model = _train(_mlp(), x, y)
    return model, x, y, dense_hessian(model, x, y)


class PerSample(nn.Module):
    """logits of sample b = (θ_b · x_b, 0): the mean NLL is a sum of functions of one
    parameter each, so the Hessian is diagonal (and not a multiple of I)."""

    def __init__(self, n):
        super().__init__()
        self.theta = nn.Parameter(torch.linspace(-1.0, 1.5, n, dtype=torch.float64))

    def forward(self, x):
        s = self.theta * x
        return torch.stack([s, torch.zeros_like(s)], -1)


# ---------------------------------------------------------------- random vectors
def test_random_vectors():
    a = _vectors(50, 3)
    assert all(set(np.unique(v)) == {-1.0, 1.0} for v in a)
    assert not np.array_equal(a[0], a[1])
    np.testing.assert_array_equal(a[2], _vectors(50, 3)[2])  # reproducible
    assert not np.array_equal(a[0], _vectors(50, 1, seed=1)[0])
    g = _vectors(2000, 1, kind="gaussian")[0]
    assert len(np.unique(g)) == 2000 and abs(g.std() - 1) < 0.1
    with pytest.raises(ValueError, match="rademacher.*gaussian"):
        next(random_vectors(5, kind="sphere"))


# ---------------------------------------------------------------- trace
def test_trace_unbiased_against_dense(mlp_case):
    model, x, y, H = mlp_case
    est, info = hessian_trace(model, x, y, n_samples=200, seed=3, return_info=True)
    vs = _vectors(H.shape[0], 200, seed=3)
    # every sample is vᵀHv of the documented vector, and the estimate their mean
    np.testing.assert_allclose(info["samples"], [v @ H @ v for v in vs], rtol=1e-9, atol=1e-9)
    assert est == pytest.approx(info["samples"].mean(), rel=1e-12)
    assert info["n_hvp"] == 200 and info["samples"].shape == (200,)
    assert info["std_error"] == pytest.approx(info["samples"].std(ddof=1) / np.sqrt(200))
    assert info["std_error"] > 0
    assert abs(est - np.trace(H)) <= 4 * info["std_error"], (est, np.trace(H), info["std_error"])


def test_trace_exact_for_diagonal_hessian():
    """vᵀHv = tr(H) + Σ_{i≠j} v_i v_j H_ij: with Rademacher v and diagonal H every sample is
    tr(H) (a Gaussian v would not give that)."""
    x, y = _data(shape=(), classes=2, soft=False, n=40)
    model = PerSample(40)
    H = dense_hessian(model, x, y)
    assert np.count_nonzero(H - np.diag(np.diag(H))) == 0 and np.ptp(np.diag(H)) > 1e-3
    est, info = hessian_trace(model, x, y, n_samples=10, return_info=True)
    np.testing.assert_allclose(info["samples"], np.trace(H), rtol=1e-12)
    assert est == pytest.approx(np.trace(H), rel=1e-12)
    assert info["std_error"] <= 1e-12 * abs(np.trace(H))


def test_trace_weight_decay_shift_is_exact(mlp_case):
    """Same seed, same vectors: every sample shifts by wd·vᵀv = wd·n."""
    model, x, y, H = mlp_case
    n = H.shape[0]
    e0, i0 = hessian_trace(model, x, y, n_samples=20, seed=5, return_info=True)
    e1, i1 = hessian_trace(model, x, y, weight_decay=0.3, n_samples=20, seed=5, return_info=True)
    np.testing.assert_allclose(i1["samples"] - i0["samples"], 0.3 * n, rtol=1e-10)
    assert e1 - e0 == pytest.approx(0.3 * n, rel=1e-10)
    assert i1["std_error"] == pytest.approx(i0["std_error"], rel=1e-8)


def test_trace_negative_does_not_stop_early(mlp_case):
    """H - 2·I has a negative trace; pyhessian 0.1 stops after 2 samples there."""
    model, x, y, H = mlp_case
    true = np.trace(H) - 2.0 * H.shape[0]
    assert true < 0
    est, info = hessian_trace(model, x, y, weight_decay=-2.0, n_samples=60, seed=1, return_info=True)
    assert info["n_hvp"] == 60 and info["samples"].shape == (60,)
    assert np.all(info["samples"] < 0)
    assert abs(est - true) <= 4 * info["std_error"]


def test_trace_single_sample_and_validation(mlp_case):
    model, x, y, H = mlp_case
    est, info = hessian_trace(model, x, y, n_samples=1, return_info=True)
    v = _vectors(H.shape[0], 1)[0]
    assert est == pytest.approx(v @ H @ v, rel=1e-9) and np.isnan(info["std_error"])
    assert isinstance(hessian_trace(model, x, y, n_samples=2), float)
    with pytest.raises(ValueError, match="n_samples"):
        hessian_trace(model, x, y, n_samples=0)


# ---------------------------------------------------------------- density
@pytest.mark.parametrize("start", ["rademacher", "gaussian"])
@pytest.mark.parametrize("wd", [0.0, -0.1])
def test_density_gauss_quadrature_moments(mlp_case, start, wd):
    """m Lanczos steps = m-point Gauss quadrature of the spectral measure seen from v:
    exact for λ^p, p <= 2m-1, and not for p = 2m."""
    model, x, y, H = mlp_case
    m, n = 6, H.shape[0]
    H = H + wd * np.eye(n)
    nodes, weights, info = eigenvalue_density(
        model, x, y, weight_decay=wd, n_lanczos=m, n_vectors=2, seed=7, start=start, return_info=True)
    assert nodes.shape == weights.shape == (2, m) and info["n_hvp"] == 2 * m
    for v, lam, w in zip(_vectors(n, 2, seed=7, kind=start), nodes, weights):
        want, scale = _moments(H, v, 2 * m)
        got = np.array([(w * lam**p).sum() for p in range(2 * m + 1)])
        err = np.abs(got - want) / scale
        assert np.all(err[: 2 * m] <= 1e-8), err
        assert err[2 * m] > 1e-6, err  # the quadrature is of degree 2m-1, no more


def test_density_full_lanczos_gives_exact_spectrum(mlp_case):
    """m = n: the nodes are all eigenvalues of H (repeated ones through restarts with weight
    0), and the weights are the squared projections of v on the eigenvectors."""
    model, x, y, H = mlp_case
    n = H.shape[0]
    lam, U = np.linalg.eigh(H)
    nodes, weights, info = eigenvalue_density(model, x, y, n_lanczos=n, seed=2, return_info=True)
    assert info["n_hvp"] == n
    scale = np.abs(lam).max()
    np.testing.assert_allclose(nodes[0], lam, rtol=0, atol=1e-9 * scale)
    assert weights.sum() == pytest.approx(1.0, abs=1e-12) and np.all(weights >= 0)
    # weights: compare the smoothed measures (repeated eigenvalues make per-node pairing ambiguous)
    v = _vectors(n, 1, seed=2)[0]
    exact_w = (U.T @ v) ** 2 / (v @ v)
    sigma = 1e-3 * scale
    grid = np.linspace(lam.min() - 5 * sigma, lam.max() + 5 * sigma, 20001)
    got = density_on_grid(nodes, weights, grid, sigma)
    want = density_on_grid(lam, exact_w, grid, sigma)
    assert np.abs(got - want).max() <= 1e-6 * want.max()


def test_density_full_lanczos_restarts_on_repeated_eigenvalues():
    """Hidden units in identical groups: H has eigenvalues of high multiplicity, so the Krylov
    space from v is invariant well before n steps; the nodes are still the exact spectrum."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    with torch.no_grad():
        model[0].weight.copy_((torch.randn(3, 6) / 2).repeat(4, 1))
        model[0].bias.copy_(torch.randn(3).repeat(4) / 5)
        model[2].weight.copy_(torch.randn(3, 3).repeat(1, 4) / 4)
    x, y = _data(shape=(6,), classes=3)
    H = dense_hessian(model, x, y, wd=0.05)
    n = H.shape[0]
    nodes, weights, info = eigenvalue_density(model, x, y, weight_decay=0.05, n_lanczos=n, return_info=True)
    assert info["restarts"] > 0
    lam = np.linalg.eigvalsh(H)
    np.testing.assert_allclose(nodes[0], lam, rtol=0, atol=1e-9 * np.abs(lam).max())
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_density_weight_decay_shifts_nodes(mlp_case):
    model, x, y, _ = mlp_case
    n0, w0 = eigenvalue_density(model, x, y, n_lanczos=12, n_vectors=2, seed=4)
    n1, w1 = eigenvalue_density(model, x, y, weight_decay=0.25, n_lanczos=12, n_vectors=2, seed=4)
    np.testing.assert_allclose(n1 - n0, 0.25, rtol=0, atol=1e-9)
    np.testing.assert_allclose(w1, w0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(w0.sum(1), 1.0, atol=1e-12)
    assert np.all(np.diff(n0, axis=1) >= 0)


def test_density_validation(mlp_case):
    model, x, y, H = mlp_case
    with pytest.raises(ValueError, match="n_lanczos"):
        eigenvalue_density(model, x, y, n_lanczos=H.shape[0] + 1)
    with pytest.raises(ValueError, match="start"):
        eigenvalue_density(model, x, y, n_lanczos=3, start="uniform")
    nodes, weights = eigenvalue_density(model, x, y, n_lanczos=1)
    v = _vectors(H.shape[0], 1)[0]
    assert nodes[0, 0] == pytest.approx(v @ H @ v / (v @ v), rel=1e-9) and weights[0, 0] == 1.0


# ---------------------------------------------------------------- density on a grid
def test_density_on_grid_formula_and_mass(mlp_case):
    grid = np.linspace(-3, 5, 801)
    sigma = 0.4
    gauss = lambda mu: np.exp(-((grid - mu) ** 2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi))
    nodes = np.array([[0.0, 1.0], [2.0, 2.0]])
    weights = np.array([[0.25, 0.75], [0.5, 0.5]])
    want = 0.5 * (0.25 * gauss(0.0) + 0.75 * gauss(1.0)) + 0.5 * gauss(2.0)
    np.testing.assert_allclose(density_on_grid(nodes, weights, grid, sigma), want, rtol=1e-12)
    np.testing.assert_allclose(density_on_grid(nodes[0], weights[0], grid, sigma),
                               0.25 * gauss(0.0) + 0.75 * gauss(1.0), rtol=1e-12)
    with pytest.raises(ValueError):
        density_on_grid(nodes, weights, grid, 0.0)
    with pytest.raises(ValueError):
        density_on_grid(nodes, weights[:, :1], grid, sigma)

    model, x, y, _ = mlp_case
    nodes, weights = eigenvalue_density(model, x, y, n_lanczos=20, n_vectors=3)
    sigma = 0.01 * np.ptp(nodes)
    grid = np.linspace(nodes.min() - 10 * sigma, nodes.max() + 10 * sigma, 40001)
    dens = density_on_grid(nodes, weights, grid, sigma)
    assert np.all(dens >= 0)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-6)


# ---------------------------------------------------------------- dtype, attention, modes
def test_float32_model(mlp_case):
    """float32 HVPs and Lanczos vectors against the float64 truth."""
    model64, x, y, H = mlp_case
    model = _mlp()
    model.load_state_dict(model64.state_dict())
    model.float()
    n, m = H.shape[0], 5
    nodes, weights = eigenvalue_density(model, x.float(), y.float(), n_lanczos=m)
    want, scale = _moments(H, _vectors(n, 1)[0], 2 * m - 1)
    got = np.array([(weights[0] * nodes[0] ** p).sum() for p in range(2 * m)])
    assert np.all(np.abs(got - want) / scale <= 1e-4)
    _, info = hessian_trace(model, x.float(), y.float(), n_samples=5, return_info=True)
    np.testing.assert_allclose(info["samples"], [v @ H @ v for v in _vectors(n, 5)], rtol=1e-4)


def test_vit_attention_parameters():
    """A timm ViT (fused attention by default, which has no double backward): only the qkv
    projection trainable (816 parameters) so that the dense truth is cheap."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=3).double()
    for name, p in model.named_parameters():
        p.requires_grad_(".attn.qkv." in name)
    x, y = _data(shape=(3, 8, 8), classes=3, n=8)
    with double_backward_attention():
        H = dense_hessian(model, x, y, wd=0.05)
    n = H.shape[0]
    _, info = hessian_trace(model, x, y, weight_decay=0.05, n_samples=3, return_info=True)
    np.testing.assert_allclose(info["samples"], [v @ H @ v for v in _vectors(n, 3)], rtol=1e-8)
    m = 4
    nodes, weights = eigenvalue_density(model, x, y, weight_decay=0.05, n_lanczos=m)
    want, scale = _moments(H, _vectors(n, 1)[0], 2 * m - 1)
    got = np.array([(weights[0] * nodes[0] ** p).sum() for p in range(2 * m)])
    assert np.all(np.abs(got - want) / scale <= 1e-8)


def test_modes_restored_and_gradients_untouched():
    x, y = _data()
    model = nn.Sequential(nn.Linear(10, 16), nn.Dropout(0.5), nn.Tanh(), nn.Linear(16, 5)).double()
    nll(model(x), y).backward()
    before = [p.grad.clone() for p in model.parameters()]
    model.train()
    model[1].eval()  # mixed modes must come back exactly
    # in train mode dropout would make repeated HVPs disagree; eval mode makes them exact
    H = dense_hessian(model, x, y)
    assert [m.training for m in model] == [True, False, True, True]
    _, info = hessian_trace(model, x, y, n_samples=3, return_info=True)
    np.testing.assert_allclose(info["samples"], [v @ H @ v for v in _vectors(H.shape[0], 3)], rtol=1e-9)
    assert [m.training for m in model] == [True, False, True, True]
    eigenvalue_density(model, x, y, n_lanczos=4)
    assert [m.training for m in model] == [True, False, True, True]
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), before))


# ---------------------------------------------------------------- facts about pyhessian 0.1
def _pyhessian(model, x, y, wd):
    ph = pytest.importorskip("pyhessian.hessian")
    params = list(model.parameters())

    def criterion(out, t):
        return nll(out, t) + wd / 2 * sum((p * p).sum() for p in params)

    model.eval()
    return ph.hessian(model, criterion, data=(x, y), cuda=False)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_pyhessian_reference_facts(mlp_case):
    """Why these functions exist: pyhessian 0.1's trace() stops after 2 samples once the
    running mean is negative, and its density() raises on this torch (torch.eig removed)."""
    trained, x, y, _ = mlp_case
    model = _mlp()  # a copy: pyhessian leaves .grad behind
    model.load_state_dict(trained.state_dict())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        assert len(_pyhessian(model, x, y, wd=-2.0).trace(maxIter=50)) == 2
        with pytest.raises(RuntimeError, match="torch.linalg.eig"):
            _pyhessian(model, x, y, wd=0.0).density(iter=3, n_v=1)


def test_whole_network_hutchpp_against_dense_and_hutchinson(mlp_case):
    """The Hessian probe's trace by Hutch++: unbiased against the dense trace (40 batches, the
    same images, other vectors), as Hutchinson's, the estimator named in the summary, and a
    count of products not in threes refused. (Its lower variance needs a decaying spectrum:
    tests/probes/test_hessian_blocks.py; on this MLP's flat one, with 4 vectors per part,
    it is not lower.)"""
    from vitprobe.probes.hessian.measure import compute

    model, x, y, H = mlp_case
    batches = [(x, y)] * 40
    _, pp = compute(model, batches, k=1, trace_samples=12, trace_estimator="hutchpp", weight_decay=0.05)
    _, hu = compute(model, batches, k=1, trace_samples=12, weight_decay=0.05)
    truth = np.trace(H) + 0.05 * H.shape[0]
    for s in (pp, hu):
        assert abs(s["trace"].iloc[0] - truth) <= 4 * s["trace_std_error"].iloc[0]
    assert pp["trace_estimator"].iloc[0] == "hutchpp" and hu["trace_estimator"].iloc[0] == "hutchinson"
    assert pp["trace_samples"].iloc[0] == 12
    with pytest.raises(ValueError, match="multiple of 3"):
        compute(model, batches[:1], k=1, trace_samples=10, trace_estimator="hutchpp")
