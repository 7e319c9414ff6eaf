import copy

import numpy as np
import pytest
import torch
from torch import nn

from vitprobe.probes.hessian import loss_fn
from vitprobe.probes.landscape import filter_normalized_direction, grid_1d, grid_2d, loss_landscape


def _conv_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))


def _batches(n_batches=2, soft=False):
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n_batches):
        x = torch.randn(6, 3, 8, 8, generator=g)
        y = torch.randint(0, 5, (6,), generator=g)
        out.append((x, torch.softmax(torch.randn(6, 5, generator=g), 1) if soft else y))
    return out


def _with_bn_stats(model):
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 + 1)
    return model


def test_filter_normalization_and_zero_for_1d():
    model = _conv_model()
    dirs = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    params = list(model.parameters())
    assert len(dirs) == len(params)
    n_filters = 0
    for d, p in zip(dirs, params):
        assert d.shape == p.shape
        if p.ndim == 1:
            assert (d == 0).all()
        else:
            for j in range(p.shape[0]):
                assert d[j].norm().item() == pytest.approx(p[j].norm().item(), rel=1e-5)
                n_filters += 1
            # a random direction, not the weights themselves
            assert not torch.allclose(d.abs(), p.detach().abs())
    assert n_filters == 4 + 5
    again = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    other = filter_normalized_direction(model, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(dirs, again))
    assert not torch.equal(dirs[0], other[0])


@pytest.mark.parametrize("soft", [False, True])
def test_origin_equals_direct_loss_and_state_restored(soft):
    model = _with_bn_stats(_conv_model())
    before = copy.deepcopy(model.state_dict())
    batches = _batches(soft=soft)
    wd = 0.05
    d1 = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    d2 = filter_normalized_direction(model, torch.Generator().manual_seed(1))
    df = loss_landscape(model, batches, [d1, d2], grid_2d(1.0, 3), weight_decay=wd)

    assert model.training  # mode restored
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # parameters and BN buffers bit-exact

    model.eval()
    with torch.no_grad():
        nll = np.mean([loss_fn(model(x), y).item() for x, y in batches])
        l2 = sum(p.double().pow(2).sum().item() for p in model.parameters())
    origin = df[(df.x == 0) & (df.y == 0)]
    assert len(origin) == 1 and len(df) == 9
    assert list(df.columns) == ["x", "y", "nll", "l2", "loss"]
    assert origin.nll.item() == pytest.approx(nll, rel=1e-6)
    assert origin.l2.item() == pytest.approx(l2, rel=1e-10)
    assert origin.loss.item() == pytest.approx(nll + wd / 2 * l2, rel=1e-6)
    assert (df.loss != origin.loss.item()).sum() == 8  # the other points moved


def test_linear_model_matches_direct_evaluation():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randn(10, 6, generator=g), torch.randint(0, 3, (10,), generator=g)) for _ in range(3)]
    d = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    e = filter_normalized_direction(model, torch.Generator().manual_seed(1))
    wd = 0.1

    def direct(a, b=0.0):
        w = model.weight.detach() + a * d[0] + b * e[0]  # bias direction is zero
        bias = model.bias.detach()
        nll = np.mean([loss_fn(x @ w.T + bias, y).item() for x, y in batches])
        return nll + wd / 2 * (w.double().pow(2).sum() + bias.double().pow(2).sum()).item()

    xs = grid_1d(2.0, 5)
    df = loss_landscape(model, batches, [d], xs, weight_decay=wd)
    assert list(df.columns) == ["x", "nll", "l2", "loss"]
    np.testing.assert_array_equal(df.x, xs)
    np.testing.assert_allclose(df.loss, [direct(a) for a in xs], rtol=1e-5)
    # the quadratic L2 term along the direction: ||θ + a d||² = ||θ||² + 2a<θ,d> + a²||d||²
    theta = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    dv = torch.cat([t.double().flatten() for t in d])
    np.testing.assert_allclose(df.l2, [(theta + a * dv).pow(2).sum().item() for a in xs], rtol=1e-6)  # θ' is float32

    coords = [(0.5, -1.0), (-1.5, 0.25)]
    df2 = loss_landscape(model, batches, [d, e], coords, weight_decay=wd)
    np.testing.assert_allclose(df2.loss, [direct(a, b) for a, b in coords], rtol=1e-5)


def test_grids():
    xs = grid_1d(1.0, 11)
    assert xs[5] == 0.0 and xs[0] == -1.0 and xs[-1] == 1.0
    np.testing.assert_allclose(xs, np.linspace(-1, 1, 11), atol=1e-15)
    g = grid_2d(0.5, 3)
    assert g[:3] == [(-0.5, -0.5), (-0.5, 0.0), (-0.5, 0.5)] and len(g) == 9 and (0.0, 0.0) in g


def test_bad_arguments_raise():
    model = nn.Linear(2, 2)
    d = filter_normalized_direction(model)
    batches = [(torch.randn(3, 2), torch.tensor([0, 1, 0]))]
    with pytest.raises(ValueError, match="coordinates"):
        loss_landscape(model, batches, [d], [(0.0, 1.0)])
    with pytest.raises(ValueError, match="direction"):
        loss_landscape(model, batches, [d[:1]], [0.0])
