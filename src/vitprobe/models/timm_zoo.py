"""PiT-Ti, Swin-Ti and Mixer-Ti for CIFAR: timm's classes configured for 32x32 inputs.

- PiT-Ti as the paper's release builds it (its README: timm's PoolingVisionTransformer with
  img_size 32, patch_size 2, stride 1): dims 64/128/256 (base_dims 32 x heads 2/4/8),
  depths 2/6/4, overlapping 2x2 patches at stride 1: token grid 31x31 -> 16x16 -> 8x8
  (timm's PiT pooling halves the grid, rounding up); 4.58 M parameters. Class token head.
  `stride=2` gives non-overlapping patches (16 -> 8 -> 4, 4.54 M), ViT-Ti's first grid.
- Swin-Ti: dim 96, depths 2/2/6/2, heads 3/6/12/24, patch 1, window 4: stage grids
  32/16/8/4 (the last stage is one 4x4 window, so it is not shifted). Stochastic depth
  defaults to 0 here (timm's default is 0.1) like every other model of ours.
- Mixer-Ti: dim 256, depth 8, token-MLP hidden 128 and channel-MLP hidden 1024
  (mlp_ratio 0.5, 4), patch 2 (16x16 tokens, as ViT-Ti).
Any kwarg of the timm class overrides these defaults.
"""
from timm.models.mlp_mixer import MlpMixer
from timm.models.pit import PoolingVisionTransformer
from timm.models.swin_transformer import SwinTransformer

from .registry import build, register

_PIT = dict(img_size=32, patch_size=2, stride=1, base_dims=(32, 32, 32), depth=(2, 6, 4),
            heads=(2, 4, 8), mlp_ratio=4)
_SWIN = dict(img_size=32, patch_size=1, window_size=4, embed_dim=96, depths=(2, 2, 6, 2),
             num_heads=(3, 6, 12, 24), drop_path_rate=0.0)
_MIXER = dict(img_size=32, patch_size=2, num_blocks=8, embed_dim=256, mlp_ratio=(0.5, 4.0))


@register("pit", token_grid=31, first_conv="patch_embed.conv", classifier="head")
def pit_ti_cifar(pretrained=False, **kwargs):
    """PiT-Ti, patch 2 stride 1 (31x31 tokens), class token: the release's."""
    return build(PoolingVisionTransformer, "pit_ti_cifar", pretrained, **dict(_PIT, **kwargs))


@register("swin", token_grid=32, first_conv="patch_embed.proj", classifier="head.fc")
def swin_ti_cifar(pretrained=False, **kwargs):
    """Swin-Ti, patch 1 (32x32 tokens), window 4."""
    return build(SwinTransformer, "swin_ti_cifar", pretrained, **dict(_SWIN, **kwargs))


@register("mixer", token_grid=16, first_conv="stem.proj", classifier="head")
def mixer_ti_cifar(pretrained=False, **kwargs):
    """MLP-Mixer-Ti, patch 2 (16x16 tokens)."""
    return build(MlpMixer, "mixer_ti_cifar", pretrained, **dict(_MIXER, **kwargs))
