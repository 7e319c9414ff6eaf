"""Our CIFAR models, registered with timm: importing this package makes
`timm.create_model(name, num_classes=...)` work for every name in `MODELS`."""
from .registry import MODELS, ModelInfo, create, register
from . import resnet, vit, local_vit, timm_zoo, alternet  # noqa: F401,E402  (registers the models)

__all__ = ["MODELS", "ModelInfo", "create", "register"]
