"""Feature maps: counts, kinds, order, shapes, and values against manual forward passes."""
import pytest
import torch
import torch.nn.functional as F
from conftest import randomize_bn
from torch.testing import assert_close

from vitprobe import models
from vitprobe.analysis.featuremaps import FeatureMap, feature_maps, msa_mask

VIT = dict(patch_size=4, embed_dim=16, depth=3, num_heads=2)  # 8x8 token grid


def build(name, **kwargs):
    torch.manual_seed(0)
    return models.create(name, num_classes=5, **kwargs)


def images(n=2):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def grid(tokens, prefix):
    """(B, prefix + N, C) -> (B, C, sqrt N, sqrt N), written out independently."""
    t = tokens[:, prefix:]
    side = int(round(t.shape[1] ** 0.5))
    return t.permute(0, 2, 1).reshape(t.shape[0], t.shape[2], side, side)


def no_hooks(model):
    return all(not (m._forward_hooks or m._forward_pre_hooks) for m in model.modules())


def check_depths(maps):
    n = len(maps)
    assert [m.index for m in maps] == list(range(n))
    assert_close(torch.tensor([m.depth for m in maps], dtype=torch.double),
                 torch.linspace(0, 1, n, dtype=torch.double))


# ---- ViT family ----------------------------------------------------------------------------

def manual_vit(model, x):
    """Embedding by hand (conv patchify + position embedding), then the blocks' sub-blocks."""
    pe = model.patch_embed.proj
    tok = F.conv2d(x, pe.weight, pe.bias, stride=pe.stride).flatten(2).transpose(1, 2)
    prefix = model.num_prefix_tokens
    embed = tok + model.pos_embed[:, prefix:]
    seq = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    out = [grid(seq, prefix)]
    for blk in model.blocks:
        seq = seq + blk.ls1(blk.attn(blk.norm1(seq)))
        out.append(grid(seq, prefix))
        seq = seq + blk.ls2(blk.mlp(blk.norm2(seq)))
        out.append(grid(seq, prefix))
    return embed, out


@pytest.mark.parametrize("name,prefix", [("vit_ti_cifar", 1), ("vit_ti_gap_cifar", 0),
                                         ("lmsa_vit_cifar", 0), ("vit_s_cifar", 1)])
def test_vit_maps(name, prefix):
    model = build(name, **VIT).eval()
    assert model.num_prefix_tokens == prefix
    x = images()
    maps = feature_maps(model, x)
    assert len(maps) == 2 * 3 + 1
    assert [m.kind for m in maps] == ["embed"] + ["msa", "mlp"] * 3
    assert [m.name for m in maps] == ["embed"] + [f"blocks.{i}.{k}" for i in range(3)
                                                  for k in ("msa", "mlp")]
    check_depths(maps)
    assert all(m.tensor.shape == (2, 16, 8, 8) for m in maps)
    with torch.no_grad():
        embed, truth = manual_vit(model, x)
        # the last map, normed, is forward_features without the prefix tokens
        last = maps[-1].tensor.flatten(2).transpose(1, 2)
        assert_close(model.norm(last), model.forward_features(x)[:, prefix:])
    assert_close(maps[0].tensor, embed.transpose(1, 2).reshape(2, 16, 8, 8))
    for m, t in zip(maps, truth):
        assert_close(m.tensor, t)
    assert msa_mask(maps) == [False] + [True, False] * 3


def test_vit_layer_scale_and_register_tokens():
    # ls1/ls2 scale the branches; register tokens are prefix tokens like the class token
    model = build("vit_ti_cifar", init_values=0.3, reg_tokens=2, **VIT).eval()
    assert model.num_prefix_tokens == 3
    x = images()
    maps = feature_maps(model, x)
    with torch.no_grad():
        _, truth = manual_vit(model, x)
        no_ls = maps[0].tensor + grid(model.blocks[0].attn(model.blocks[0].norm1(
            model.norm_pre(model._pos_embed(model.patch_embed(x))))), 3)
    assert all(m.tensor.shape == (2, 16, 8, 8) for m in maps)
    for m, t in zip(maps, truth):
        assert_close(m.tensor, t)
    assert not torch.allclose(maps[1].tensor, no_ls)


def test_eval_mode_inside_and_modes_restored():
    model = build("vit_ti_cifar", drop_rate=0.5, proj_drop_rate=0.5, drop_path_rate=0.5, **VIT)
    model.train()
    model.blocks[1].eval()  # a mixed state must come back as it was
    before = {n: m.training for n, m in model.named_modules()}
    x = images()
    maps = feature_maps(model, x)
    assert {n: m.training for n, m in model.named_modules()} == before
    assert no_hooks(model)
    model.eval()
    with torch.no_grad():
        _, truth = manual_vit(model, x)
    for m, t in zip(maps, truth):  # dropout and drop-path were off
        assert_close(m.tensor, t)
    assert not any(m.tensor.requires_grad for m in maps)


