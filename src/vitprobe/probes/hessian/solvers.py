"""Top eigenvalues of the loss Hessian with respect to the parameters.

For a batch (x, y) and parameters θ (all parameters with ``requires_grad``), the loss is

    L(θ) = NLL(model(x), y) + wd/2 · ||θ||²,   so   H = ∇²L = H_NLL + wd·I,

evaluated with the model in eval mode. ``top_eigenvalues`` returns the k eigenvalues of H of
largest magnitude, sign kept, sorted by |λ| descending. Four backends:

- ``lanczos`` (default): scipy's ``eigsh`` (implicitly restarted Lanczos, ARPACK) on a
  ``LinearOperator`` of Hessian-vector products; tiny models get an exact dense eigensolve.
- ``power``: power iteration with deflation (pyhessian's algorithm, our code).
- ``pyhessian``: the pyhessian 0.1 library itself, as the reference.
- ``block``: the warm-startable block Krylov–Schur solver of ``probes.hessian.block``
  (here cold-started, one mini-batch; the probe runs it on B mini-batches at once).
"""

from __future__ import annotations

import importlib
import time
import warnings
from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from threadpoolctl import ThreadpoolController
from torch import Tensor, nn

from vitprobe.models.losses import nll, trainable
from vitprobe.models.modes import eval_mode
from vitprobe.probes.hessian.block import top_eigenvalues_batched
from vitprobe.probes.hessian.products import (  # noqa: F401 (parameter_count: re-exported for callers of the solver)
    DENSE_MAX_PARAMS,
    as_input,
    dense_hessians,
    double_backward_attention,
    make_hvp,
    parameter_count,
)

METHODS = ("block", "lanczos", "power", "pyhessian")

# Defaults when max_iter is None: iterations per eigenvalue for power/pyhessian, and ARPACK
# restarts for lanczos (scipy's own default, 10·n, never ends if float32 noise keeps tol out of reach).
POWER_MAX_ITER = 1000
LANCZOS_MAX_RESTARTS = 300
_SEED = 0  # start vectors are seeded so that a batch always gives the same result


def _order(values) -> np.ndarray:
    """Sort by |λ| descending (positive first on ties)."""
    values = np.asarray(values, dtype=np.float64)
    return values[np.lexsort((-values, -np.abs(values)))]


def _dense(hvp, n, dtype, device) -> np.ndarray:
    return np.linalg.eigvalsh(dense_hessians(lambda V: hvp(V[0])[None], 1, n, dtype, device)[0])


def _openblas_single_thread():
    """OpenBLAS (ARPACK's BLAS) on one thread for the duration: its idle threads busy-wait
    between ARPACK calls and halve the speed of the HVPs that run in torch's threads in between
    (measured on 2 cores)."""
    return ThreadpoolController().select(internal_api="openblas").limit(limits=1)


def _lanczos(hvp, n, k, tol, max_iter, dtype, device, count) -> np.ndarray:

    def matvec(x):
        count[0] += 1
        v = torch.as_tensor(np.ascontiguousarray(x).reshape(-1), device=device).to(dtype)
        return hvp(v).double().cpu().numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(_SEED).standard_normal(n)
    # At tol itself ARPACK sometimes converges before an eigenvalue of a cluster has emerged and
    # returns the wrong k-th value (~2 % of synthetic trials); tol/10 fixed all for ~15 % more HVPs.
    with _openblas_single_thread():
        return eigsh(op, k=k, which="LM", tol=tol / 10, maxiter=max_iter, v0=v0, return_eigenvectors=False)


def _power(hvp, n, k, tol, max_iter, dtype, device, count) -> tuple[np.ndarray, bool]:
    """Power iteration with deflation; stops when the Rayleigh quotient changes by < tol relative.
    Returns the values and whether every one converged within max_iter."""
    all_converged = True
    gen = torch.Generator().manual_seed(_SEED)  # on the CPU: the same start vectors on every device
    found: list[Tensor] = []
    values = []

    def deflate(w):
        for u in found:
            w = w - (u @ w) * u
        return w

    for _ in range(k):
        v = deflate(torch.randn(n, generator=gen, dtype=dtype).to(device))
        v = v / v.norm()
        rho, converged = None, False
        for _ in range(max_iter):
            w = hvp(v)
            count[0] += 1
            new = float(v @ w)
            w = deflate(w)
            norm = w.norm()
            if norm == 0:  # v spans a null direction of the deflated operator
                rho, converged = new, True
                break
            v = w / norm
            converged = rho is not None and abs(new - rho) <= tol * abs(new)
            rho = new
            if converged:
                break
        all_converged &= converged
        values.append(rho)
        found.append(v)
    return np.array(values), all_converged


def _pyhessian(model, inputs, targets, k, tol, max_iter, weight_decay, count, loss_fn) -> np.ndarray:
    ph = importlib.import_module("pyhessian.hessian")  # the package rebinds .hessian to the class

    params = trainable(model)

    # The L2 term goes into the criterion: adding wd to pyhessian's top-|λ| of H_NLL afterwards
    # would be wrong whenever the shift changes which eigenvalues have the largest magnitude.
    def criterion(outputs, targets):
        loss = loss_fn(outputs, targets)
        if weight_decay:
            loss = loss + weight_decay / 2 * sum((p * p).sum() for p in params)
        return loss

    # pyhessian accumulates its create_graph gradient into .grad and clears .grad later.
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    original = ph.hessian_vector_product

    def counted(*args, **kwargs):
        count[0] += 1
        return original(*args, **kwargs)

    ph.hessian_vector_product = counted
    try:
        # Its start vectors come from the global CPU RNG: seed it without disturbing the caller's.
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
            torch.manual_seed(_SEED)
            h = ph.hessian(
                model, criterion, data=(as_input(inputs, params), targets.to(params[0].device)),
                cuda=params[0].device.type == "cuda",
            )
            values, _ = h.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
    finally:
        ph.hessian_vector_product = original
        for p, g in zip(params, saved):
            p.grad = g
    return np.array(values, dtype=np.float64)


