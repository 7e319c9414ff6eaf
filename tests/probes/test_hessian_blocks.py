"""Hessian spectra per parameter block against independent truth: the diagonal blocks of the
Hessian by central finite differences of the gradient (float64; torch.func's dense Hessian
of this ViT disagrees with finite differences by up to 3 % in its LayerNorm block, where the
block products agree with them to 1e-9), the dense block spectra for SLQ, a matrix with a
known trace for Hutch++ and Hutchinson, scipy's Jensen-Shannon distance; and the block rule
partitions the trainable parameters of every registered model and of timm's."""

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from dense_truth import dense_hessian, nll, toy_data
from scipy.stats import wasserstein_distance

from vitprobe import api, models
from vitprobe.config.load import validate
from vitprobe.errors import ConfigError
from vitprobe.probes.hessian import heterogeneity as hetero
from vitprobe.probes.hessian.partition import partition
from vitprobe.probes.hessian.products import DENSE_MAX_PARAMS, double_backward_attention
from vitprobe.probes.hessian.trace import hutchinson, hutchpp
from vitprobe.probes.hessian_blocks import measure as hb


def _tiny_vit():
    torch.manual_seed(0)
    model = models.create("vit_ti_cifar", num_classes=5, patch_size=8, embed_dim=8, depth=1, num_heads=2).double()
    with torch.no_grad():  # away from the initialisation's zero head and biases
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def fd_block_hessians(model, x, y, wd, blocks, eps=1e-5) -> dict:
    """Per block, the matrix ∂g_b/∂θ_b by central differences of the gradient g_b of
    nll + wd/2·‖θ‖² (the test's own NLL), eval mode, symmetrized."""
    named = dict(model.named_parameters())
    model.eval()

    def grad(block):
        with double_backward_attention():
            loss = nll(model(x), y) + wd / 2 * sum((p * p).sum() for p in model.parameters() if p.requires_grad)
            g = torch.autograd.grad(loss, [named[n] for n in block.params])
        return torch.cat([t.reshape(-1) for t in g]).numpy()

    out = {}
    for block in blocks:
        coords = [(named[n], i) for n in block.params for i in range(named[n].numel())]
        rows = []
        for p, i in coords:
            with torch.no_grad():
                p.view(-1)[i] += eps
            up = grad(block)
            with torch.no_grad():
                p.view(-1)[i] -= 2 * eps
            down = grad(block)
            with torch.no_grad():
                p.view(-1)[i] += eps
            rows.append((up - down) / (2 * eps))
        M = np.stack(rows)
        out[block.name] = (M + M.T) / 2
    return out


@pytest.fixture(scope="module")
def vit_case():
    model = _tiny_vit()
    x, y = toy_data(shape=(3, 32, 32), classes=5, soft=True, n=6)
    x, y = x.double(), y.double()
    return model, x, y, fd_block_hessians(model, x, y, 0.05, partition(model))


def _top_by_magnitude(values, k):
    values = np.asarray(values)
    return values[np.lexsort((-values, -np.abs(values)))][:k]


def test_block_eigenvalues_equal_the_dense_diagonal_blocks(vit_case):
    model, x, y, H = vit_case
    eig, summary, *_ = hb.compute(model, [(x, y)], k=4, weight_decay=0.05, tol=1e-8, trace_products=0)
    blocks = partition(model)
    assert any(b.size > DENSE_MAX_PARAMS for b in blocks)  # ARPACK as well as the dense path
    negative = 0
    for block in blocks:
        truth = _top_by_magnitude(np.linalg.eigvalsh(H[block.name]), 4)
        got = eig[eig["block"] == block.name].sort_values("rank")["eigenvalue"].to_numpy()
        np.testing.assert_allclose(got, truth, rtol=1e-6, atol=1e-7, err_msg=block.name)
        negative += (truth < 0).sum()
    assert negative > 0  # negative eigenvalues were among those compared
    row = summary.set_index("block").loc["blocks.0:qkv"]
    vals = eig[eig["block"] == "blocks.0:qkv"]["eigenvalue"]
    assert row["nep"] == pytest.approx((vals < 0).mean()) and row["lambda_max"] == pytest.approx(vals.max())


