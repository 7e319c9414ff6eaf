"""ResNet-18/50 for CIFAR: timm's ResNet with a 3x3 stride-1 stem conv and no max-pool.

timm's ResNet hard-wires a 64-channel stem, so `CifarResNet` builds the same modules
(conv1, bn1, act1, maxpool=Identity, layer1..layer4, global_pool, fc) itself with
scalable stage widths and reuses every other ResNet method (forward, reset_classifier,
forward_intermediates, init_weights, ...). Block classes and downsampling are timm's.

Initialisation (``init``): "release" (default) leaves PyTorch's default init of every layer,
as the paper's release does (its ResNets have no init code: Kaiming-uniform convs, BN weight
1 and bias 0); "timm" is timm's ``init_weights``: Kaiming-normal (fan-out) convs and the last
BN of every residual branch zeroed (``zero_init_last``), so each block starts as identity.
"""
from __future__ import annotations

import torch.nn as nn
from timm.layers import create_classifier
from timm.models.resnet import BasicBlock, Bottleneck, ResNet, make_blocks

from .registry import build, register


class CifarResNet(ResNet):
    def __init__(self, block=BasicBlock, layers=(2, 2, 2, 2), widths=(64, 128, 256, 512),
                 stem_width: int | None = None, num_classes: int = 100, in_chans: int = 3,
                 global_pool: str = "avg", drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 init: str = "release"):
        # deliberately skips ResNet.__init__ (ImageNet stem); sets what ResNet's methods use
        nn.Module.__init__(self)
        check_init(init)
        if len(layers) != len(widths):
            raise ValueError(f"layers {tuple(layers)} and widths {tuple(widths)} differ in length")
        stem_width = stem_width or widths[0]
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        self.grad_checkpointing = False

        self.conv1 = nn.Conv2d(in_chans, stem_width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.act1 = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.feature_info = [dict(num_chs=stem_width, reduction=1, module="act1")]

        stages, stage_info = make_blocks(
            (block,) * len(widths), tuple(widths), tuple(layers), stem_width,
            act_layer=nn.ReLU, norm_layer=nn.BatchNorm2d, drop_path_rate=drop_path_rate)
        for stage_name, stage in stages:
            self.add_module(stage_name, stage)
        for i, info in enumerate(stage_info):  # timm assumes a stride-4 stem
            info["reduction"] = 2 ** i
        self.feature_info.extend(stage_info)

        self.num_features = widths[-1] * block.expansion
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes,
                                                      pool_type=global_pool)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()
        if init == "timm":
            self.init_weights(zero_init_last=True)


INITS = ("release", "timm")


def check_init(init: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")


def _create(variant, pretrained, defaults, kwargs):
    return build(CifarResNet, variant, pretrained, **dict(defaults, **kwargs))


_CFG = dict(first_conv="conv1", classifier="fc")


@register("resnet", **_CFG)
def resnet18_cifar(pretrained=False, **kwargs):
    """ResNet-18 (BasicBlock, 2-2-2-2), CIFAR stem."""
    return _create("resnet18_cifar", pretrained, dict(block=BasicBlock, layers=(2, 2, 2, 2)), kwargs)


@register("resnet", **_CFG)
def resnet50_cifar(pretrained=False, **kwargs):
    """ResNet-50 (Bottleneck, 3-4-6-3), CIFAR stem."""
    return _create("resnet50_cifar", pretrained, dict(block=Bottleneck, layers=(3, 4, 6, 3)), kwargs)
