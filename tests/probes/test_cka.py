"""Mini-batch CKA (vitprobe.probes.cka) against independent truth: the unbiased HSIC written
out term by term (Song et al. 2012) on small random matrices, Kornblith et al.'s linear CKA
on full-batch features (which the unbiased CKA of one large batch approaches), the squared
correlation of two scalar features (the population value of linear CKA for 1-D features),
the invariances (orthogonal maps, scaling, symmetry), a hand-computed case, the stage rule on
hand-built and registered models, and the intervals' bootstrap."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from vitprobe import models, stats
from vitprobe.probes.cka import cka_from_hsic, headline, intervals, stages
from vitprobe.probes.cka.measure import compute, gram, hsic1_matrix


def hsic1_by_the_formula(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012), eq. (5), written out with loops: the transcription the vectorized
    all-pairs version is checked against."""
    n = len(K)
    Kt, Lt = K.copy(), L.copy()
    for i in range(n):
        Kt[i, i] = Lt[i, i] = 0.0
    trace = sum(Kt[i, j] * Lt[j, i] for i in range(n) for j in range(n))
    ones_k = sum(Kt[i, j] for i in range(n) for j in range(n))
    ones_l = sum(Lt[i, j] for i in range(n) for j in range(n))
    cross = sum(Kt[i, j] * Lt[j, q] for i in range(n) for j in range(n) for q in range(n))
    return (trace + ones_k * ones_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * cross) / (n * (n - 3))


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Kornblith et al. (2019): ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F), features centred."""
    X, Y = X - X.mean(0), Y - Y.mean(0)
    return np.linalg.norm(Y.T @ X) ** 2 / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))


def minibatch_cka(features: list[np.ndarray], batch: int) -> np.ndarray:
    """CKA of every pair from mini-batches of `batch` rows, through the package's functions."""
    n = len(features[0]) // batch
    h = [hsic1_matrix(torch.stack([gram(torch.from_numpy(f[i * batch:(i + 1) * batch]).double()) for f in features]))
         .numpy() for i in range(n)]
    a, b = np.triu_indices(len(features))
    return cka_from_hsic(np.mean([m[a, b] for m in h], axis=0), np.stack([a, b], 1)), (a, b)


def test_hsic1_is_the_formula_written_out():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(7, d)) + rng.normal(size=d) for d in (3, 5, 2)]
    K = [x @ x.T for x in X]
    got = hsic1_matrix(torch.from_numpy(np.stack(K))).numpy()
    for a in range(3):
        for b in range(3):
            assert got[a, b] == pytest.approx(hsic1_by_the_formula(K[a], K[b]), rel=1e-10, abs=1e-12)


def test_hand_computed_case():
    # n = 4 scalar features x = (0, 1, 2, 3), y = x: K = L = x x', whose off-diagonal sums are:
    # 1'K~1 = (Σx)² − Σx² = 36 − 14 = 22; tr(K~²) = Σ_{i≠j} x_i² x_j² = (Σx²)² − Σx⁴ = 196 − 98 = 98;
    # K~1 = x (Σx) − x² = (0, 5, 8, 9), so 1'K~K~1 = 0 + 25 + 64 + 81 = 170.
    # HSIC_1 = (98 + 22·22/6 − 2/2·170) / (4·1) = (98 + 80.666… − 170) / 4 = 2.1666…
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    K = torch.from_numpy(x @ x.T).unsqueeze(0)
    assert hsic1_matrix(K)[0, 0].item() == pytest.approx((98 + 22 * 22 / 6 - 170) / 4, rel=1e-12)


def test_centring_changes_no_hsic():
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(9, 4)), rng.normal(size=(9, 6))
    raw = hsic1_matrix(torch.from_numpy(np.stack([X @ X.T, Y @ Y.T])))
    centred = hsic1_matrix(torch.stack([gram(torch.from_numpy(X + 5.0)), gram(torch.from_numpy(Y - 3.0))]))
    assert torch.allclose(raw, centred, rtol=1e-5, atol=1e-7)  # gram's product is float32


def test_invariances():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(256, 10)) @ rng.normal(size=(10, 10))
    Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    Y = np.tanh(X[:, :6]) + 0.3 * rng.normal(size=(256, 6))
    cka, (a, b) = minibatch_cka([X, X @ Q, 3.7 * X, Y], 32)
    at = {(i, j): c for i, j, c in zip(a, b, cka)}
    assert at[(0, 1)] == pytest.approx(1.0, abs=1e-5) and at[(0, 2)] == pytest.approx(1.0, abs=1e-5)
    assert all(at[(i, i)] == pytest.approx(1.0, abs=1e-9) for i in range(4))
    assert 0.2 < at[(0, 3)] < 0.99
    swapped, _ = minibatch_cka([Y, X], 32)
    assert swapped[1] == pytest.approx(at[(0, 3)], rel=1e-5)