def test_hooks_removed_and_mode_restored_on_failure():
    model = build("vit_ti_cifar", **VIT).train()
    with pytest.raises(RuntimeError):
        feature_maps(model, torch.randn(1, 4, 32, 32))  # wrong channel count
    assert no_hooks(model) and all(m.training for m in model.modules())
    with pytest.raises(TypeError, match="unsupported"):
        feature_maps(torch.nn.Sequential(torch.nn.Identity()), images())


def test_forward_runs_without_grad_in_eval():
    model = build("vit_ti_cifar", **VIT).train()
    seen = []
    h = model.blocks[0].register_forward_hook(
        lambda m, a, o: seen.append((torch.is_grad_enabled(), m.training)))
    try:
        feature_maps(model, images())
    finally:
        h.remove()
    assert seen == [(False, False)]


def test_maps_are_copies():
    # a later in-place change of a tensor the model passes on must not alter a stored map
    model = randomize_bn(build("resnet18_cifar", layers=(1, 1, 1, 1), widths=(4, 4, 8, 8))).eval()
    x = images()
    h = model.layer1[0].register_forward_pre_hook(lambda m, a: a[0].mul_(0))
    try:
        maps = feature_maps(model, x)
    finally:
        h.remove()
    with torch.no_grad():
        assert_close(maps[0].tensor, model.act1(model.bn1(model.conv1(x))))
    maps = feature_maps(build("vit_ti_gap_cifar", **VIT).eval(), x)
    assert len({m.tensor.data_ptr() for m in maps}) == len(maps)
    assert all(m.tensor.is_contiguous() for m in maps)


# ---- CNNs ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,layers,widths", [
    ("resnet18_cifar", (2, 1, 1, 1), (4, 4, 8, 8)),
    ("resnet50_cifar", (1, 1, 2, 1), (2, 2, 4, 4)),
])
def test_resnet_maps(name, layers, widths):
    model = randomize_bn(build(name, layers=layers, widths=widths)).eval()
    x = images()
    maps = feature_maps(model, x)
    n_blocks = sum(layers)
    assert len(maps) == 1 + n_blocks
    assert [m.kind for m in maps] == ["stem"] + ["conv"] * n_blocks
    check_depths(maps)
    sides = [32] + [s for s, n in zip((32, 16, 8, 4), layers) for _ in range(n)]
    assert [m.tensor.shape[-1] for m in maps] == sides
    assert all(m.tensor.shape[-2] == m.tensor.shape[-1] for m in maps)
    with torch.no_grad():
        h = F.relu(model.bn1(F.conv2d(x, model.conv1.weight, padding=1)))
        assert_close(maps[0].tensor, h)
        for m, blk in zip(maps[1:], [b for s in (model.layer1, model.layer2, model.layer3,
                                                 model.layer4) for b in s]):
            h = blk(h)
            assert_close(m.tensor, h)
        assert_close(maps[-1].tensor, model.forward_features(x))
    assert not any(msa_mask(maps))


def test_resnet_mode_and_hooks_restored():
    model = build("resnet18_cifar", layers=(1, 1, 1, 1), widths=(4, 4, 8, 8)).train()
    running = model.bn1.running_mean.clone()
    feature_maps(model, images())
    assert all(m.training for m in model.modules()) and no_hooks(model)
    assert torch.equal(model.bn1.running_mean, running)  # eval: BN statistics untouched


def test_preact_and_alternet_maps():
    # layout rule (models/alternet.py): a stage of n blocks with m MSA blocks is
    # [conv] * (n - 2m) + [conv, msa] * m
    kw = dict(layers=(1, 2, 3, 2), widths=(2, 4, 4, 8), msa_blocks=(0, 1, 1, 1),
              heads=(1, 1, 2, 2), head_dim=4)
    model = randomize_bn(build("alternet50_cifar", **kw)).eval()
    x = images()
    maps = feature_maps(model, x)
    expected = ["stem", "conv", "conv", "msa", "conv", "conv", "msa", "conv", "msa"]
    assert [m.kind for m in maps] == expected
    assert [m.name for m in maps] == ["stem", "layer1.0", "layer2.0", "layer2.1", "layer3.0",
                                      "layer3.1", "layer3.2", "layer4.0", "layer4.1"]
    check_depths(maps)
    assert [m.tensor.shape[-1] for m in maps] == [32, 32, 16, 16, 8, 8, 8, 4, 4]
    assert msa_mask(maps) == [k == "msa" for k in expected]
    with torch.no_grad():
        h = F.conv2d(x, model.conv1.weight, padding=1)
        assert_close(maps[0].tensor, h)
        blocks = [b for s in (model.layer1, model.layer2, model.layer3, model.layer4) for b in s]
        for m, blk in zip(maps[1:], blocks):
            h = blk(h)
            assert_close(m.tensor, h)
        # pooling reads BN-ReLU of the last block's output
        assert_close(F.relu(model.norm(maps[-1].tensor)), model.forward_features(x))

    plain = randomize_bn(build("preact_resnet50_cifar", layers=(1, 1, 1, 1),
                               widths=(2, 2, 4, 4))).eval()
    maps = feature_maps(plain, x)
    assert [m.kind for m in maps] == ["stem"] + ["conv"] * 4
    with torch.no_grad():
        assert_close(F.relu(plain.norm(maps[-1].tensor)), plain.forward_features(x))


