"""Hessian-vector products of the loss with respect to the trainable parameters θ:

    L(θ) = loss_fn(model(x), y) + wd/2 · ||θ||²,   H v = ∇²L v = H_loss v + wd·v,

one mini-batch at a time (`make_hvp`: the first backward's graph is kept, each product is
one more backward through it) or B mini-batches at once (`batched_hvp`: double backward over
`vmap`ped lanes, or forward-over-reverse with `torch.func`). The solvers, the trace and the
density estimators all take their products from here."""

from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

from vitprobe.models.losses import nll, trainable
from vitprobe.probes.hessian.partition import Block

#: At most this many parameters, the solvers take the exact dense Hessian (n products): as
#: cheap as an iterative solve, and exact.
DENSE_MAX_PARAMS = 64


def dense_hessians(op: Callable[[Tensor], Tensor], B: int, n: int, dtype, device) -> np.ndarray:
    """(B, n, n) float64 Hessians of B mini-batches, symmetrized ((H + Hᵀ)/2), from n products
    with the unit vectors; `op` maps B vectors (B, n) to their B products (B, n)."""
    eye = torch.eye(n, dtype=dtype, device=device)
    H = torch.stack([op(eye[i].expand(B, n)) for i in range(n)], 2).double().cpu().numpy()
    return (H + H.transpose(0, 2, 1)) / 2

HVP_MODES = ("double_backward", "forward_over_reverse")


@contextlib.contextmanager
def double_backward_attention():
    """Make ``F.scaled_dot_product_attention`` twice differentiable (and forward-mode AD capable).

    timm's fused attention calls SDPA, whose fused CPU kernels have no double backward; the
    math backend is plain differentiable ops.
    """

    with sdpa_kernel(SDPBackend.MATH):
        yield


def parameter_count(model: nn.Module) -> int:
    """P, the dimension of the Hessian: the number of parameters with ``requires_grad``
    (weight decay adds wd·I over all of them, so tr(wd·I) = wd·P)."""
    return sum(p.numel() for p in trainable(model))


def as_input(inputs: Tensor, params: list[Tensor]) -> Tensor:
    if inputs.is_floating_point():
        return inputs.to(device=params[0].device, dtype=params[0].dtype)
    return inputs.to(params[0].device)


def make_hvp(
    model: nn.Module, inputs: Tensor, targets: Tensor, weight_decay: float = 0.0, loss_fn: Callable = nll
) -> tuple[Callable[[Tensor], Tensor], list[Tensor]]:
    """Hessian-vector product of L(θ) = loss_fn(model(inputs), targets) + wd/2·||θ||²
    (``loss_fn``: the mean NLL by default, any (outputs, targets) -> scalar).

    The loss and its gradient are built once with ``create_graph=True``; each call
    ``hvp(v)`` (v flat, same dtype/device as the parameters) costs one backward through that
    graph and returns H v flat. Uses the model in whatever mode it is in.
    Returns ``(hvp, params)``; params are the model's parameters with ``requires_grad``.
    """
    params = trainable(model)
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")
    loss = loss_fn(model(as_input(inputs, params)), targets.to(params[0].device))
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True, materialize_grads=True)
    # A gradient that does not depend on θ (e.g. of an unused parameter) has no Hessian block.
    live = [i for i, g in enumerate(grads) if g.requires_grad]
    live_grads = [grads[i] for i in live]
    live_params = [params[i] for i in live]
    sizes = [p.numel() for p in params]
    n = sum(sizes)

    def hvp(v: Tensor) -> Tensor:
        if v.shape != (n,):
            raise ValueError(f"hvp expects a flat vector of {n} elements, got shape {tuple(v.shape)}")
        pieces = [c.view_as(p) for c, p in zip(torch.split(v, sizes), params)]
        out = [torch.zeros_like(p) for p in params]
        if live:
            hv = torch.autograd.grad(
                live_grads, live_params, [pieces[i] for i in live],
                retain_graph=True, allow_unused=True, materialize_grads=True,
            )
            for i, h in zip(live, hv):
                out[i] = h
        flat = torch.cat([o.reshape(-1) for o in out])
        return flat + weight_decay * v if weight_decay else flat

    return hvp, params


