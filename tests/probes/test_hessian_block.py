"""The batched, warm-started block solver against the exact dense Hessian of each mini-batch.

Truth: dense_truth.dense_hessian (torch.func.hessian of an independently written NLL over the
flat parameters, float64, eval mode), eigvalsh, top-k by |λ|; per value
|got_i − true_i| <= 1e-3 · |true_i|. Products of the batched HVP are checked against the
dense matrix itself.
"""

import numpy as np
import pytest
import torch
from dense_truth import dense_hessian, toy_data
from torch import nn

from vitprobe.probes.hessian.block import top_eigenvalues_batched
from vitprobe.probes.hessian.products import batched_hvp, double_backward_attention

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

RTOL = 1e-3


def _true_top(model, x, y, k=5, wd=0.0):
    e = np.linalg.eigvalsh(dense_hessian(model, x, y, wd))
    return e[np.argsort(-np.abs(e), kind="stable")][:k]


def _assert_rel(got, want, rtol=RTOL):
    err = np.abs(np.asarray(got) - want) / np.abs(want)
    assert np.all(err <= rtol), f"relative errors {err}\n got {got}\nwant {want}"


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 24), nn.Tanh(), nn.Linear(24, 24), nn.GELU(), nn.Linear(24, 5)).double()


def _cnn_bn(seed=0):
    """Conv + BatchNorm (eval: running statistics, made non-trivial) + GELU + linear head."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.GELU(), nn.AvgPool2d(2), nn.Flatten(),
                      nn.Linear(64, 5)).double()
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2.0)
    return m


def _vit_attention():
    """timm ViT with only its attention block trainable (~1.1k parameters): the math SDPA path."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    m = VisionTransformer(img_size=8, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=5).double()
    for name, p in m.named_parameters():
        p.requires_grad_(".attn." in name)
    return m


def _batches(shape, n, soft=True):
    return [toy_data(shape=shape, soft=soft, seed=s) for s in range(1, n + 1)]


@pytest.mark.parametrize("mode", ["double_backward", "forward_over_reverse"])
@pytest.mark.parametrize("build,shape", [(_mlp, (10,)), (_cnn_bn, (3, 8, 8)), (_vit_attention, (3, 8, 8))],
                         ids=["mlp", "cnn-bn", "vit-attention"])
