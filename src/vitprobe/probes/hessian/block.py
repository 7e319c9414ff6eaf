"""Top eigenvalues of the Hessians of B mini-batches at once, warm-started.

Same Hessian as ``probes.hessian``: for mini-batch b, L_b(θ) = NLL(model(x_b), y_b) +
wd/2·||θ||² over all parameters θ with ``requires_grad``, H_b = ∇²L_b, eval mode, attention on
the math SDPA backend. For every b, the k eigenvalues of H_b of largest magnitude, sign kept.

- ``batched_hvp``: one call computes H_b v_b for all B mini-batches. ``double_backward``
  (default): the B losses are evaluated by ``torch.func.vmap`` over ``functional_call`` with
  the parameters expanded to B lanes, so ∂(Σ_b L_b)/∂θ_b = ∇L_b(θ) per lane; that gradient's
  graph is kept and each product is one backward through it. ``forward_over_reverse``:
  ``vmap`` of ``jvp(grad(L_b))``, which recomputes forward and backward on every call. With
  B = 1 the double backward is ``probes.hessian.products.make_hvp`` itself.
- ``block_eigensolve``: block Krylov–Schur (block Lanczos with full reorthogonalization,
  Rayleigh–Ritz on the whole basis, thick restart keeping the top Ritz vectors), run for the B
  lanes in lockstep with one batched HVP per block column. A pair (θ, y = Qs) of the basis Q
  satisfies H y − θ y = Q_next R s_last exactly (Q_next the next block, R its coupling), so
  its residual norm ‖r‖ is known without an HVP, and some eigenvalue of H lies within ‖r‖ of
  θ. A lane stops when each of its top-k pairs has an estimated error min(‖r‖, ‖r‖²/gap)
  (``error_bound``) ≤ SAFETY·tol·|θ|, once its basis has k + MIN_STEPS·p vectors. Start block of
  p = ``BLOCK`` columns: the previous mini-batch's top-k Ritz vectors of the same lane summed
  into the p columns plus a little seeded noise (warm start: neighbouring mini-batches of one
  checkpoint have similar top eigenspaces), or seeded random columns (cold start). A block of
  size p sees eigenvalues of multiplicity up to p (single-vector Lanczos: 1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from vitprobe.models.losses import nll, trainable
from vitprobe.models.modes import eval_mode
from vitprobe.probes.hessian.products import DENSE_MAX_PARAMS, batched_hvp, dense_hessians, double_backward_attention

EXTRA = 2            # Ritz vectors kept beyond k for the next warm start
BLOCK = 2            # columns per step (measured: 1, 2 and k + 2 with warm starts; benchmarks/bench_hessian.py)
SAFETY = 0.25        # a lane stops when its estimated error is below SAFETY·tol relative
MIN_STEPS = 2        # a lane may stop once its basis holds k + MIN_STEPS·p vectors (so a larger eigenvalue shows)
BASIS_BLOCKS = 6     # basis of at most BASIS_BLOCKS·p vectors, then a thick restart
MAX_STEPS = 200      # blocks per lane before giving up
WARM_NOISE = 0.1     # norm of the random part of a warm start column (warm part: a sum of unit vectors)
# "auto" mini-batches at once per device type: on CPU a stacked HVP costs as much per
# mini-batch as separate ones (measured, benchmarks/bench_hessian.py), so 1; a GPU runs a
# batch of 16 CIFAR images far below capacity, so 8 (measured on an H200, ViT-Ti, docs/guide/gpu.md:
# 0.37 mini-batches/s at 1, 0.51 at 8, 0.43 at 16).
AT_ONCE = {"cpu": 1, "cuda": 8, "mps": 1}
_BREAKDOWN = 1e3     # a new direction with norm below this many eps·‖T‖ is replaced by a random one


def batches_at_once(value, device) -> int:
    """B, mini-batches solved together: the config's integer, or for "auto" the device's
    default (``AT_ONCE``)."""
    return AT_ONCE[device.torch_device.type] if value == "auto" else int(value)


def _random(shape, seeds, dtype, device) -> Tensor:
    """(B, p, n) Gaussian columns, lane b from a generator seeded with seeds[b]."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s)), dtype=torch.float64)
                        for s in seeds]).to(dtype=dtype, device=device)


def _project_out(W: Tensor, Q: Tensor) -> Tensor:
    """W (B, p, n) minus its projection on the orthonormal rows of Q (B, m, n), twice."""
    for _ in range(2):
        W = W - torch.bmm(torch.bmm(W, Q.transpose(1, 2)), Q)
    return W