def batched_hvp(model: nn.Module, batches: list, weight_decay: float = 0.0, mode: str = "double_backward",
                loss_fn: Callable = nll):
    """``(hvp, n)``: hvp(V) for V of shape (B, n) (dtype/device of the parameters) returns
    (B, n) with row b = H_b V[b], B = len(batches) of (inputs, targets) of equal shapes."""
    if mode not in HVP_MODES:
        raise ValueError(f"unknown hvp mode {mode!r}; allowed: {', '.join(HVP_MODES)}")
    params = trainable(model)
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")
    n = sum(p.numel() for p in params)
    if len(batches) == 1 and mode == "double_backward":
        single, _ = make_hvp(model, *batches[0], weight_decay, loss_fn)
        return (lambda V: single(V[0])[None]), n
    if len({tuple(x.shape) for x, _ in batches}) > 1 or len({tuple(y.shape) for _, y in batches}) > 1:
        raise ValueError("batched_hvp needs mini-batches of equal shapes")
    X = torch.stack([as_input(x, params) for x, _ in batches])
    Y = torch.stack([y for _, y in batches]).to(params[0].device)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    fixed = {**{name: p for name, p in model.named_parameters() if not p.requires_grad},
             **dict(model.named_buffers())}
    sizes = [p.numel() for p in params]
    B = len(batches)

    def loss(theta, x, y):
        return loss_fn(functional_call(model, {**fixed, **theta}, (x,)), y)

    def split(V):
        return [c.reshape(B, *p.shape) for c, p in zip(torch.split(V, sizes, dim=1), params)]

    def flat(pieces):
        return torch.cat([q.reshape(B, -1) for q in pieces], dim=1)

    if mode == "forward_over_reverse":
        theta = {name: p.detach() for name, p in zip(names, params)}

        def one(x, y, *v):
            return jvp(lambda th: grad(loss)(th, x, y), (theta,), (dict(zip(names, v)),))[1]

        def hvp(V):
            out = vmap(one)(X, Y, *split(V))
            return flat([out[name] for name in names]) + weight_decay * V
        return hvp, n

    lanes = {name: p.detach().unsqueeze(0).expand(B, *p.shape).requires_grad_() for name, p in zip(names, params)}
    total = vmap(loss)(lanes, X, Y).sum()
    leaves = list(lanes.values())
    grads = torch.autograd.grad(total, leaves, create_graph=True, allow_unused=True, materialize_grads=True)
    live = [i for i, g in enumerate(grads) if g.requires_grad]

    def hvp(V):
        pieces = split(V)
        out = [torch.zeros_like(q) for q in pieces]
        if live:
            hv = torch.autograd.grad([grads[i] for i in live], [leaves[i] for i in live], [pieces[i] for i in live],
                                     retain_graph=True, allow_unused=True, materialize_grads=True)
            for i, h in zip(live, hv):
                out[i] = h
        return flat(out) + weight_decay * V
    return hvp, n


def block_products(model: nn.Module, inputs, targets, blocks: list[Block], weight_decay: float = 0.0,
                   loss_fn: Callable = nll) -> dict[str, Callable]:
    """For each block, v_b -> H_bb v_b (flat, the parameters' dtype and device): one backward
    of the whole gradient with its graph kept, shared by every block; each product a
    backward through that graph restricted to the block's parameters."""
    named = dict((n, p) for n, p in model.named_parameters() if p.requires_grad)
    names, params = list(named), list(named.values())
    loss = loss_fn(model(as_input(inputs, params)), targets.to(params[0].device))
    grads = dict(zip(names, torch.autograd.grad(loss, params, create_graph=True, allow_unused=True,
                                                materialize_grads=True)))

    def make(block: Block):
        ps, gs = [named[n] for n in block.params], [grads[n] for n in block.params]
        live = [i for i, g in enumerate(gs) if g.requires_grad]
        sizes = [p.numel() for p in ps]

        def hvp(v):
            pieces = torch.split(v, sizes)
            out = [torch.zeros_like(p) for p in ps]
            if live:
                hv = torch.autograd.grad([gs[i] for i in live], [ps[i] for i in live],
                                         [pieces[i].view_as(ps[i]) for i in live], retain_graph=True,
                                         allow_unused=True, materialize_grads=True)
                for i, h in zip(live, hv):
                    out[i] = h
            flat = torch.cat([o.reshape(-1) for o in out])
            return flat + weight_decay * v if weight_decay else flat
        return hvp
    return {b.name: make(b) for b in blocks}