# ---- PiT, Swin, Mixer ----------------------------------------------------------------------

def test_pit_maps():
    model = build("pit_ti_cifar", patch_size=4, stride=4, base_dims=(4, 4, 4), depth=(1, 2, 1),
                  heads=(1, 2, 2)).eval()
    x = images()
    maps = feature_maps(model, x)
    assert [m.kind for m in maps] == ["embed", "msa", "mlp", "pool", "msa", "mlp", "msa", "mlp",
                                      "pool", "msa", "mlp"]
    check_depths(maps)
    shapes = [(4, 8, 8)] * 3 + [(8, 4, 4)] * 5 + [(8, 2, 2)] * 3
    assert [tuple(m.tensor.shape[1:]) for m in maps] == shapes
    with torch.no_grad():
        pe = model.patch_embed.conv
        h = F.conv2d(x, pe.weight, pe.bias, stride=4) + model.pos_embed
        cls = model.cls_token.expand(2, -1, -1)
        truth = [h]
        for stage in model.transformers:
            if stage.pool is not None:
                h = F.conv2d(h, stage.pool.conv.weight, stage.pool.conv.bias, stride=2,
                             padding=1, groups=h.shape[1])
                cls = stage.pool.fc(cls)
                truth.append(h)
            seq = torch.cat([cls, h.flatten(2).transpose(1, 2)], 1)
            for blk in stage.blocks:
                seq = seq + blk.attn(blk.norm1(seq))
                truth.append(grid(seq, 1))
                seq = seq + blk.mlp(blk.norm2(seq))
                truth.append(grid(seq, 1))
            cls, h = seq[:, :1], grid(seq, 1)
        assert_close(model.norm(cls), model.forward_features(x))  # the manual forward is right
    assert len(truth) == len(maps)
    for m, t in zip(maps, truth):
        assert_close(m.tensor, t)


def test_swin_maps():
    model = build("swin_ti_cifar", patch_size=4, embed_dim=8, depths=(2, 1), num_heads=(1, 2)).eval()
    x = images()
    maps = feature_maps(model, x)
    assert [m.kind for m in maps] == ["embed", "msa", "mlp", "msa", "mlp", "pool", "msa", "mlp"]
    check_depths(maps)
    assert [tuple(m.tensor.shape[1:]) for m in maps] == [(8, 8, 8)] * 5 + [(16, 4, 4)] * 3
    with torch.no_grad():
        h = model.patch_embed(x)  # (B, H, W, C)
        truth = [h]
        for stage in model.layers:
            h = stage.downsample(h)
            if not isinstance(stage.downsample, torch.nn.Identity):
                truth.append(h)
            for blk in stage.blocks:
                h = h + blk._attn(blk.norm1(h))
                truth.append(h)
                h = h + blk.mlp(blk.norm2(h))
                truth.append(h)
        assert_close(model.norm(maps[-1].tensor.permute(0, 2, 3, 1)), model.forward_features(x))
    assert model.layers[0].blocks[1].shift_size != (0, 0)  # the shifted block is covered
    for m, t in zip(maps, truth):
        assert_close(m.tensor, t.permute(0, 3, 1, 2))


def test_mixer_maps():
    model = build("mixer_ti_cifar", patch_size=4, num_blocks=2, embed_dim=16).eval()
    x = images()
    maps = feature_maps(model, x)
    assert [m.kind for m in maps] == ["embed"] + ["mixer_token", "mixer_channel"] * 2
    assert [m.name for m in maps] == ["embed", "blocks.0.token", "blocks.0.channel",
                                      "blocks.1.token", "blocks.1.channel"]
    check_depths(maps)
    assert all(m.tensor.shape == (2, 16, 8, 8) for m in maps)
    with torch.no_grad():
        pe = model.stem.proj
        h = F.conv2d(x, pe.weight, pe.bias, stride=4).flatten(2).transpose(1, 2)
        truth = [h]
        for blk in model.blocks:
            h = h + blk.mlp_tokens(blk.norm1(h).transpose(1, 2)).transpose(1, 2)
            truth.append(h)
            h = h + blk.mlp_channels(blk.norm2(h))
            truth.append(h)
        assert_close(model.norm(h), model.forward_features(x))
    for m, t in zip(maps, truth):
        assert_close(m.tensor, grid(t, 0))
    assert msa_mask(maps) == [False] * 5
    assert msa_mask(maps, token_mixing=True) == [False, True, False, True, False]


def test_feature_map_fields():
    maps = feature_maps(build("vit_ti_gap_cifar", **VIT).eval(), images(1))
    assert all(isinstance(m, FeatureMap) for m in maps)
    assert maps[0].depth == 0.0 and maps[-1].depth == 1.0
    assert all(m.tensor.dtype == torch.float32 for m in maps)
