"""Our CIFAR models, registered with timm: importing this package makes
`timm.create_model(name, num_classes=...)` work for every name in `MODELS`."""
from . import alternet, local_vit, resnet, timm_zoo, vit  # noqa: F401,E402  (registers the models)
from .registry import MODELS, ModelInfo, create, create_any, is_known, register

__all__ = ["MODELS", "ModelInfo", "create", "create_any", "is_known", "register"]
