"""Tests of vitprobe.models: sizes, timm registration, local attention, double backward."""
import pytest
import timm
import torch
import torch.nn.functional as F
from conftest import randomize_bn
from torch.nn.attention import SDPBackend, sdpa_kernel

import vitprobe.models as models
from vitprobe.models import MODELS
from vitprobe.models.local_vit import local_attention_mask

# Parameter counts of the paper-size models with 100 classes, and where each number comes from.
PAPER_PARAMS = {
    # torchvision-style ResNet-18/50 with the CIFAR stem (3x3 conv, no max-pool): the usual
    # CIFAR-100 figures (e.g. Park & Kim's release, kuangliu/pytorch-cifar + 100-way fc).
    "resnet18_cifar": 11_220_132,
    "resnet50_cifar": 23_705_252,
    # ViT by formula (vit_params below): paper ViT-Ti 5.4M, ViT-S 21.4M at patch 2.
    "vit_ti_cifar": None,
    "vit_s_cifar": None,
    "vit_ti_gap_cifar": None,
    "lmsa_vit_cifar": None,
    # timm pit_ti_224 has 4,847,272 params (4.85M in timm's table); at 32x32, patch 2 stride 1
    # (the release's README) and 100 classes: patch conv -48,384, pos-embed +14,848
    # (27² -> 31² x 64), head -231,300: 4,582,436, the release's 4.58 M.
    "pit_ti_cifar": 4_847_272 - 48_384 + 14_848 - 231_300,
    # timm swin_tiny 28,288,354 (28.3M); patch 1: -4,320; head 1000 -> 100: -692,100; window
    # 7 -> 4: rel-pos tables 169 -> 49 rows x 138 heads in all blocks: -16,560.
    "swin_ti_cifar": 28_288_354 - 4_320 - 692_100 - 16_560,
    # Mixer-Ti (Park & Kim's release: dim 256, depth 8, token MLP 128, channel MLP 1024) at
    # patch 2 (256 tokens), by formula (mixer_params below).
    "mixer_ti_cifar": None,
    # pre-activation ResNet-50: ResNet-50 minus the BN placement change (stem BN 64 ch and
    # last BN of each block become BN on block inputs + final BN): by formula (preact_params).
    "preact_resnet50_cifar": None,
    # Alter-ResNet-50: no published CIFAR count; formula (alternet_params) documents the design.
    "alternet50_cifar": None,
}


def vit_params(dim, depth, grid, tokens_extra, classes=100, patch=2, qkv_bias=False):
    block = (3 * dim * dim + (3 * dim if qkv_bias else 0)) + (dim * dim + dim) \
        + (2 * 4 * dim * dim + 4 * dim + dim) + 4 * dim
    embed = 3 * patch * patch * dim + dim + (grid * grid + tokens_extra) * dim + tokens_extra * dim
    return embed + depth * block + 2 * dim + dim * classes + classes


def mixer_params(dim=256, depth=8, tokens=256, tok_hidden=128, ch_hidden=1024, patch=2):
    block = 4 * dim + (tokens * tok_hidden + tok_hidden + tok_hidden * tokens + tokens) \
        + (dim * ch_hidden + ch_hidden + ch_hidden * dim + dim)
    return 3 * patch * patch * dim + dim + depth * block + 2 * dim + dim * 100 + 100


def _bottleneck(cin, planes, proj):
    convs = cin * planes + 9 * planes * planes + planes * 4 * planes + (cin * 4 * planes if proj else 0)
    return convs + 2 * (cin + 2 * planes)  # BN before each of the three convs


def preact_params(layers=(3, 4, 6, 3), msa=(0, 0, 0, 0), heads=(3, 6, 12, 24)):
    n, cin = 3 * 9 * 64, 64
    for s, (nb, m, planes) in enumerate(zip(layers, msa, (64, 128, 256, 512))):
        for b in range(nb - m):
            n += _bottleneck(cin, planes, proj=(b == 0))
            cin = 4 * planes
        for _ in range(m):  # MSA block: BN, 1x1 conv, BN, qkv, rel-pos table, out conv
            width, inner = cin // 4, heads[s] * 64
            n += 2 * cin + cin * width + 2 * width + width * 3 * inner + 49 * heads[s] \
                + inner * cin + cin
    return n + 2 * cin + cin * 100 + 100