def test_batched_hvp_is_each_batch_dense_hessian(build, shape, mode):
    model = build().eval()
    batches = _batches(shape, 3)
    wd = 0.05
    with double_backward_attention():  # as top_eigenvalues_batched does: fused SDPA has no double backward
        hvp, n = batched_hvp(model, batches, wd, mode)
        V = torch.randn(3, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        got = hvp(V)
        for b, (x, y) in enumerate(batches):
            H = torch.from_numpy(dense_hessian(model, x, y, wd))
            assert torch.allclose(got[b], H @ V[b], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_batched_solver_matches_dense_and_one_at_a_time(wd):
    """B = 4 mini-batches at once, then the same four one at a time: both within 1e-3 of each
    batch's dense spectrum; the warm-started second pass (lanes continue from the first) too."""
    model = _mlp()
    batches = _batches((10,), 4)
    want = np.stack([_true_top(model, x, y, wd=wd) for x, y in batches])
    together, info = top_eigenvalues_batched(model, batches, k=5, weight_decay=wd, seeds=[0, 1, 2, 3])
    assert info["converged"].all() and (info["n_hvp"] > 0).all()
    for b in range(4):
        _assert_rel(together[b], want[b])
        alone, _ = top_eigenvalues_batched(model, batches[b:b + 1], k=5, weight_decay=wd, seeds=[b])
        _assert_rel(alone[0], want[b])
        np.testing.assert_allclose(alone[0], together[b], rtol=2e-3)
    rolled = batches[1:] + batches[:1]
    warm_values, warm_info = top_eigenvalues_batched(model, rolled, k=5, weight_decay=wd, seeds=[4, 5, 6, 7],
                                                     warm=info["vectors"])
    for b in range(4):
        _assert_rel(warm_values[b], want[(b + 1) % 4])


def test_batched_solver_forward_over_reverse_cnn_bn():
    model = _cnn_bn()
    batches = _batches((3, 8, 8), 2)
    want = [_true_top(model, x, y, wd=0.05) for x, y in batches]
    got, _ = top_eigenvalues_batched(model, batches, k=5, weight_decay=0.05, seeds=[0, 1], hvp="forward_over_reverse")
    for b in range(2):
        _assert_rel(got[b], want[b])


def test_batched_solver_negative_and_clustered():
    """Gradient ascent makes the top-5 by |λ| negative; a symmetric MLP gives a tight cluster
    at ranks 6-10 that k = 8 cuts into."""
    from test_hessian_solvers import _symmetric_mlp, _train

    x, y = toy_data()
    ascent = _train(_mlp(), x, y, steps=60, lr=0.1, sign=-1.0)
    want = _true_top(ascent, x, y)
    assert np.all(want < 0)
    got, _ = top_eigenvalues_batched(ascent, [(x, y)], k=5, seeds=[0])
    _assert_rel(got[0], want)
    sym = _symmetric_mlp(jitter=1e-3)
    want = _true_top(sym, x, y, k=10)
    assert np.ptp(want[5:10]) < 5e-3 * abs(want[5])
    got, _ = top_eigenvalues_batched(sym, [(x, y), (x, y)], k=8, seeds=[0, 1])
    _assert_rel(got[0], want[:8])
    _assert_rel(got[1], want[:8])


def test_batched_solver_bad_input():
    model = _mlp()
    with pytest.raises(ValueError, match="one seed per mini-batch"):
        top_eigenvalues_batched(model, _batches((10,), 2), seeds=[0])
    with pytest.raises(ValueError, match="double_backward, forward_over_reverse"):
        batched_hvp(model, _batches((10,), 2), mode="reverse_over_forward")


def test_block_sees_exactly_repeated_eigenvalue():
    """An eigenvalue of multiplicity 5 (ranks 6-10, exact symmetry), k = 8: a block of 10
    columns finds every copy (single-vector Lanczos, and the default block of 2, do not)."""
    from test_hessian_solvers import _symmetric_mlp

    x, y = toy_data()
    model = _symmetric_mlp()
    want = _true_top(model, x, y, k=10)
    assert np.allclose(want[5:10], want[5], rtol=1e-10)
    got, _ = top_eigenvalues_batched(model, [(x, y)], k=8, seeds=[0], block=10)
    _assert_rel(got[0], want[:8])


def test_tiny_model_dense_path():
    """43 parameters: exact dense Hessians per batch (n products each), every eigenvalue."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    batches = [toy_data(shape=(4,), classes=3, seed=s) for s in (1, 2)]
    got, info = top_eigenvalues_batched(model, batches, k=10, weight_decay=0.05, seeds=[0, 1])
    assert list(info["n_hvp"]) == [43, 43]
    for b, (x, y) in enumerate(batches):
        np.testing.assert_allclose(got[b], _true_top(model, x, y, k=10, wd=0.05), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("hvp", ["double_backward", "forward_over_reverse"])
def test_a_custom_loss_reaches_the_products_of_one_mini_batch(hvp):
    """A loss_fn is the loss of every product, also for a single mini-batch (where the double
    backward is `make_hvp`): with loss 2·NLL every eigenvalue doubles (dense truth)."""
    from dense_truth import nll

    model = _mlp()
    x, y = toy_data(soft=True, seed=3)
    want = 2 * _true_top(model, x, y)
    values, _ = top_eigenvalues_batched(model, [(x, y)], k=5, tol=1e-6, seeds=[0], hvp=hvp,
                                        loss_fn=lambda out, t: 2 * nll(out, t))
    _assert_rel(values[0], want)
