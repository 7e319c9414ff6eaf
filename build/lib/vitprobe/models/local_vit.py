"""Local-MSA ViT for CIFAR: each token attends only to its k x k neighbourhood on the grid.

timm's VisionTransformer with patch 4 (8x8 tokens on 32x32), no class token, GAP head and
ViT-Ti width (dim 192, depth 12, 3 heads). Locality is an additive mask (0 inside the
window, -inf outside) that every attention module owns as a buffer, so the blocks stay
local however they are called (plain forward, hooks, calling blocks one by one).

Window of token (r, c) for kernel k: rows r + d and columns c + d with
d in [-(k // 2), k - 1 - k // 2] (for even k one more neighbour before than after),
cut at the grid border (no padding). k equal to the grid side means global attention.
"""
from __future__ import annotations

import numbers

import torch
from timm.layers import Attention
from timm.models.vision_transformer import VisionTransformer

from .registry import build, register


def window_offsets(kernel_size: int) -> tuple[int, int]:
    """Smallest and largest grid offset inside a window of side kernel_size."""
    return -(kernel_size // 2), kernel_size - 1 - kernel_size // 2


def local_attention_mask(grid: int, kernel_size: int) -> torch.Tensor:
    """(grid², grid²) additive mask: [query, key] = 0 if key is in query's window, else -inf."""
    if kernel_size >= grid:
        return torch.zeros(grid * grid, grid * grid)
    lo, hi = window_offsets(kernel_size)
    pos = torch.arange(grid)
    d = pos[None, :] - pos[:, None]  # [query, key] offset along one axis
    near = (d >= lo) & (d <= hi)
    inside = (near[:, None, :, None] & near[None, :, None, :]).reshape(grid * grid, grid * grid)
    return torch.zeros(inside.shape).masked_fill(~inside, float("-inf"))


class LocalAttention(Attention):
    """timm Attention plus a fixed additive mask (set by `set_window`); works fused or not."""

    def set_window(self, grid: int, kernel_size: int) -> None:
        self.kernel_size = kernel_size
        # not persistent: derived from kwargs, so checkpoints stay plain timm ViT state dicts
        self.register_buffer("local_mask", local_attention_mask(grid, kernel_size), persistent=False)

    def forward(self, x, attn_mask=None, is_causal=False):
        mask = self.local_mask.to(x.dtype)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                attn_mask = torch.zeros_like(attn_mask, dtype=x.dtype).masked_fill(~attn_mask, float("-inf"))
            mask = mask + attn_mask
        return super().forward(x, attn_mask=mask, is_causal=is_causal)


class LocalViT(VisionTransformer):
    """VisionTransformer whose attention is restricted to kernel_size x kernel_size windows."""

    def __init__(self, kernel_size: int = 3, img_size=32, patch_size=4, class_token=False,
                 global_pool="avg", **kwargs):
        grid = _side(img_size) // _side(patch_size)
        if not isinstance(kernel_size, numbers.Integral) or not 1 <= kernel_size <= grid:
            raise ValueError(f"kernel_size must be an integer in [1, {grid}] for a {grid}x{grid} "
                             f"token grid ({grid} = global attention), got {kernel_size!r}")
        if class_token or kwargs.get("reg_tokens"):
            raise ValueError("LocalViT has no class or register tokens (the mask covers grid tokens only)")
        super().__init__(img_size=img_size, patch_size=patch_size, class_token=False,
                         global_pool=global_pool, attn_layer=LocalAttention, **kwargs)
        self.kernel_size = int(kernel_size)
        for blk in self.blocks:
            blk.attn.set_window(grid, self.kernel_size)


def _side(size) -> int:
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"LocalViT needs square images and patches, got {size}")
        return int(size[0])
    return int(size)


_DEFAULTS = dict(img_size=32, patch_size=4, embed_dim=192, depth=12, num_heads=3, qkv_bias=False,
                 kernel_size=3)


@register("local_vit", local_attention=True, token_grid=8,
          first_conv="patch_embed.proj", classifier="head")
def lmsa_vit_cifar(pretrained=False, **kwargs):
    """Local-MSA ViT-Ti, patch 4, GAP head; kernel_size 3, 5 or 8 (8 = global)."""
    return build(LocalViT, "lmsa_vit_cifar", pretrained, **dict(_DEFAULTS, **kwargs))
