"""Trace and eigenvalue density of the loss Hessian (pyhessian's optional extras, done properly).

Same Hessian as ``probes.hessian``: for a batch (x, y) and all parameters θ with
``requires_grad``, L(θ) = NLL(model(x), y) + wd/2 · ||θ||², so H = H_NLL + wd·I, evaluated
in eval mode (the model's modes are restored afterwards) with attention on the math SDPA
backend (``double_backward_attention``).

- ``hessian_trace``: Hutchinson's estimator, tr(H) ≈ mean of vᵀHv over Rademacher v. It always
  takes ``n_samples`` samples. pyhessian 0.1's ``trace()`` stops when
  ``|mean - previous mean| / (previous mean + 1e-6) < tol``, which is always true once the
  running mean is negative (it stops after 2 samples), and otherwise stops at a random point.
- ``eigenvalue_density``: stochastic Lanczos quadrature (Ghorbani, Krishnan & Xiao 2019). For
  each start vector v, m steps of Lanczos with full reorthogonalization give the tridiagonal
  T = QᵀHQ; its eigenvalues are the nodes and the squared first components of its eigenvectors
  the weights of the m-point Gauss quadrature of the spectral measure of H seen from v:
  Σ_k w_k λ_k^p = vᵀH^p v / vᵀv for p = 0 .. 2m-1. pyhessian 0.1's ``density()`` implements
  the same algorithm but calls ``torch.eig``, which raises on torch >= 1.9 (RuntimeError on
  torch 2.14), and keeps T in float32.
- ``density_on_grid``: the quadrature smoothed by a Gaussian of width sigma, averaged over the
  start vectors; a probability density in λ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal
from torch import Tensor, nn

from vitprobe.models.losses import nll, trainable
from vitprobe.models.modes import eval_mode
from vitprobe.probes.hessian.products import double_backward_attention, make_hvp

START_VECTORS = ("rademacher", "gaussian")

# Lanczos breakdown: once ||w|| after reorthogonalization is below this many machine epsilons
# (of the HVP dtype) times the running estimate of ||H||, the Krylov space is invariant and
# Lanczos restarts with a fresh random vector orthogonal to all previous ones (T gets a zero
# off-diagonal, so the new block's nodes are eigenvalues of H with weight exactly 0).
_BREAKDOWN_EPS = 100.0
# Restart vectors come from their own generator so that the start vectors are always those
# of ``random_vectors(n, seed, kind)``.
_RESTART_SEED_OFFSET = 0x5EED


def random_vectors(n: int, seed: int = 0, kind: str = "rademacher") -> Iterator[Tensor]:
    """The random vectors used by ``hessian_trace`` (Rademacher) and ``eigenvalue_density``:
    an endless stream of float64 CPU tensors of shape (n,), Rademacher (±1 with equal
    probability) or standard Gaussian, from a ``torch.Generator`` seeded with ``seed``."""
    if kind not in START_VECTORS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(START_VECTORS)}")
    gen = torch.Generator().manual_seed(seed)
    while True:
        if kind == "rademacher":
            yield torch.randint(0, 2, (n,), generator=gen, dtype=torch.float64) * 2 - 1
        else:
            yield torch.randn(n, generator=gen, dtype=torch.float64)


def _trainable_count(model: nn.Module) -> tuple[int, torch.dtype, torch.device]:
    params = trainable(model)
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")
    return sum(p.numel() for p in params), params[0].dtype, params[0].device


def hessian_trace(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    weight_decay: float = 0.0,
    n_samples: int = 100,
    seed: int = 0,
    return_info: bool = False,
    loss_fn: Callable = nll,
):
    """Hutchinson's estimate of tr(H), H the Hessian of loss_fn + weight_decay/2·||θ||², in
    eval mode: the mean of vᵀHv over ``n_samples`` Rademacher vectors v (those of
    ``random_vectors(n, seed)``). Unbiased; each sample is exact when H is diagonal. Always
    ``n_samples`` HVPs: no early stopping (unlike pyhessian 0.1's ``trace()``).

    Returns the estimate (float); with ``return_info``, ``(estimate, info)`` where info has
    ``std_error`` (sample standard deviation / sqrt(n_samples); nan for one sample),
    ``n_hvp`` (= n_samples), ``samples`` (float64 array of the vᵀHv) and ``seconds``.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    n, dtype, device = _trainable_count(model)
    start = time.perf_counter()
    samples = np.empty(n_samples, dtype=np.float64)
    with eval_mode(model), double_backward_attention():
        hvp, _ = make_hvp(model, inputs, targets, weight_decay, loss_fn)
        vectors = random_vectors(n, seed, "rademacher")
        for i in range(n_samples):
            v = next(vectors).to(device=device, dtype=dtype)
            samples[i] = float(torch.dot(v.double(), hvp(v).double()))
    estimate = float(samples.mean())
    if not return_info:
        return estimate
    std_error = float(samples.std(ddof=1) / np.sqrt(n_samples)) if n_samples > 1 else float("nan")
    info = {"std_error": std_error, "n_hvp": n_samples, "samples": samples,
            "seconds": time.perf_counter() - start}
    return estimate, info


TRACE_ESTIMATORS = ("hutchinson", "hutchpp")


def hutchpp(matvec, n: int, n_products: int, seed: int = 0, dtype=torch.float64, device="cpu") -> float:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021) estimate of tr(A), A symmetric n×n given
    by `matvec` (a flat tensor in, A times it out), from `n_products` products (a multiple
    of 3, at least 3): with s = n_products/3 Rademacher columns S and G (``random_vectors``
    seeded `seed`, S first), Q an orthonormal basis of A S,

        tr(A) ≈ tr(Qᵀ A Q) + (1/s) · tr(Gᵀ (I − QQᵀ) A (I − QQᵀ) G):

    exact on the range of A S, Hutchinson's estimator on the rest. Unbiased; its variance
    falls as 1/s² where Hutchinson's falls as 1/s (for the same products) when A's spectrum
    decays. For n <= s the basis is all of Rⁿ and the estimate exact."""
    if n_products < 3 or n_products % 3:
        raise ValueError(f"Hutch++ needs a multiple of 3 products, at least 3; got {n_products}")
    s = n_products // 3
    vectors = random_vectors(n, seed, "rademacher")
    S = torch.stack([next(vectors) for _ in range(s)], 1)
    G = torch.stack([next(vectors) for _ in range(s)], 1)

    def apply(M):
        return torch.stack([matvec(M[:, j].to(device=device, dtype=dtype)).double().cpu() for j in range(M.shape[1])],
                           1)

    Q, _ = torch.linalg.qr(apply(S))
    G = G - Q @ (Q.T @ G)
    return float(torch.trace(Q.T @ apply(Q)) + torch.trace(G.T @ apply(G)) / s)


def hutchinson(matvec, n: int, n_products: int, seed: int = 0, dtype=torch.float64, device="cpu") -> np.ndarray:
    """Hutchinson's samples vᵀAv over `n_products` Rademacher vectors v (``random_vectors``
    seeded `seed`): their mean is the unbiased estimate of tr(A)."""
    vectors = random_vectors(n, seed, "rademacher")
    out = np.empty(n_products)
    for i in range(n_products):
        v = next(vectors)
        out[i] = float(torch.dot(v, matvec(v.to(device=device, dtype=dtype)).double().cpu()))
    return out


def operator_density(hvp, n: int, m: int, seed: int = 0, dtype=torch.float32, device="cpu"):
    """Stochastic Lanczos quadrature of the operator `hvp` (n×n, symmetric) from one
    Rademacher start vector (``random_vectors(n, seed)``): m = min(m, n) Lanczos steps with
    full reorthogonalization, as ``eigenvalue_density``. Returns (nodes, weights), float64
    arrays (m,), nodes ascending, weights summing to 1."""
    m = min(m, n)
    restart_gen = torch.Generator().manual_seed(seed + _RESTART_SEED_OFFSET)
    v0 = next(random_vectors(n, seed, "rademacher")).to(device=device, dtype=dtype)
    alpha, beta, _ = _lanczos(hvp, v0, m, restart_gen)
    if m == 1:
        return alpha.copy(), np.ones(1)
    evals, evecs = eigh_tridiagonal(alpha, beta)
    return evals, evecs[0] ** 2


def _orthogonalize(w: Tensor, basis: Tensor) -> Tensor:
    """w minus its projection on the orthonormal rows of basis; twice ("twice is enough")."""
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


def _lanczos(hvp, v0: Tensor, m: int, restart_gen: torch.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """m steps of Lanczos with full reorthogonalization from v0 (dtype/device of the HVPs).
    Returns the diagonal (m,) and off-diagonal (m-1,) of T in float64 and the number of
    restarts after a breakdown."""
    n = v0.numel()
    eps = torch.finfo(v0.dtype).eps
    Q = torch.empty(m, n, dtype=v0.dtype, device=v0.device)
    Q[0] = v0 / v0.norm()
    alpha = np.zeros(m)
    beta = np.zeros(max(m - 1, 0))
    scale = 0.0  # running estimate of ||H||: max |T_ij| seen so far
    restarts = 0
    for j in range(m):
        w = hvp(Q[j])
        alpha[j] = float(torch.dot(Q[j], w))
        scale = max(scale, abs(alpha[j]))
        if j + 1 == m:
            break
        w = _orthogonalize(w, Q[: j + 1])  # removes alpha_j q_j and beta_{j-1} q_{j-1} too
        b = float(w.norm())
        if b > _BREAKDOWN_EPS * eps * scale:
            beta[j] = b
            scale = max(scale, b)
            Q[j + 1] = w / b
        else:  # invariant Krylov space: continue with a new random direction
            restarts += 1
            r = torch.randn(n, generator=restart_gen, dtype=torch.float64).to(dtype=v0.dtype, device=v0.device)
            r = _orthogonalize(r, Q[: j + 1])
            Q[j + 1] = r / r.norm()
    return alpha, beta, restarts


def eigenvalue_density(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    weight_decay: float = 0.0,
    n_lanczos: int = 80,
    n_vectors: int = 1,
    seed: int = 0,
    return_info: bool = False,
    start: str = "rademacher",
):
    """Stochastic Lanczos quadrature of the spectrum of H (Hessian of loss_fn +
    weight_decay/2·||θ||², eval mode).

    For each of ``n_vectors`` start vectors v (``random_vectors(n, seed, start)``, Rademacher
    by default), ``n_lanczos`` = m steps of Lanczos with full reorthogonalization (Lanczos
    vectors kept on the parameters' device in their dtype: memory m·n; T in float64) give the
    tridiagonal T. Its eigenvalues are the nodes, the squared first components of its
    eigenvectors the weights (they sum to 1 per vector): Σ_k w_k λ_k^p = vᵀH^p v / vᵀv for
    p < 2m. If the Krylov space becomes invariant (fewer than m distinct eigenvalues seen from
    v), Lanczos continues from a random vector orthogonal to it; those nodes are eigenvalues of
    H with weight 0, so with m = n the nodes are all n eigenvalues of H.

    Returns ``(nodes, weights)``, float64 arrays (n_vectors, m), nodes ascending per row; with
    ``return_info``, ``(nodes, weights, info)`` where info has ``n_hvp`` (= n_vectors·m),
    ``restarts`` (breakdowns, summed over vectors) and ``seconds``.
    """

    if start not in START_VECTORS:
        raise ValueError(f"unknown start {start!r}; allowed: {', '.join(START_VECTORS)}")
    n, dtype, device = _trainable_count(model)
    if not 1 <= n_lanczos <= n:
        raise ValueError(f"n_lanczos must be in [1, number of parameters = {n}], got {n_lanczos}")
    if n_vectors < 1:
        raise ValueError(f"n_vectors must be >= 1, got {n_vectors}")
    t0 = time.perf_counter()
    nodes = np.empty((n_vectors, n_lanczos))
    weights = np.empty((n_vectors, n_lanczos))
    restarts = 0
    restart_gen = torch.Generator().manual_seed(seed + _RESTART_SEED_OFFSET)
    with eval_mode(model), double_backward_attention():
        hvp, _ = make_hvp(model, inputs, targets, weight_decay)
        vectors = random_vectors(n, seed, start)
        for i in range(n_vectors):
            v0 = next(vectors).to(device=device, dtype=dtype)
            alpha, beta, r = _lanczos(hvp, v0, n_lanczos, restart_gen)
            restarts += r
            if n_lanczos == 1:
                evals, evecs = alpha.copy(), np.ones((1, 1))
            else:
                evals, evecs = eigh_tridiagonal(alpha, beta)
            nodes[i] = evals
            weights[i] = evecs[0] ** 2
    if not return_info:
        return nodes, weights
    info = {"n_hvp": n_vectors * n_lanczos, "restarts": restarts, "seconds": time.perf_counter() - t0}
    return nodes, weights, info


def density_on_grid(nodes, weights, grid, sigma: float) -> np.ndarray:
    """Smoothed spectral density: (1/n_vectors) Σ_vectors Σ_k w_k · N(grid; λ_k, sigma²), the
    Gaussian normalized so that the density integrates to 1 (the weights of each vector sum to
    1). ``nodes``/``weights``: arrays (n_vectors, m) from ``eigenvalue_density`` (or 1-D for one
    vector). Returns float64 array of ``grid``'s shape."""
    nodes = np.atleast_2d(np.asarray(nodes, dtype=np.float64))
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if nodes.shape != weights.shape:
        raise ValueError(f"nodes and weights differ in shape: {nodes.shape} vs {weights.shape}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    grid = np.asarray(grid, dtype=np.float64)
    flat = grid.reshape(-1)
    out = np.zeros_like(flat)
    norm = 1.0 / (sigma * np.sqrt(2 * np.pi))
    for lam, w in zip(nodes, weights):
        z = (flat[:, None] - lam[None, :]) / sigma
        out += (np.exp(-0.5 * z * z) * w[None, :]).sum(1)
    return (out * norm / len(nodes)).reshape(grid.shape)