PAPER_PARAMS.update(
    vit_ti_cifar=vit_params(192, 12, 16, 1),
    vit_s_cifar=vit_params(384, 12, 16, 1),
    vit_ti_gap_cifar=vit_params(192, 12, 16, 0),
    lmsa_vit_cifar=vit_params(192, 12, 8, 0, patch=4),
    mixer_ti_cifar=mixer_params(),
    preact_resnet50_cifar=preact_params(),
    alternet50_cifar=preact_params((3, 4, 6, 4), (0, 1, 1, 2)),
)

# Tiny configurations of every model, for the cheap tests.
TINY = {
    "resnet18_cifar": dict(layers=(1, 1, 1, 1), widths=(4, 4, 8, 8)),
    "resnet50_cifar": dict(layers=(1, 1, 1, 1), widths=(2, 2, 4, 4)),
    "vit_ti_cifar": dict(patch_size=8, embed_dim=16, depth=1, num_heads=2),
    "vit_s_cifar": dict(patch_size=8, embed_dim=16, depth=1, num_heads=2),
    "vit_ti_gap_cifar": dict(patch_size=8, embed_dim=16, depth=1, num_heads=2),
    "lmsa_vit_cifar": dict(patch_size=8, embed_dim=16, depth=1, num_heads=2, kernel_size=3),
    "pit_ti_cifar": dict(patch_size=8, stride=8, base_dims=(4, 4, 4), depth=(1, 1, 1),
                         heads=(1, 2, 2)),
    "swin_ti_cifar": dict(patch_size=4, embed_dim=8, depths=(2, 1), num_heads=(1, 2)),
    "mixer_ti_cifar": dict(patch_size=8, num_blocks=1, embed_dim=16),
    "preact_resnet50_cifar": dict(layers=(1, 1, 1, 1), widths=(2, 2, 4, 4)),
    "alternet50_cifar": dict(layers=(1, 2, 2, 2), widths=(2, 4, 4, 8), msa_blocks=(0, 1, 1, 1),
                             heads=(1, 1, 2, 2), head_dim=4),
}


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_every_model_has_a_paper_count_and_a_tiny_config():
    assert set(PAPER_PARAMS) == set(MODELS) == set(TINY)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_paper_size_params_and_output(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=100).eval()
    assert n_params(model) == pytest.approx(PAPER_PARAMS[name], rel=0.02)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_known_paper_figures():
    # the formulas above agree with the figures reported in the paper / timm to 2 %
    assert PAPER_PARAMS["vit_ti_cifar"] == pytest.approx(5.4e6, rel=0.02)
    assert PAPER_PARAMS["vit_s_cifar"] == pytest.approx(21.4e6, rel=0.02)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_timm_registration(name):
    model = timm.create_model(name, num_classes=7)
    assert model.get_classifier().out_features == 7
    assert model.pretrained_cfg["input_size"] == (3, 32, 32)


def test_create_and_unknown_name():
    model = models.create("vit_ti_cifar", num_classes=3, **TINY["vit_ti_cifar"])
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(ValueError, match="resnet18_cifar.*vit_ti_cifar"):
        models.create("vit_huge_cifar", num_classes=3)
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model("vit_ti_cifar", pretrained=True)


def test_model_info():
    assert [n for n, i in MODELS.items() if i.local_attention] == ["lmsa_vit_cifar"]
    assert MODELS["resnet18_cifar"].family == "resnet" and MODELS["resnet18_cifar"].token_grid is None
    assert MODELS["alternet50_cifar"].family == "alternet"
    # token_grid is the real first token grid of the default configuration
    grids = {
        "vit_ti_cifar": lambda m: m.patch_embed.grid_size,
        "vit_s_cifar": lambda m: m.patch_embed.grid_size,
        "vit_ti_gap_cifar": lambda m: m.patch_embed.grid_size,
        "lmsa_vit_cifar": lambda m: m.patch_embed.grid_size,
        "mixer_ti_cifar": lambda m: m.stem.grid_size,
        "swin_ti_cifar": lambda m: m.patch_embed.grid_size,
        "pit_ti_cifar": lambda m: m.patch_embed.grid_size,
    }
    shallow = dict(vit_ti_cifar=dict(depth=1), vit_s_cifar=dict(depth=1),
                   vit_ti_gap_cifar=dict(depth=1), lmsa_vit_cifar=dict(depth=1),
                   mixer_ti_cifar=dict(num_blocks=1), swin_ti_cifar=dict(depths=(1,), num_heads=(3,)),
                   pit_ti_cifar=dict(depth=(1, 1, 1)))
    for name, grid in grids.items():
        model = timm.create_model(name, **shallow[name])
        assert tuple(grid(model)) == (MODELS[name].token_grid,) * 2, name
    assert {n for n, i in MODELS.items() if i.token_grid is None} == {
        "resnet18_cifar", "resnet50_cifar", "preact_resnet50_cifar", "alternet50_cifar"}