def _orthonormal(W: Tensor, Q: Tensor | None, scale: Tensor, seeds, step: int):
    """Rows of W (B, p, n) made orthonormal and orthogonal to Q: returns (Q_next, R) with
    W − Q Qᵀ W = R Q_next (R lower triangular); a direction W has (almost) none of (Krylov
    breakdown) is replaced by a seeded random one orthogonal to everything, with a zero
    column in R."""
    if Q is not None:
        W = _project_out(W, Q)
    q, r = torch.linalg.qr(W.transpose(1, 2))  # W_bᵀ = q r
    Qn, R = q.transpose(1, 2).contiguous(), r.transpose(1, 2).contiguous()
    bad = torch.diagonal(R, dim1=1, dim2=2).abs().cpu() <= _BREAKDOWN * torch.finfo(W.dtype).eps * scale[:, None]
    if bad.any():
        fresh = _random(W.shape[1:], [s + 7919 * (step + 2) for s in seeds], W.dtype, W.device)
        for b, j in bad.nonzero().tolist():
            others = torch.cat([Qn[b, :j], Qn[b, j + 1:]] + ([Q[b]] if Q is not None else []))
            v = fresh[b, j]
            for _ in range(2):
                v = v - others.T @ (others @ v)
            Qn[b, j] = v / v.norm()
            R[b, :, j] = 0
    return Qn, R


def error_bound(theta: np.ndarray, top: np.ndarray, res: np.ndarray) -> np.ndarray:
    """Estimated |θ_i − λ_i| of the Ritz values θ[top] with residual norms ``res``: ‖r‖ (a
    bound: some eigenvalue lies within it), or ‖r‖²/gap when that is smaller, gap the distance
    to the nearest other Ritz value (the quadratic bound, with the Ritz gap for the unknown
    eigenvalue gap; in a cluster the gap is small and ‖r‖ decides)."""
    others = np.abs(theta[top][:, None] - theta[None, :])
    others[np.arange(len(top)), top] = np.inf
    gap = others.min(1) if theta.size > 1 else np.full(len(top), np.inf)
    return np.minimum(res, res ** 2 / np.maximum(gap, np.finfo(float).tiny))


