"""Pre-activation ResNet-50 for CIFAR and Alter-ResNet-50 (AlterNet), one class.

PreActResNet: 3x3 stride-1 stem conv (no norm), four stages of pre-activation bottlenecks
(BN-ReLU-conv x3, expansion 4; a projection shortcut takes the pre-activated input),
then BN-ReLU, global average pooling and a linear classifier. Stage widths 64/128/256/512,
blocks (3, 4, 6, 3) for the plain ResNet-50, (3, 4, 6, 4) for AlterNet.

AlterNet replaces conv blocks by MSA blocks at the end of stages, alternately as in the
paper's build-up rule and its code release: a stage of n blocks with m MSA blocks is
[conv] * (n - 2m) + [conv, MSA] * m, i.e. (3, 4, 6, 4) with (0, 1, 1, 2) MSA blocks gives
stage 4 = conv, MSA, conv, MSA. MSA block (as the release's AttentionBlockB):
BN -> GELU -> 1x1 conv to a quarter of the block width -> BN -> windowed multi-head
attention (window 4, relative position bias, 64 dims per head, heads 3/6/12/24 by stage)
whose output 1x1 conv goes back to the block width -> drop-path -> residual. No MLP.

Heads x 64 does not equal the quarter width (64/128/256/512 at stages 1-4): q, k and v
are projected from the quarter width to heads x 64 (192/384/768/1536), as in the release.
The relative position bias has one table per head (Swin style; the release shares one).
``init``: "release" (default) keeps PyTorch's default init of every layer, as the release;
"timm" re-initialises the convs Kaiming-normal (fan-out).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, create_classifier, trunc_normal_, use_fused_attn

from .registry import build, register
from .resnet import check_init


def _conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int = 1, drop_path: float = 0.0):
        super().__init__()
        out_chs = planes * self.expansion
        self.norm1, self.act1 = nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True)
        self.shortcut = (_conv1x1(in_chs, out_chs, stride)
                         if stride != 1 or in_chs != out_chs else None)
        self.conv1 = _conv1x1(in_chs, planes)
        self.norm2, self.act2 = nn.BatchNorm2d(planes), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm3, self.act3 = nn.BatchNorm2d(planes), nn.ReLU(inplace=True)
        self.conv3 = _conv1x1(planes, out_chs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        pre = self.act1(self.norm1(x))
        skip = x if self.shortcut is None else self.shortcut(pre)
        x = self.conv1(pre)
        x = self.conv2(self.act2(self.norm2(x)))
        x = self.conv3(self.act3(self.norm3(x)))
        return skip + self.drop_path(x)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of an NCHW map,
    with a learned relative position bias; 1x1 convs for q/k/v and for the output."""

    def __init__(self, dim_in: int, dim_out: int, num_heads: int, head_dim: int = 64,
                 window_size: int = 4):
        super().__init__()
        self.num_heads, self.head_dim, self.window_size = num_heads, head_dim, window_size
        self.fused_attn = use_fused_attn()
        inner = num_heads * head_dim
        self.qkv = nn.Conv2d(dim_in, 3 * inner, 1, bias=False)
        self.proj = nn.Conv2d(inner, dim_out, 1)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def _bias(self, w: int) -> torch.Tensor:
        """(heads, w², w²) bias for a w x w window (w <= window_size)."""
        ys, xs = torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")
        pos = torch.stack([ys.flatten(), xs.flatten()], 1)
        rel = pos[None, :, :] - pos[:, None, :] + self.window_size - 1  # [query, key, 2]
        idx = (rel[..., 0] * (2 * self.window_size - 1) + rel[..., 1]).to(self.qkv.weight.device)
        return self.relative_position_bias_table[idx].permute(2, 0, 1)

    def forward(self, x):
        B, _, H, W = x.shape
        w = min(self.window_size, H, W)  # windows clamp to the map, as in timm's Swin
        if H % w or W % w:
            raise ValueError(f"feature map {H}x{W} is not divisible into {w}x{w} windows")
        nh, nw, heads, hd = H // w, W // w, self.num_heads, self.head_dim
        qkv = self.qkv(x).reshape(B, 3, heads, hd, nh, w, nw, w)
        # -> (3, B * windows, heads, w*w, hd)
        qkv = qkv.permute(1, 0, 4, 6, 2, 5, 7, 3).reshape(3, B * nh * nw, heads, w * w, hd)
        q, k, v = qkv.unbind(0)
        bias = self._bias(w).to(q.dtype)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            attn = (q * hd ** -0.5) @ k.transpose(-2, -1) + bias
            out = attn.softmax(-1) @ v
        out = out.reshape(B, nh, nw, heads, w, w, hd).permute(0, 3, 6, 1, 4, 2, 5)
        return self.proj(out.reshape(B, heads * hd, H, W))