def test_clustered_block_eigenvalues():
    """A linear model's block: H_bb = Xᵀ diag(p) X-like structure with repeated rows gives
    near-equal eigenvalues; the dense truth still matches."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()
    x, y = toy_data(shape=(12,), classes=4, n=20)
    x = torch.cat([x[:10], x[:10] + 1e-4 * torch.randn(10, 12)]).double()
    H = dense_hessian(model, x, y[:20])
    eig, *_ = hb.compute(model, [(x, y[:20])], k=5, tol=1e-8, trace_products=0,
                         blocks={"first": ["0.weight", "0.bias"], "second": ["2.weight", "2.bias"]})
    first = np.linalg.eigvalsh(H[:104, :104])
    np.testing.assert_allclose(eig[eig["block"] == "first"].sort_values("rank")["eigenvalue"],
                               _top_by_magnitude(first, 5), rtol=1e-6, atol=1e-10)


def test_slq_density_against_the_dense_block_spectrum(vit_case):
    """The SLQ quadratures (30 steps, one vector per batch, 6 batches pooled) of three blocks
    against the exact spectral measure of each: Wasserstein-1 distance under half the
    spectrum's own spread (its W1 distance to a point mass at its mean); the head's
    quadrature, another spectrum, is further away than that spread."""
    model, x, y, H = vit_case
    _, _, density, *_ = hb.compute(model, [(x, y)] * 6, k=1, weight_decay=0.05, density_steps=30,
                                   trace_products=0)

    def w1(block, truth):
        d = density[density["block"] == block]
        return wasserstein_distance(d["node"], truth, u_weights=d["weight"])

    for name in ("embed", "blocks.0:qkv", "blocks.0:mlp"):
        truth = np.linalg.eigvalsh(H[name])
        spread = wasserstein_distance([truth.mean()], truth)
        assert w1(name, truth) < 0.5 * spread, (name, w1(name, truth), spread)
        assert w1("head", truth) > spread, name


def test_hutchpp_and_hutchinson_unbiased_hutchpp_lower_variance():
    rng = np.random.default_rng(0)
    n = 120
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = 10.0 * 0.85 ** np.arange(n) - 0.2 * (np.arange(n) % 7 == 0)  # decaying, some negative
    A = torch.tensor((Q * lam) @ Q.T)
    truth = float(lam.sum())
    pp = np.array([hutchpp(lambda v: A @ v, n, 30, seed=s) for s in range(300)])
    hu = np.array([hutchinson(lambda v: A @ v, n, 30, seed=s).mean() for s in range(300)])
    for est in (pp, hu):
        assert abs(est.mean() - truth) < 4 * est.std(ddof=1) / np.sqrt(len(est))
    assert pp.var() < hu.var() / 2  # measured: 3.6 times lower
    assert hutchpp(lambda v: A[:9, :9] @ v, 9, 30) == pytest.approx(float(torch.trace(A[:9, :9])))  # n <= s: exact
    with pytest.raises(ValueError, match="multiple of 3"):
        hutchpp(lambda v: A @ v, n, 10)


def test_block_trace_is_unbiased_against_the_dense_block(vit_case):
    model, x, y, H = vit_case
    _, summary, *_ = hb.compute(model, [(x, y)] * 6, k=1, weight_decay=0.05, trace_products=30)
    for name, row in summary.set_index("block").iterrows():
        truth = np.trace(H[name])
        assert abs(row["trace"] - truth) <= 4 * row["trace_std_error"] + 1e-8 * abs(truth), name
        assert row["trace_estimator"] == "hutchpp"


def test_js_distance_against_its_definition():
    rng = np.random.default_rng(1)
    P = rng.random((3, 50))
    P /= P.sum(1, keepdims=True)
    got = hetero.js_distances(P, [(0, 1), (0, 2), (1, 2), (1, 1)])
    want = [_js(P[a], P[b]) for a, b in [(0, 1), (0, 2), (1, 2)]] + [0.0]
    np.testing.assert_allclose(got, want, atol=1e-12)
    disjoint = np.zeros((2, 4))
    disjoint[0, 0] = disjoint[1, 3] = 1
    assert hetero.js_distances(disjoint, [(0, 1)])[0] == pytest.approx(1.0)
    # by hand: p = (1, 0), q = (½, ½), m = (¾, ¼): KL(p‖m) = log2(4/3) = 0.415037,
    # KL(q‖m) = ½·log2(2/3) + ½·log2(2) = 0.207519; √((0.415037 + 0.207519)/2) = 0.557923
    assert hetero.js_distances(np.array([[1.0, 0.0], [0.5, 0.5]]), [(0, 1)])[0] == pytest.approx(0.557923, abs=1e-6)
    # nearly equal densities: a distance near 0, never NaN (scipy's jensenshannon gives NaN for
    # about half of these: the square root of a divergence rounded below 0)
    near = P[0] * (1 + 1e-12 * rng.standard_normal(50))
    pairs = np.stack([P[0], near / near.sum()])
    assert 0 <= hetero.js_distances(pairs, [(0, 1)])[0] < 1e-5


def _js(p, q):
    """The Jensen-Shannon distance, base 2, as Lin (1991) defines the divergence."""
    m = (p + q) / 2
    kl = lambda a: np.sum(np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / m), 0.0))
    return np.sqrt((kl(p) + kl(q)) / 2)


def test_heterogeneity_is_the_mean_pairwise_distance_of_the_pooled_densities():
    dens = pd.DataFrame({"block": ["a", "a", "b", "b", "c"], "batch": [0, 1, 0, 1, 0],
                         "node": [0.0, 1.0, 5.0, 5.0, 10.0], "weight": [1.0, 1.0, 1.0, 1.0, 1.0]})
    js, het = hetero.heterogeneity(dens, ["a", "b", "c"], sigma=0.05, points=201)
    assert list(zip(js["block_a"], js["block_b"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert het["mean_js"].iloc[0] == pytest.approx(js["js_distance"].mean())
    assert (js["js_distance"] > 0.99).all()  # nodes 5 apart at width 0.5: disjoint densities


# ---- the block rule ------------------------------------------------------------------------
def _assert_partition(model, blocks):
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    flat = [p for b in blocks for p in b.params]
    assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    assert sum(b.size for b in blocks) == sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("arch", sorted(models.MODELS))
def test_the_rule_partitions_every_registered_model(arch):
    with torch.device("meta"):
        model = models.create(arch, num_classes=10)
    blocks = partition(model)
    _assert_partition(model, blocks)
    kinds = {b.kind for b in blocks}
    assert {"embed", "head"} <= kinds and "other" not in kinds, kinds
    if models.MODELS[arch].family in ("vit", "local_vit", "pit", "swin"):
        assert {"qkv", "attn_proj", "mlp", "norm"} <= kinds
    if "resnet" in arch:
        assert {"conv", "norm"} <= kinds


@pytest.mark.parametrize("name", ["resnet50", "vit_tiny_patch16_224", "pit_ti_224", "swin_tiny_patch4_window7_224"])
def test_the_rule_partitions_timms_models(name):
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False)
    blocks = partition(model)
    _assert_partition(model, blocks)
    by_kind = {}
    for b in blocks:
        by_kind.setdefault(b.kind, []).append(b)
    if name == "resnet50":
        assert len(by_kind["conv"]) == 16 and len(by_kind["norm"]) == 16  # 3 + 4 + 6 + 3 bottlenecks
    else:
        assert len(by_kind["qkv"]) == len(by_kind["mlp"]) == {"vit_tiny_patch16_224": 12, "pit_ti_224": 12,
                                                              "swin_tiny_patch4_window7_224": 12}[name]
    if name.startswith("swin"):
        assert "attn_other" in by_kind  # the relative-position tables
    depths = [b.depth for b in blocks]
    assert depths == sorted(depths) and blocks[0].kind == "embed" and blocks[-1].kind == "head"


# ---- bad input -----------------------------------------------------------------------------
def test_bad_groupings_and_k_are_one_line_errors():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    x, y = torch.randn(4, 3), torch.randint(0, 2, (4,))
    cases = [({"a": ["0.weight", "0.bias", "1.weight"]}, "leave 1 trainable parameter"),
             ({"a": ["0.weight", "0.bias"], "b": ["0.bias", "1.weight", "1.bias"]}, "in two blocks"),
             ({"a": ["0.weight", "nope"]}, "not a trainable parameter")]
    for blocks, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            hb.compute(model, [(x, y)], blocks=blocks)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"k = 5 exceeds the size of block b \(2 parameters\)"):
        hb.compute(model, [(x, y)], k=5, blocks={"a": ["0.weight", "0.bias", "1.weight"], "b": ["1.bias"]})


def test_k_larger_than_a_block_fails_the_config(demo_config):
    demo_config["probes"] = {"hessian_blocks": {"k": 200}}
    with pytest.raises(ConfigError, match=r"probes.hessian_blocks.k = 200 exceeds the size of block .*model "):
        validate(demo_config)


def test_api_takes_a_users_grouping_and_returns_dataframes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    eig, summary, density, js, het = api.hessian_blocks(model, (x, y), k=2, trace_products=6,
                                                        blocks={"in": ["0.weight", "0.bias"], "out": ["2.weight",
                                                                                                      "2.bias"]})
    assert list(eig.columns[:4]) == ["block", "batch", "rank", "eigenvalue"]
    assert list(summary["block"]) == ["in", "out"] and list(summary["size"]) == [35, 18]
    assert len(js) == 1 and het["n_blocks"].iloc[0] == 2


def test_unknown_block_kinds_in_a_figure_fail_the_config(demo_config):
    demo_config["figures"]["fig_hessian_blocks"]["kinds"] = ["qkv", "attention"]
    with pytest.raises(ConfigError, match=r"figures.fig_hessian_blocks.kinds.1: 'attention' is not allowed; "
                                          r"allowed: .*attn_proj") as err:
        validate(demo_config)
    assert "\n" not in str(err.value)


def test_hutchpp_products_in_threes_fail_the_config(demo_config):
    demo_config["probes"]["hessian_blocks"]["trace_products"] = 10
    with pytest.raises(ConfigError, match=r"probes.hessian_blocks.trace_products: 10 is not a multiple of 3"):
        validate(demo_config)
    demo_config["probes"]["hessian_blocks"]["trace_products"] = 9
    demo_config["probes"]["hessian"].update(trace_estimator="hutchpp", trace_samples=10)
    with pytest.raises(ConfigError, match=r"probes.hessian.trace_samples: 10 is not a multiple of 3"):
        validate(demo_config)


def test_the_probe_analyses_only_the_runs_of_its_experiments(demo_config):
    plan = validate(demo_config)  # the demo: experiments [inductive_bias], the ResNet and the ViT
    probed = {r.model for r in plan.runs if plan.run_probe_epochs(r, "hessian_blocks")}
    assert probed == {"resnet_demo", "vit_demo"} and len(plan.runs) > 2
    assert all(plan.run_probe_epochs(r, "hessian") for r in plan.runs)  # other probes: every run


def test_an_unknown_experiment_fails_the_config(demo_config):
    demo_config["probes"]["hessian_blocks"]["experiments"] = ["inductive_bias", "nope"]
    with pytest.raises(ConfigError, match=r"probes.hessian_blocks.experiments: 'nope' is not an experiment; "
                                          r"allowed: inductive_bias, data_size"):
        validate(demo_config)