def test_kwargs_override_defaults():
    assert len(timm.create_model("vit_ti_cifar", depth=2).blocks) == 2
    vit = timm.create_model("vit_ti_cifar", embed_dim=64, num_heads=2, depth=1, patch_size=4)
    assert vit.patch_embed.grid_size == (8, 8) and vit.embed_dim == 64 and vit.cls_token is not None
    gap = timm.create_model("vit_ti_gap_cifar", depth=1)
    assert gap.cls_token is None and gap.global_pool == "avg"
    assert vit.blocks[0].attn.qkv.bias is None
    res = timm.create_model("resnet18_cifar", layers=(1, 1, 1, 1), widths=(8, 16, 32, 64))
    assert len(res.layer1) == 1 and res.fc.in_features == 64
    assert res.conv1.kernel_size == (3, 3) and res.conv1.stride == (1, 1)
    assert isinstance(res.maxpool, torch.nn.Identity)
    assert timm.create_model("lmsa_vit_cifar", depth=1, kernel_size=5).kernel_size == 5


def test_alternet_layout():
    alt = timm.create_model("alternet50_cifar")
    kinds = [["msa" if type(b).__name__ == "MSABlock" else "conv" for b in getattr(alt, f"layer{i}")]
             for i in range(1, 5)]
    assert kinds == [["conv"] * 3, ["conv"] * 3 + ["msa"], ["conv"] * 5 + ["msa"],
                     ["conv", "msa", "conv", "msa"]]
    assert [b.attn.num_heads for b in alt.modules() if type(b).__name__ == "MSABlock"] == [6, 12, 24, 24]
    with pytest.raises(ValueError, match="at most"):
        timm.create_model("alternet50_cifar", msa_blocks=(2, 1, 1, 2))


def test_alternet_attention_is_windowed():
    model = timm.create_model("alternet50_cifar", **TINY["alternet50_cifar"]).double()
    attn = model.layer2[1].attn  # 16x16 map, window 4
    x = torch.randn(1, attn.qkv.in_channels, 16, 16, dtype=torch.double)
    x2 = x.clone()
    x2[:, :, 5, 6] += 1.0  # inside the window of rows 4..7, cols 4..7
    changed = (attn(x2) - attn(x)).abs().amax((0, 1)) > 1e-9
    expected = torch.zeros(16, 16, dtype=torch.bool)
    expected[4:8, 4:8] = True
    assert torch.equal(changed, expected)


# ---- local attention --------------------------------------------------------------------

