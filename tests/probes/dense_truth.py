"""Independent truth for the Hessian tests: NLL written here (not vitprobe's), the exact
dense Hessian by torch.func over the flat parameter vector, and small seeded data."""

import numpy as np
import torch
from torch.func import functional_call, hessian


def nll(out, y):
    """Mean NLL for integer labels or soft targets (rows summing to 1)."""
    logp = out.log_softmax(-1)
    if y.ndim == 1:
        return -logp.gather(1, y[:, None]).mean()
    return -(y * logp).sum(-1).mean()


def dense_hessian(model, x, y, wd=0.0) -> np.ndarray:
    """Exact Hessian of nll + wd/2·||θ||² over the parameters with requires_grad, in eval
    mode (every module's mode restored after), symmetrized, as a float64 array."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    named = dict(model.named_parameters())
    names = [n for n, p in named.items() if p.requires_grad]
    sizes = [named[n].numel() for n in names]
    flat = torch.cat([named[n].detach().reshape(-1) for n in names]).double()
    frozen = {n: p.detach() for n, p in named.items() if not p.requires_grad}

    def f(theta):
        params = {n: c.view_as(named[n]) for n, c in zip(names, torch.split(theta, sizes))}
        return nll(functional_call(model, {**frozen, **params}, (x,)), y) + wd / 2 * theta.dot(theta)

    H = hessian(f)(flat).numpy()
    for m, training in modes:
        m.training = training
    return (H + H.T) / 2


def toy_data(shape=(10,), classes=5, soft=False, n=16, seed=1):
    """n standard-normal inputs of `shape`; integer labels, or (soft=True) mixup-like soft
    targets: Dirichlet(1) rows, i.e. normalized exponentials."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    if soft:
        e = -torch.rand(n, classes, generator=g, dtype=torch.float64).log()
        y = e / e.sum(1, keepdim=True)
    else:
        y = torch.randint(0, classes, (n,), generator=g)
    return x, y
