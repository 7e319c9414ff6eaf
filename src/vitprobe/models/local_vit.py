"""Local-MSA ViT for CIFAR: each token attends only to its k x k neighbourhood on the grid.

timm's VisionTransformer with patch 4 (8x8 tokens on 32x32), no class token, GAP head and
ViT-Ti width (dim 192, depth 12, 3 heads). Locality is an additive mask (0 inside the
window, -inf outside) that every attention module owns as a buffer, so the blocks stay
local however they are called (plain forward, hooks, calling blocks one by one).

Window of token (r, c) for kernel k: rows r + d and columns c + d with
d in [-(k // 2), k - 1 - k // 2] (for even k one more neighbour before than after).
k equal to the grid side means global attention (one window shared by every query).

Window positions outside the grid (``border``):
- ``zero_pad`` (default, the paper's release: ``ConvAttention2d`` gathers keys and values
  with ``F.unfold`` and zero padding k // 2): each padded position is a key 0 with value 0,
  so it enters the softmax with logit 0 and adds nothing to the output. With P(q) padded
  positions in query q's window, out(q) = Σ_j e^{s_qj} v_j / (Σ_j e^{s_qj} + P(q)) over the
  window's grid keys j. We compute it as attention over the grid keys plus one all-zero
  key/value whose mask entry is log P(q) (-inf when P(q) = 0): exact, and SDPA still fuses.
- ``mask``: padded positions are left out (softmax over the grid keys of the window only).
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import VisionTransformer

from .registry import build, register


def window_offsets(kernel_size: int) -> tuple[int, int]:
    """Smallest and largest grid offset inside a window of side kernel_size."""
    return -(kernel_size // 2), kernel_size - 1 - kernel_size // 2


BORDERS = ("zero_pad", "mask")


def padded_positions(grid: int, kernel_size: int) -> torch.Tensor:
    """(grid²,) float: how many positions of each query's k x k window lie outside the grid
    (0 for every query when kernel_size >= grid: the one global window)."""
    if kernel_size >= grid:
        return torch.zeros(grid * grid)
    lo, hi = window_offsets(kernel_size)
    pos = torch.arange(grid)[:, None] + torch.arange(lo, hi + 1)[None, :]
    inside = ((pos >= 0) & (pos < grid)).sum(1)  # per axis
    return (kernel_size ** 2 - inside[:, None] * inside[None, :]).reshape(-1).double()


def local_attention_mask(grid: int, kernel_size: int) -> torch.Tensor:
    """(grid², grid²) float32 additive mask: [query, key] = 0 if key is in query's window, else -inf."""
    if kernel_size >= grid:
        return torch.zeros(grid * grid, grid * grid)
    lo, hi = window_offsets(kernel_size)
    pos = torch.arange(grid)
    d = pos[None, :] - pos[:, None]  # [query, key] offset along one axis
    near = (d >= lo) & (d <= hi)
    inside = (near[:, None, :, None] & near[None, :, None, :]).reshape(grid * grid, grid * grid)
    return torch.zeros(inside.shape).masked_fill(~inside, float("-inf"))


class LocalAttention(Attention):
    """timm Attention plus a fixed additive mask (set by `set_window`); works fused or not.

    With border "zero_pad" the mask has one more column than there are tokens: the entry
    log P(q) of the all-zero key appended to the keys and values (module docstring)."""

    def set_window(self, grid: int, kernel_size: int, border: str = "zero_pad") -> None:
        self.kernel_size, self.border = kernel_size, border
        mask = local_attention_mask(grid, kernel_size)
        if border == "zero_pad":
            # float64, so that a float64 model gets log P(q) to float64 precision
            mask = torch.cat([mask.double(), padded_positions(grid, kernel_size).log()[:, None]], dim=1)
        # not persistent: derived from kwargs, so checkpoints stay plain timm ViT state dicts
        self.register_buffer("local_mask", mask, persistent=False)

    def forward(self, x, attn_mask=None, is_causal=False):
        if attn_mask is not None or is_causal:
            raise ValueError("LocalAttention takes no extra attn_mask or is_causal (its window is its mask)")
        if self.border == "mask":
            return super().forward(x, attn_mask=self.local_mask.to(x.dtype))
        b, n, _ = x.shape
        gate = self.gate(x).sigmoid() if getattr(self, "gate", None) is not None else None
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        zero = k.new_zeros(b, self.num_heads, 1, self.head_dim)
        k, v = torch.cat([k, zero], dim=2), torch.cat([v, zero], dim=2)
        mask = self.local_mask.to(x.dtype)
        if self.fused_attn:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=self.attn_drop.p if self.training else 0.0)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1) + mask).softmax(dim=-1)
            x = self.attn_drop(attn) @ v
        x = self.norm(x.transpose(1, 2).reshape(b, n, self.attn_dim))
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))


class LocalViT(VisionTransformer):
    """VisionTransformer whose attention is restricted to kernel_size x kernel_size windows."""

    def __init__(self, kernel_size: int = 3, border: str = "zero_pad", img_size=32, patch_size=4,
                 class_token=False, global_pool="avg", **kwargs):
        grid = _side(img_size) // _side(patch_size)
        if not isinstance(kernel_size, numbers.Integral) or not 1 <= kernel_size <= grid:
            raise ValueError(f"kernel_size must be an integer in [1, {grid}] for a {grid}x{grid} "
                             f"token grid ({grid} = global attention), got {kernel_size!r}")
        if border not in BORDERS:
            raise ValueError(f"border must be one of {', '.join(BORDERS)}, got {border!r}")
        if class_token or kwargs.get("reg_tokens"):
            raise ValueError("LocalViT has no class or register tokens (the mask covers grid tokens only)")
        super().__init__(img_size=img_size, patch_size=patch_size, class_token=False,
                         global_pool=global_pool, attn_layer=LocalAttention, **kwargs)
        self.kernel_size, self.border = int(kernel_size), border
        for blk in self.blocks:
            blk.attn.set_window(grid, self.kernel_size, border)


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
    """Local-MSA ViT-Ti, patch 4, GAP head; kernel_size 3, 5 or 8 (8 = global); border
    zero_pad (the release's) or mask."""
    return build(LocalViT, "lmsa_vit_cifar", pretrained, **dict(_DEFAULTS, **kwargs))