def window(kernel, grid):
    """Independent statement of the window: offsets -(k//2) .. k-1-k//2; k >= grid is global."""
    if kernel >= grid:
        return lambda dr, dc: True
    lo, hi = -(kernel // 2), kernel - 1 - kernel // 2
    return lambda dr, dc: lo <= dr <= hi and lo <= dc <= hi


def first_attention_residual(model, images):
    """x + attn(norm1(x)) of block 0, captured by hooks during a normal forward."""
    got = {}
    blk = model.blocks[0]
    h1 = blk.register_forward_pre_hook(lambda m, a: got.__setitem__("x", a[0]))
    h2 = blk.attn.register_forward_hook(lambda m, a, out: got.__setitem__("attn", out))
    with torch.no_grad():
        model(images)
    h1.remove(), h2.remove()
    return got["x"] + got["attn"]


@pytest.mark.parametrize("border", ["zero_pad", "mask"])
@pytest.mark.parametrize("kernel", [3, 4, 5, 8])
def test_local_msa_influence_matches_window(kernel, border):
    torch.manual_seed(0)
    model = timm.create_model("lmsa_vit_cifar", embed_dim=32, depth=1, num_heads=2,
                              kernel_size=kernel, border=border).double().eval()
    grid, p = 8, 4
    base = torch.rand(1, 3, 32, 32, dtype=torch.double)
    batch = base.repeat(grid * grid + 1, 1, 1, 1)
    for j in range(grid * grid):  # image j+1: patch j replaced by fresh noise
        r, c = divmod(j, grid)
        batch[j + 1, :, r * p:(r + 1) * p, c * p:(c + 1) * p] = torch.rand(3, p, p, dtype=torch.double)
    y = first_attention_residual(model, batch)  # (65, 64, 32)
    changed = (y[1:] - y[:1]).abs().amax(-1) > 1e-9  # [perturbed patch j, token t]
    inside = window(kernel, grid)
    expected = torch.tensor([[inside(j // grid - t // grid, j % grid - t % grid)
                              for t in range(grid * grid)] for j in range(grid * grid)])
    assert torch.equal(changed, expected)
    if kernel == 8:
        assert changed.all()


def test_local_mask_even_kernel_window():
    mask = local_attention_mask(8, 4)
    row = mask[3 * 8 + 3].reshape(8, 8)  # token (3, 3): rows/cols 1..4 visible
    visible = torch.isfinite(row)
    assert visible[1:5, 1:5].all() and visible.sum() == 16
    assert torch.equal(local_attention_mask(8, 8), torch.zeros(64, 64))


@pytest.mark.parametrize("kernel,patch", [(0, 4), (9, 4), (5, 8)])
def test_local_msa_kernel_out_of_range(kernel, patch):
    grid = 32 // patch
    with pytest.raises(ValueError, match=rf"\[1, {grid}\]"):
        timm.create_model("lmsa_vit_cifar", depth=1, kernel_size=kernel, patch_size=patch)


def release_conv_attention(attn, x, grid, kernel):
    """The release's ConvAttention2d (models/convit.py), transcribed: queries from a 1x1 conv,
    keys and values gathered with F.unfold(kernel, padding=kernel // 2) (padding 0 when the
    kernel covers the grid: one window broadcast to every query), softmax over the window
    positions, zero padding included. q, k, v come from our module's qkv weights (shared)."""
    b, n, _ = x.shape
    h, d = attn.num_heads, attn.head_dim
    q, k, v = attn.qkv(x).reshape(b, n, 3, h, d).permute(2, 0, 3, 1, 4)  # (b, h, n, d)
    pad = kernel // 2 if kernel < grid else 0

    def gather(t):  # 'b (h d w) n -> b h n w d' of unfold on the (b, h*d, x, y) map
        cols = F.unfold(t.transpose(2, 3).reshape(b, h * d, grid, grid), kernel, padding=pad)
        return cols.reshape(b, h, d, kernel * kernel, -1).permute(0, 1, 4, 3, 2)

    keys, values = gather(k), gather(v)
    dots = torch.einsum("bhnd,bhnwd->bhnw", q, keys.expand(-1, -1, n, -1, -1)) * d ** -0.5
    out = torch.einsum("bhnw,bhnwd->bhnd", dots.softmax(-1), values.expand(-1, -1, n, -1, -1))
    return attn.proj(out.transpose(1, 2).reshape(b, n, h * d))


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kernel", [3, 5, 8])
def test_local_msa_zero_pad_is_the_release_unfold_attention(kernel, fused):
    torch.manual_seed(0)
    model = timm.create_model("lmsa_vit_cifar", embed_dim=32, depth=1, num_heads=2, kernel_size=kernel).double()
    attn = model.blocks[0].attn
    attn.fused_attn = fused
    x = torch.randn(2, 64, 32, dtype=torch.double)
    with torch.no_grad():
        ours, release = attn(x), release_conv_attention(attn, x, 8, kernel)
        masked = timm.create_model("lmsa_vit_cifar", embed_dim=32, depth=1, num_heads=2, kernel_size=kernel,
                                   border="mask").double()
        masked.load_state_dict(model.state_dict())
        cut = masked.blocks[0].attn(x)
    torch.testing.assert_close(ours, release, rtol=1e-12, atol=1e-12)
    corner, centre = 0, 3 * 8 + 3  # token (0, 0) has padded window positions; (3, 3) has none for k <= 5
    if kernel < 8:
        assert (ours[:, corner] - cut[:, corner]).abs().max() > 1e-3
        torch.testing.assert_close(ours[:, centre], cut[:, centre])
    else:
        torch.testing.assert_close(ours, cut)  # the one global window has no padding


def test_local_msa_border_is_checked():
    with pytest.raises(ValueError, match="border must be one of zero_pad, mask, got 'reflect'"):
        timm.create_model("lmsa_vit_cifar", depth=1, border="reflect")


@pytest.mark.parametrize("border", ["zero_pad", "mask"])
def test_local_msa_fused_and_unfused_agree(border):
    torch.manual_seed(0)
    model = timm.create_model("lmsa_vit_cifar", embed_dim=32, depth=2, num_heads=2,
                              border=border).double().eval()
    x = torch.randn(2, 3, 32, 32, dtype=torch.double)
    outs = []
    for fused in (True, False):
        for blk in model.blocks:
            blk.attn.fused_attn = fused
        with torch.no_grad():
            outs.append(model(x))
    torch.testing.assert_close(outs[0], outs[1])
    assert "local_mask" not in str(list(model.state_dict()))


# ---- double backward --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TINY))
def test_hessian_vector_product_matches_finite_difference(name):
    torch.manual_seed(0)
    model = randomize_bn(timm.create_model(name, num_classes=5, **TINY[name]).double().eval())
    params = [p for p in model.parameters() if p.requires_grad]
    x = torch.randn(2, 3, 32, 32, dtype=torch.double)
    y = torch.tensor([1, 3])
    v = [torch.randn_like(p) for p in params]
    norm = torch.cat([vi.flatten() for vi in v]).norm()
    v = [vi / norm for vi in v]  # unit direction: eps below moves ReLU inputs by ~1e-8

    def grads(create_graph=False):
        return torch.autograd.grad(F.cross_entropy(model(x), y), params, create_graph=create_graph)

    with sdpa_kernel(SDPBackend.MATH):
        g = grads(create_graph=True)
        hv = torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), params)
        eps = 1e-6
        with torch.no_grad():
            for p, vi in zip(params, v):
                p.add_(vi, alpha=eps)
        g_plus = grads()
        with torch.no_grad():
            for p, vi in zip(params, v):
                p.sub_(vi, alpha=2 * eps)
        g_minus = grads()
    hv = torch.cat([h.flatten() for h in hv])
    fd = torch.cat([(a - b).flatten() for a, b in zip(g_plus, g_minus)]) / (2 * eps)
    assert hv.norm() > 0
    assert (hv - fd).norm() <= 1e-4 * hv.norm()