def operator_top_eigenvalues(hvp, n: int, k: int, *, tol: float = 1e-3, max_iter: int | None = None,
                             dtype=torch.float32, device="cpu") -> tuple[np.ndarray, int, bool]:
    """The k eigenvalues of largest magnitude (sign kept, sorted by |λ| descending) of the
    symmetric operator `hvp` (a flat tensor of n elements in, one out): an exact dense
    eigensolve for n <= max(DENSE_MAX_PARAMS, k + 1), else ARPACK as ``top_eigenvalues``'s
    ``lanczos``. Returns (values, products used, dense)."""
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, the operator's size = {n}], got {k}")
    count = [0]
    if n <= max(DENSE_MAX_PARAMS, k + 1):
        return _order(_dense(hvp, n, dtype, device))[:k], n, True
    values = _lanczos(hvp, n, k, tol, LANCZOS_MAX_RESTARTS if max_iter is None else max_iter, dtype, device, count)
    return _order(values)[:k], count[0], False


def top_eigenvalues(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    k: int = 5,
    weight_decay: float = 0.0,
    method: str = "lanczos",
    tol: float = 1e-3,
    max_iter: int | None = None,
    return_info: bool = False,
    loss_fn: Callable = nll,
):
    """The k eigenvalues of largest magnitude (sign kept), sorted by |λ| descending, of the
    Hessian of L(θ) = loss_fn(model(inputs), targets) + weight_decay/2·||θ||² with respect to
    all parameters with ``requires_grad`` (H = H_NLL + weight_decay·I for the default
    ``loss_fn``, the mean NLL), in eval mode.

    The model's train/eval mode is restored afterwards; attention runs on the math SDPA
    backend (``double_backward_attention``). ``tol`` is the relative accuracy asked for: for
    ``lanczos`` ARPACK runs at tol/10 (its residual criterion, |λ| error well below tol); for
    ``power`` and ``pyhessian`` it bounds the relative change of the Rayleigh quotient between
    steps, which on clustered spectra stops long before the values are that accurate.
    ``max_iter``: ARPACK restarts for ``lanczos`` (``LANCZOS_MAX_RESTARTS`` if None),
    iterations per eigenvalue for ``power``/``pyhessian`` (``POWER_MAX_ITER`` if None).
    Models with at most ``DENSE_MAX_PARAMS`` parameters get an exact dense eigensolve under
    ``lanczos``.

    Returns float64 array (k,); with ``return_info``, ``(values, info)`` where info has
    ``n_hvp``, ``seconds``, ``method``, ``dense`` (True if the dense path was taken) and
    ``converged`` (False if power iteration hit max_iter, which also warns; None for pyhessian,
    which does not tell; lanczos raises ``ArpackNoConvergence`` instead).

    Known limit of ``lanczos``: a single-vector Krylov method sees one copy of an *exactly*
    repeated eigenvalue (exact symmetries, e.g. identical hidden units); near-equal clusters
    are fine. ``power``/``pyhessian`` find the copies (with a tight tol).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    params = trainable(model)
    n = sum(p.numel() for p in params)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, number of parameters = {n}], got {k}")
    if max_iter is None:
        max_iter = LANCZOS_MAX_RESTARTS if method == "lanczos" else POWER_MAX_ITER
    count = [0]
    dense, converged = False, True
    start = time.perf_counter()
    with eval_mode(model), double_backward_attention():
        if method == "block":
            batch_values, binfo = top_eigenvalues_batched(model, [(inputs, targets)], k, weight_decay, tol,
                                                          seeds=[_SEED], loss_fn=loss_fn)
            values, count[0], converged = batch_values[0], int(binfo["n_hvp"][0]), bool(binfo["converged"][0])
            if not converged:
                warnings.warn(f"block solver reached its step limit before tol={tol}", RuntimeWarning, stacklevel=2)
        elif method == "pyhessian":
            converged = None  # pyhessian does not say
            values = _pyhessian(model, inputs, targets, k, tol, max_iter, weight_decay, count, loss_fn)
        else:
            hvp, _ = make_hvp(model, inputs, targets, weight_decay, loss_fn)
            dtype, device = params[0].dtype, params[0].device
            if method == "power":
                values, converged = _power(hvp, n, k, tol, max_iter, dtype, device, count)
                if not converged:
                    warnings.warn(f"power iteration reached max_iter={max_iter} before tol={tol}",
                                  RuntimeWarning, stacklevel=2)
            elif n <= max(DENSE_MAX_PARAMS, k + 1):  # eigsh needs k < n
                dense = True
                values = _dense(hvp, n, dtype, device)
                count[0] = n
            else:
                values = _lanczos(hvp, n, k, tol, max_iter, dtype, device, count)
    values = _order(values)[:k]
    if not return_info:
        return values
    info = {"n_hvp": count[0], "seconds": time.perf_counter() - start, "method": method,
            "dense": dense, "converged": converged}
    return values, info