class MSABlock(nn.Module):
    """Pre-activation MSA block; keeps channels and resolution (never first in a stage)."""

    def __init__(self, in_chs: int, num_heads: int, head_dim: int = 64, window_size: int = 4,
                 drop_path: float = 0.0):
        super().__init__()
        width = in_chs // PreActBottleneck.expansion
        self.norm1, self.act1 = nn.BatchNorm2d(in_chs), nn.GELU()
        self.conv = _conv1x1(in_chs, width)
        self.norm2 = nn.BatchNorm2d(width)
        self.attn = WindowAttention(width, in_chs, num_heads, head_dim, window_size)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        y = self.norm2(self.conv(self.act1(self.norm1(x))))
        return x + self.drop_path(self.attn(y))


class PreActResNet(nn.Module):
    """Pre-activation bottleneck ResNet for 32x32 inputs, optionally with MSA blocks."""

    def __init__(self, layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), msa_blocks=(0, 0, 0, 0),
                 heads=(3, 6, 12, 24), head_dim: int = 64, window_size: int = 4,
                 stem_width: int | None = None, num_classes: int = 100, in_chans: int = 3,
                 global_pool: str = "avg", drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 init: str = "release"):
        super().__init__()
        check_init(init)
        if not len(layers) == len(widths) == len(msa_blocks) == len(heads):
            raise ValueError("layers, widths, msa_blocks and heads need one entry per stage, got "
                             f"{tuple(layers)}, {tuple(widths)}, {tuple(msa_blocks)}, {tuple(heads)}")
        for n, m in zip(layers, msa_blocks):
            if not 0 <= 2 * m <= n:
                raise ValueError(f"a stage of {n} blocks holds at most {n // 2} MSA blocks "
                                 f"(they alternate with conv blocks), got {m}")
        self.num_classes, self.drop_rate = num_classes, drop_rate
        chs = stem_width or widths[0]
        self.conv1 = nn.Conv2d(in_chans, chs, 3, padding=1, bias=False)
        total, idx = sum(layers), 0
        for s, (n, m, planes) in enumerate(zip(layers, msa_blocks, widths)):
            kinds = ["conv"] * (n - 2 * m) + ["conv", "msa"] * m
            blocks = []
            for b, kind in enumerate(kinds):
                dpr = drop_path_rate * idx / max(total - 1, 1)
                if kind == "conv":
                    stride = 2 if s > 0 and b == 0 else 1
                    blocks.append(PreActBottleneck(chs, planes, stride, dpr))
                    chs = planes * PreActBottleneck.expansion
                else:
                    blocks.append(MSABlock(chs, heads[s], head_dim, window_size, dpr))
                idx += 1
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        self.norm, self.act = nn.BatchNorm2d(chs), nn.ReLU(inplace=True)
        self.num_features = self.head_hidden_size = chs
        self.global_pool, self.fc = create_classifier(chs, num_classes, pool_type=global_pool)
        if init == "timm":  # "release": PyTorch's default init, as the release (no init code)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes,
                                                      pool_type=global_pool)

    def forward_features(self, x):
        x = self.conv1(x)
        for s in range(self.num_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.act(self.norm(x))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


_CFG = dict(first_conv="conv1", classifier="fc")


@register("preact_resnet", **_CFG)
def preact_resnet50_cifar(pretrained=False, **kwargs):
    """Pre-activation ResNet-50 (3, 4, 6, 3), CIFAR stem."""
    return build(PreActResNet, "preact_resnet50_cifar", pretrained, **kwargs)


@register("alternet", **_CFG)
def alternet50_cifar(pretrained=False, **kwargs):
    """Alter-ResNet-50: pre-activation ResNet-50 with (3, 4, 6, 4) blocks, (0, 1, 1, 2) MSA."""
    defaults = dict(layers=(3, 4, 6, 4), msa_blocks=(0, 1, 1, 2))
    return build(PreActResNet, "alternet50_cifar", pretrained, **dict(defaults, **kwargs))