def test_model_normalisation_is_the_data_module_s():
    """timm's pretrained_cfg of every registered model states the mean/std that vitprobe.data.splits
    normalises CIFAR-100 inputs with (they once differed in the third decimal)."""
    import timm

    from vitprobe.data.registry import mean_std
    from vitprobe.models import MODELS
    for name in MODELS:
        cfg = timm.models.get_pretrained_cfg(name)
        assert (tuple(cfg.mean), tuple(cfg.std)) == mean_std("cifar100"), name


# ---- initialisation ---------------------------------------------------------------------

def _fan(w):
    return w[0].numel(), w.shape[0] * w[0, 0].numel()  # fan_in, fan_out


@pytest.mark.parametrize("name", ["resnet18_cifar", "resnet50_cifar", "preact_resnet50_cifar"])
def test_resnet_init_is_the_release_s_by_default(name):
    """The release's ResNets have no init code: PyTorch's defaults, i.e. BN weight 1 and bias
    0 everywhere and convs Kaiming-uniform(a = sqrt 5), U(-b, b) with b = 1 / sqrt(fan_in);
    init="timm" gives timm's: Kaiming-normal fan-out convs (std sqrt(2 / fan_out)), for the
    post-activation ResNets the last BN of every residual branch zeroed."""
    torch.manual_seed(0)
    release, timm_init = timm.create_model(name), timm.create_model(name, init="timm")
    for model, kind in ((release, "release"), (timm_init, "timm")):
        zeros = 0
        for mod_name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                assert torch.equal(m.bias, torch.zeros_like(m.bias))
                zeros += int(torch.equal(m.weight, torch.zeros_like(m.weight)))
                if kind == "release":
                    assert torch.equal(m.weight, torch.ones_like(m.weight)), mod_name
            if isinstance(m, torch.nn.Conv2d) and m.weight.numel() > 20_000:
                fan_in, fan_out = _fan(m.weight)
                bound = 1 / fan_in ** 0.5
                if kind == "release":
                    assert m.weight.abs().max() <= bound
                    assert m.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.05)
                else:
                    assert m.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
        blocks = sum(len(getattr(model, f"layer{i}")) for i in range(1, 5))
        expected_zeros = blocks if kind == "timm" and not name.startswith("preact") else 0
        assert zeros == expected_zeros


def test_resnet_init_is_checked():
    with pytest.raises(ValueError, match="init must be one of release, timm, got 'zero'"):
        timm.create_model("resnet18_cifar", init="zero")
