import copy

import numpy as np
import pytest
import torch
from torch import nn

from vitprobe.models.losses import nll as loss_fn
from vitprobe.probes.landscape.measure import (
    filter_normalized_direction,
    grid_1d,
    grid_2d,
    landscape_style,
    loss_landscape,
    release_direction,
)


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
    df = loss_landscape(model, batches, [d1, d2], grid_2d(1.0, 3), weight_decay=wd, style="li2018")

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
    df = loss_landscape(model, batches, [d], xs, weight_decay=wd, style="li2018")
    assert list(df.columns) == ["x", "nll", "l2", "loss"]
    np.testing.assert_array_equal(df.x, xs)
    np.testing.assert_allclose(df.loss, [direct(a) for a in xs], rtol=1e-5)
    # the quadratic L2 term along the direction: ||θ + a d||² = ||θ||² + 2a<θ,d> + a²||d||²
    theta = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    dv = torch.cat([t.double().flatten() for t in d])
    np.testing.assert_allclose(df.l2, [(theta + a * dv).pow(2).sum().item() for a in xs], rtol=1e-6)  # θ' is float32

    coords = [(0.5, -1.0), (-1.5, 0.25)]
    df2 = loss_landscape(model, batches, [d, e], coords, weight_decay=wd, style="li2018")
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


# ---- the release's definition -------------------------------------------------------------

def release_bases(state_dict, draws, kws=("pos_embed", "relative_position")):
    """ops/loss_landscapes.py of the release, transcribed: normalize_filter (norms over dim 0,
    + 1e-7), then ignore_bn (< 2 dims -> 0), then ignore_kw (names matching a keyword -> 0),
    over every state-dict entry; ``draws`` holds the Gaussian draw of each entry."""
    out = {}
    for k, w in state_dict.items():
        b = draws[k].float()
        b = torch.norm(w.float(), dim=0, keepdim=True) / (torch.norm(b, dim=0, keepdim=True) + 1e-7) * b
        if b.dim() < 2 or any(kw in k for kw in kws):
            b = torch.zeros_like(b)
        out[k] = b
    return out


class _TinyViTLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, 4, 3))
        self.proj = nn.Linear(3, 3)
        self.norm = nn.LayerNorm(3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):  # x: (B, 4, 3)
        return self.head(self.norm(self.proj(x + self.pos_embed)).mean(1))


def test_release_direction_is_the_release_s_normalize_filter():
    torch.manual_seed(0)
    model = _TinyViTLike()
    ours = release_direction(model, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the documented draw order: one normal draw per parameter
    draws = {k: torch.randn(p.shape, generator=g) for k, p in model.named_parameters()}
    expected = release_bases(dict(model.state_dict()), draws)
    for (name, _), d in zip(model.named_parameters(), ours):
        torch.testing.assert_close(d, expected[name], rtol=1e-6, atol=1e-7)
    named = dict(zip([n for n, _ in model.named_parameters()], ours))
    assert (named["pos_embed"] == 0).all() and (named["proj.bias"] == 0).all() and (named["norm.weight"] == 0).all()
    # norms over dim 0: every column of the direction has its weight column's norm (not per row)
    w, d = model.proj.weight.detach(), named["proj.weight"]
    torch.testing.assert_close(d.norm(dim=0), w.norm(dim=0), rtol=1e-5, atol=0)
    assert not torch.allclose(d.norm(dim=1), w.norm(dim=1), rtol=1e-3)


def test_release_loss_is_nll_plus_wd_times_unsquared_norms_by_hand():
    """A 2 -> 2 linear model, one batch, hand-computed: at a = 0.5 along d,
    W' = W + 0.5 D, nll = mean CE, l2 = ||W'||_F + ||b||_2 (unsquared), loss = nll + wd l2."""
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        model.bias.copy_(torch.tensor([0.0, 1.0]))
    d = [torch.tensor([[0.0, 2.0], [2.0, 0.0]]), torch.zeros(2)]
    x, y = torch.tensor([[1.0, 1.0]]), torch.tensor([0])
    wd = 0.1
    df = loss_landscape(model, [(x, y)], [d], [0.5], weight_decay=wd)  # style release is the default
    # W' = [[1, 1], [1, 2]]: logits = [1 + 1 + 0, 1 + 2 + 1] = [2, 4]; CE for class 0 = log(1 + e^2)
    nll = np.log(1 + np.exp(2.0))
    l2 = np.sqrt(1 + 1 + 1 + 4) + 1.0
    assert df.nll.item() == pytest.approx(nll, rel=1e-6)
    assert df.l2.item() == pytest.approx(l2, rel=1e-7)
    assert df.loss.item() == pytest.approx(nll + wd * l2, rel=1e-6)
    li = loss_landscape(model, [(x, y)], [d], [0.5], weight_decay=wd, style="li2018")
    assert li.l2.item() == pytest.approx(7 + 1, rel=1e-7)
    assert li.loss.item() == pytest.approx(nll + wd / 2 * 8, rel=1e-6)


@pytest.mark.parametrize("name", ["vit_ti_cifar", "swin_ti_cifar", "alternet50_cifar", "lmsa_vit_cifar",
                                  "pit_ti_cifar", "resnet18_cifar"])
def test_release_perturbs_exactly_our_trainable_matrices(name):
    """The release draws over every state-dict entry; the ones it leaves non-zero (>= 2 dims,
    no pos_embed / relative_position in the name) are exactly the trainable >= 2-dim
    parameters that release_direction perturbs, so the two definitions agree on our models."""
    import timm

    import vitprobe.models  # noqa: F401  (registers the models)
    model = timm.create_model(name, depth=1) if "vit" in name else timm.create_model(name)
    params = dict(model.named_parameters())
    perturbed_by_release = {k for k, v in model.state_dict().items()
                            if v.dim() >= 2 and not any(kw in k for kw in ("pos_embed", "relative_position"))}
    ours = {k for k, d in zip(params, release_direction(model)) if d.abs().sum() > 0}
    assert perturbed_by_release == ours


def test_unknown_style_is_rejected():
    with pytest.raises(ValueError, match="landscape style must be one of release, li2018, got 'li'"):
        landscape_style("li")
