"""ViT-Ti / ViT-S for CIFAR: timm's VisionTransformer at 32x32 with 2x2 patches (16x16 tokens).

ViT-Ti: dim 192, depth 12, 3 heads; ViT-S: dim 384, 6 heads; no qkv bias, class token,
learned position embedding. `vit_ti_gap_cifar` drops the class token and classifies the
global average of the tokens (timm then applies the final LayerNorm after pooling).
Any VisionTransformer kwarg overrides these defaults; token grid = img_size // patch_size.
"""
from timm.models.vision_transformer import VisionTransformer

from .registry import build, register

_CFG = dict(first_conv="patch_embed.proj", classifier="head")
_TI = dict(img_size=32, patch_size=2, embed_dim=192, depth=12, num_heads=3, qkv_bias=False)
_S = dict(_TI, embed_dim=384, num_heads=6)


def _create(variant, pretrained, defaults, kwargs):
    return build(VisionTransformer, variant, pretrained, **dict(defaults, **kwargs))


@register("vit", token_grid=16, **_CFG)
def vit_ti_cifar(pretrained=False, **kwargs):
    """ViT-Ti, patch 2, class token."""
    return _create("vit_ti_cifar", pretrained, _TI, kwargs)


@register("vit", token_grid=16, **_CFG)
def vit_s_cifar(pretrained=False, **kwargs):
    """ViT-S, patch 2, class token."""
    return _create("vit_s_cifar", pretrained, _S, kwargs)


@register("vit", token_grid=16, **_CFG)
def vit_ti_gap_cifar(pretrained=False, **kwargs):
    """ViT-Ti, patch 2, no class token, global average pooling head."""
    return _create("vit_ti_gap_cifar", pretrained,
                   dict(_TI, class_token=False, global_pool="avg"), kwargs)
