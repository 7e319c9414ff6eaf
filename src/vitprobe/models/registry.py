"""Model registry: our timm entry points plus the facts the pipeline needs about each.

`register` wraps timm's `@register_model`, so every model is built by
`timm.create_model(name, num_classes=...)`; it also records a `ModelInfo` in `MODELS`
and gives the entry point a CIFAR pretrained_cfg (32x32 input, no weights), which keeps
timm from warning about a missing config.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import timm
from timm.models import build_model_with_cfg, register_model

from vitprobe.data.registry import mean_std

# The normalisation the pipeline applies to CIFAR-100 inputs (one definition: vitprobe.data.splits).
CIFAR100_MEAN, CIFAR100_STD = mean_std("cifar100")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str  # "resnet", "vit", "local_vit", "pit", "swin", "mixer", "alternet"
    local_attention: bool  # True iff the model takes kernel_size (the local-MSA ViT)
    token_grid: int | None  # token-grid side at 32x32 with default kwargs; None for CNNs


MODELS: dict[str, ModelInfo] = {}


def register(family: str, local_attention: bool = False, token_grid: int | None = None,
             **cfg) -> Callable:
    """Decorator for a timm-style entry point `fn(pretrained=False, **kwargs)`.

    Extra keyword arguments (e.g. first_conv, classifier) go into the pretrained_cfg.
    """

    def wrap(fn: Callable) -> Callable:
        name = fn.__name__
        module = sys.modules[fn.__module__]
        # timm's register_model reads the entry point's cfg from its module's default_cfgs
        if not hasattr(module, "default_cfgs"):
            module.default_cfgs = {}
        module.default_cfgs[name] = dict(
            url="", num_classes=100, input_size=(3, 32, 32), pool_size=None, crop_pct=1.0,
            interpolation="bilinear", mean=CIFAR100_MEAN, std=CIFAR100_STD, **cfg)
        MODELS[name] = ModelInfo(name, family, local_attention, token_grid)
        return register_model(fn)

    return wrap


def build(model_cls, variant: str, pretrained: bool = False, **kwargs):
    """timm's build_model_with_cfg, refusing pretrained=True (we publish no weights)."""
    if pretrained:
        raise ValueError(f"{variant}: no pretrained weights exist for vitprobe models")
    return build_model_with_cfg(model_cls, variant, pretrained=False, **kwargs)


def create(name: str, num_classes: int, **kwargs):
    """timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)


def is_known(name: str) -> bool:
    """A registered vitprobe model or any model name timm knows (`timm.list_models()`)."""
    return name in MODELS or name in timm.list_models()


def create_any(name: str, num_classes: int | None = None, pretrained: bool = False, **kwargs):
    """A registered model (`create`) or any timm model, timm's pretrained weights with
    `pretrained` (downloaded and cached by timm); `num_classes` None keeps the model's own."""

    if name in MODELS:
        if pretrained:
            raise ValueError(f"{name}: no pretrained weights exist for vitprobe models")
        return create(name, num_classes=100 if num_classes is None else num_classes, **kwargs)
    if name not in timm.list_models():
        raise ValueError(f"unknown model {name!r}: neither a vitprobe model ({', '.join(sorted(MODELS))}) nor a "
                         f"timm model (timm.list_models())")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return timm.create_model(name, pretrained=pretrained, **kwargs)