def _top(theta: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k values of largest magnitude (positive first on ties), in that order."""
    return np.lexsort((-theta, -np.abs(theta)))[:k]


def block_eigensolve(hvp, B: int, n: int, k: int, tol: float, dtype, device, *, seeds, warm: Tensor | None = None,
                     extra: int = EXTRA, block: int | None = None, max_steps: int = MAX_STEPS,
                     min_steps: int = MIN_STEPS):
    """Top-k eigenvalues by magnitude of each of B symmetric operators given by
    ``hvp(V: (B, n)) -> (B, n)`` (module docstring). ``warm``: (B, ≥k, n) start vectors (their
    first k are used), else a cold start; ``seeds[b]`` seeds lane b's random columns.

    Returns ``(values, vectors, n_hvp, converged)``: float64 (B, k) sorted by |λ| descending,
    (B, k + extra, n) top Ritz vectors (the next warm start), int (B,) products used by each
    lane until it stopped, bool (B,)."""
    p = min(block or BLOCK, n)  # columns per step
    stored = min(k + extra, n)
    max_basis = min(max(BASIS_BLOCKS * p, 2 * stored + p), n)
    X = _random((p, n), seeds, dtype, device)
    if warm is not None:  # column j: the sum of warm vectors j, j + p, ... plus a little noise
        W0 = warm[:, :k].to(dtype=dtype, device=device)
        W0 = torch.stack([W0[:, j::p].sum(1) for j in range(min(p, k))], 1)
        X[:, : W0.shape[1]] = W0 + WARM_NOISE * X[:, : W0.shape[1]] / X[:, : W0.shape[1]].norm(dim=2, keepdim=True)
    block, _ = _orthonormal(X, None, torch.zeros(B, dtype=torch.float64), seeds, -1)
    Q = block.new_empty(B, 0, n)
    T = np.zeros((B, 0, 0))
    values, vectors = np.zeros((B, k)), block.new_zeros(B, stored, n)
    n_hvp, done = np.zeros(B, dtype=np.int64), np.zeros(B, dtype=bool)
    for step in range(max_steps):
        W = torch.stack([hvp(block[:, j]) for j in range(block.shape[1])], 1)  # (B, p, n): H_b of each column
        n_hvp[~done] += block.shape[1]
        Q = torch.cat([Q, block], 1)
        m, pb = Q.shape[1], block.shape[1]
        C = torch.bmm(W, Q.transpose(1, 2)).double().cpu().numpy()  # (B, pb, m): Q_newᵀ H Q
        T = np.pad(T, ((0, 0), (0, pb), (0, pb)))
        T[:, m - pb:, :] = C
        T[:, :, m - pb:] = C.transpose(0, 2, 1)
        T[:, m - pb:, m - pb:] = (C[:, :, m - pb:] + C[:, :, m - pb:].transpose(0, 2, 1)) / 2
        theta, S = np.linalg.eigh(T)
        # H Q = Q T + (coupling of the last block to the next): H q_j − Σ_i T_ij q_i = Σ_l R_jl next_l
        block, R = _orthonormal(W, Q, torch.from_numpy(np.abs(T).max((1, 2))), seeds, step)
        R = R.double().cpu().numpy()
        finished = np.zeros(B, dtype=bool)
        for b in np.flatnonzero(~done) if m >= k + min_steps * p else []:
            top = _top(theta[b], k)
            res = np.linalg.norm(R[b].T @ S[b][m - pb:][:, top], axis=0)  # ‖H y − θ y‖ of each Ritz pair
            values[b] = theta[b, top]
            finished[b] = bool(np.all(error_bound(theta[b], top, res) <= SAFETY * tol * np.abs(theta[b, top])))
        last = step + 1 == max_steps
        if finished.any() or last:
            store = finished | (last & ~done)
            keep = np.stack([S[b][:, _top(theta[b], min(stored, m))] for b in range(B)])
            ritz = torch.bmm(torch.from_numpy(keep).to(dtype=dtype, device=device).transpose(1, 2), Q)
            vectors[torch.from_numpy(store).to(device)] = ritz[torch.from_numpy(store).to(device)]
        done |= finished
        if done.all():
            break
        if m + pb > max_basis:  # thick restart: keep the top Ritz vectors; T becomes their eigenvalues
            idx = [_top(theta[b], min(stored + p, m - pb)) for b in range(B)]
            keep = np.stack([S[b][:, i] for b, i in enumerate(idx)])
            Q = torch.bmm(torch.from_numpy(keep).to(dtype=dtype, device=device).transpose(1, 2), Q)
            T = np.stack([np.diag(theta[b, i]) for b, i in enumerate(idx)])
    return values, vectors, n_hvp, done


def _dense(op, B, n, k, dtype, device):
    theta, S = np.linalg.eigh(dense_hessians(op, B, n, dtype, device))
    idx = [_top(theta[b], k) for b in range(B)]
    values = np.stack([theta[b, i] for b, i in enumerate(idx)])
    vectors = torch.from_numpy(np.stack([S[b][:, i].T for b, i in enumerate(idx)])).to(dtype=dtype, device=device)
    return values, {"n_hvp": np.full(B, n), "converged": np.ones(B, dtype=bool), "vectors": vectors}


def top_eigenvalues_batched(model: nn.Module, batches: list, k: int = 5, weight_decay: float = 0.0,
                            tol: float = 1e-3, *, seeds, warm: Tensor | None = None, hvp: str = "double_backward",
                            block: int | None = None, max_steps: int = MAX_STEPS, loss_fn: Callable = nll):
    """For each mini-batch (inputs, targets) of ``batches``, the k eigenvalues of largest
    magnitude (sign kept, sorted by |λ| descending) of its Hessian H_b (module docstring), in
    eval mode (modes restored) with attention on the math SDPA backend; one batched HVP
    (``hvp`` mode) per block column. ``seeds[b]``: seed of batch b's random start columns;
    ``warm``: the ``vectors`` of a previous call (lane b continues from lane b).

    Returns ``(values, info)``: float64 (B, k) and {"n_hvp": int (B,), "converged": bool (B,),
    "vectors": (B, k + EXTRA, n) top Ritz vectors}."""
    params = trainable(model)
    n = sum(p.numel() for p in params)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, number of parameters = {n}), got {k}")
    if len(seeds) != len(batches):
        raise ValueError(f"one seed per mini-batch: {len(seeds)} seeds for {len(batches)} batches")
    if warm is not None:
        warm = warm[: len(batches)] if len(warm) >= len(batches) else None
    with eval_mode(model), double_backward_attention():
        op, n = batched_hvp(model, batches, weight_decay, hvp, loss_fn)
        if n <= DENSE_MAX_PARAMS:  # as for lanczos: n products give the exact dense Hessians
            return _dense(op, len(batches), n, k, params[0].dtype, params[0].device)
        values, vectors, n_hvp, converged = block_eigensolve(
            op, len(batches), n, k, tol, params[0].dtype, params[0].device, seeds=seeds, warm=warm,
            block=block, max_steps=max_steps, min_steps=MIN_STEPS)
    return values, {"n_hvp": n_hvp, "converged": converged, "vectors": vectors.detach()}