def test_one_large_batch_approaches_linear_cka():
    rng = np.random.default_rng(3)
    gaps = []
    for n in (200, 3200):
        X = rng.normal(size=(n, 8))
        Y = X[:, :4] @ rng.normal(size=(4, 5)) + rng.normal(size=(n, 5))
        cka, _ = minibatch_cka([X, Y], n)
        gaps.append(abs(cka[1] - linear_cka(X, Y)))
    assert gaps[1] < 0.01 and gaps[1] < gaps[0]


def test_scalar_features_give_the_squared_correlation():
    # For 1-D features, linear CKA's population value is corr(x, y)²; HSIC_1 is unbiased for
    # cov(x, y)², so the mini-batch CKA of many batches tends to rho² = 0.36.
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200 * 64, 1))
    y = 0.6 * x + 0.8 * rng.normal(size=x.shape)
    cka, _ = minibatch_cka([x, y], 64)
    assert cka[1] == pytest.approx(0.36, abs=0.02)


class TwoMaps(nn.Module):
    """Maps a (the input), b = an orthogonal 1x1 convolution of it, c = its square."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.a = nn.Identity()
        self.b = nn.Conv2d(channels, channels, 1, bias=False)
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=torch.Generator().manual_seed(0)))
        self.b.weight.data.copy_(q[:, :, None, None])
        self.c = nn.Identity()
        self.head = nn.Linear(channels, 2)

    def forward(self, x):
        a = self.a(x)
        b = self.b(a)
        c = self.c(a ** 2)
        return self.head((a + b + c).mean((2, 3)))


def test_compute_on_any_model_by_modules():
    images = torch.randn(70, 3, 5, 5, generator=torch.Generator().manual_seed(5))
    notes = []
    maps, cka, batches = compute(TwoMaps().double(), images.double(), modules=["a", "b", "c"], batch_size=16,
                                 log=notes.append)
    assert list(maps["map_name"]) == ["a", "b", "c"] and list(maps["marker"]) == ["E", "", ""]
    at = cka.set_index(["map_a", "map_b"])["cka"]
    assert at[(0, 1)] == pytest.approx(1.0, abs=1e-6)  # an orthogonal map keeps the kernel
    assert at[(0, 2)] < 0.5  # x² of a symmetric x: uncorrelated with x
    assert (cka["n_batches"] == 4).all() and (cka["batch_size"] == 16).all()
    assert len(batches) == 4 * 6 and notes == ["left out a last mini-batch of 6 images (mini-batches of 16)"]
    assert headline(maps, cka).startswith("3 maps in 1 stage(s) after the stem; mean CKA within a stage")


def test_a_module_not_in_the_model_is_one_line():
    with pytest.raises(ValueError, match="modules 'nope' are not in TwoMaps"):
        compute(TwoMaps(), torch.randn(8, 3, 4, 4), modules=["a", "nope"], batch_size=8)


def test_stage_rule_by_hand():
    assert stages(["stem", "conv", "conv", "conv", "conv", "conv"], [32, 32, 32, 16, 16, 8]) == \
        ([0, 1, 1, 2, 2, 3], ["E", "", "", "P", "", "P"])
    assert stages(["embed", "msa", "mlp", "pool", "msa", "mlp"], [8, 8, 8, 4, 4, 4]) == \
        ([0, 1, 1, 2, 2, 2], ["E", "", "", "P", "", ""])
    assert stages(["embed", "msa", "mlp", "msa", "mlp"], [8] * 5) == ([0, 1, 1, 1, 1], ["E", "", "", "", ""])


SMALL = {"resnet18_cifar": {"layers": [1, 1, 1, 1], "widths": [16, 32, 64, 128]},
         "vit_ti_cifar": {"patch_size": 4, "embed_dim": 64, "depth": 2, "num_heads": 2},
         "swin_ti_cifar": {},
         "alternet50_cifar": {"layers": [1, 2, 2, 2], "widths": [8, 16, 24, 32], "msa_blocks": [0, 1, 1, 1],
                              "heads": [1, 1, 2, 2], "head_dim": 16}}


@pytest.mark.parametrize("arch, markers", [
    ("resnet18_cifar", "E . P P P"),                   # the first block of stages 2-4 subsamples
    ("vit_ti_cifar", "E . . . ."),                     # one stage
    ("swin_ti_cifar", "E . . . . P . . . . P" + " ." * 12 + " P . . . ."),  # patch merging: P
    ("alternet50_cifar", "E . P . P . P ."),           # an MSA block ends stages 2-4
])
def test_stages_of_registered_models(arch, markers):
    torch.manual_seed(0)
    model = models.create(arch, num_classes=10, **SMALL[arch])
    maps, cka, _ = compute(model, torch.randn(16, 3, 32, 32), batch_size=8)
    assert " ".join(m or "." for m in maps["marker"]) == markers
    assert maps["stage"].max() == 1 + markers.count("P")
    assert np.allclose(cka[cka["map_a"] == cka["map_b"]]["cka"], 1.0)


def test_intervals_bootstrap_the_minibatches():
    rng = np.random.default_rng(6)
    features = [rng.normal(size=(8 * 32, 4)) for _ in range(2)]
    features.append(features[0] + 0.5 * rng.normal(size=(8 * 32, 4)))
    n, size = 8, 32
    per = []
    for i in range(n):
        grams = torch.stack([gram(torch.from_numpy(f[i * size:(i + 1) * size])) for f in features])
        per.append(hsic1_matrix(grams).numpy())
    a, b = np.triu_indices(3)
    units = pd.DataFrame({"run": "r", "epoch": 1, "batch": np.repeat(np.arange(n), len(a)), "map_a": np.tile(a, n),
                          "map_b": np.tile(b, n), "hsic": np.concatenate([h[a, b] for h in per])})
    point = cka_from_hsic(np.mean([h[a, b] for h in per], axis=0), np.stack([a, b], 1))
    rows = pd.DataFrame({"run": "r", "epoch": 1, "map_a": a, "map_b": b, "cka": point})
    ci = stats.Intervals(level=0.95, resamples=2000, seed=0)
    out = intervals("cka", rows, units, ci)
    off = out[out["map_a"] != out["map_b"]]
    assert (off["cka_low"] <= off["cka"]).all() and (off["cka"] <= off["cka_high"]).all()
    assert (off["cka_high"] - off["cka_low"] > 0).all()
    # the same bootstrap written out for pair (0, 2): resample batches, recompute the ratio
    w = stats.weights(n, ci.resamples, ci.rng("r", 1, "cka"))
    h = np.array([[m[0, 2], m[0, 0], m[2, 2]] for m in per])
    reps = (w @ h[:, 0]) / np.sqrt((w @ h[:, 1]) * (w @ h[:, 2]))
    low, high = stats.percentile(reps, n, 0.95)
    row = out[(out["map_a"] == 0) & (out["map_b"] == 2)].iloc[0]
    assert (row["cka_low"], row["cka_high"]) == pytest.approx((low, high), rel=1e-9)
    short = intervals("cka", rows, units[units["batch"] < 4], ci)  # below 5 mini-batches: no interval
    assert short["cka_low"].isna().all()


def test_claim_statistics_are_means_of_the_cka_table():
    """stage_contrast and far_similarity at unit weights equal the means computed by hand from
    table cka; resampling mini-batches moves them."""
    from vitprobe.probes.cka import far_similarity, stage_contrast

    torch.manual_seed(0)
    model = models.create("alternet50_cifar", num_classes=10, **SMALL["alternet50_cifar"])
    maps, cka, batches = compute(model, torch.randn(48, 3, 32, 32), batch_size=8)
    stage = maps.set_index("map_index")["stage"]
    depth = maps.set_index("map_index")["depth"]
    off = cka[(cka["map_a"] != cka["map_b"])]
    sa, sb = stage[off["map_a"]].to_numpy(), stage[off["map_b"]].to_numpy()
    inside = off["cka"][(sa > 0) & (sa == sb)].mean()
    across = off["cka"][(sa > 0) & (sa != sb)].mean()
    far = off["cka"][np.abs(depth[off["map_a"]].to_numpy() - depth[off["map_b"]].to_numpy()) >= 0.5].mean()
    contrast, ids = stage_contrast(batches, maps)
    assert list(ids) == list(range(6))
    assert contrast(np.ones((1, 6)))[0] == pytest.approx(inside - across, rel=1e-9)
    uniform, _ = far_similarity(batches, maps)
    assert uniform(np.ones(6))[0] == pytest.approx(far, rel=1e-9)
    w = stats.weights(6, 50, np.random.default_rng(0))
    assert np.std(contrast(w)) > 0
    vit_like = maps.assign(stage=np.where(maps["map_index"] == 0, 0, 1))  # one stage: no pair across
    with pytest.raises(ValueError, match="no pair of feature maps"):
        stage_contrast(batches, vit_like)
