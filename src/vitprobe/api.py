"""The probes on any model, from Python: each function is the `compute` of a probe module
(`vitprobe.probes.<name>`), the same code the pipeline runs; it takes an `nn.Module` and
tensors (or a DataLoader) and returns DataFrames with the columns of the pipeline's tables
(`vitprobe.results.TABLES`, without the grid and provenance columns).

    model = vitprobe.load_model("resnet50", weights="timm")        # or a path, a URL, "init"
    api.fourier(model, images)                                      # table fourier
    eigs, summary = api.hessian(model, [(x, y)], weight_decay=5e-2)  # tables hessian, hessian_summary

Inputs. `images` are what the model's forward takes (normalised float tensors, (N, 3, H, W)),
a tensor or an iterable of tensors or of (images, labels) batches such as a DataLoader; a
tensor is cut into chunks of `batch_size`. Feature-map statistics are reduced inside each
forward pass (`vitprobe.analysis.featuremaps.map_statistics`): memory does not grow with the
number of images. `batches` are (inputs, targets) pairs, or one pair; targets are class
indices or soft targets. `robustness`, `evaluate` and `corruption` take uint8 images with
the mean/std that normalise them (noise and corruptions live in pixel space).

Every probe of the catalogue is here under its name (`api.eval` is `api.evaluate`), a probe
added later included.

Models. vitprobe's and timm's classes (ViT, PiT, Swin, Mixer, ResNet, ...) give the paper's
feature maps, tagged embed/stem/msa/mlp/conv/pool; any other model needs `modules`, the
names (`model.named_modules()`) whose outputs are the maps, kind "module".

Loss. The Hessian, trace and landscape use vitprobe's NLL (`vitprobe.models.losses.nll`)
unless `loss` (a callable `loss(outputs, targets) -> scalar`) is given; the weight decay
term is added as in the pipeline.
"""

from __future__ import annotations

import os

from torch import nn

from vitprobe import models
from vitprobe.catalog import PROBES, module_of
from vitprobe.models import weights as w
from vitprobe.probes import corruption as _corruption
from vitprobe.probes import evaluate as _evaluate
from vitprobe.probes import fourier as _fourier
from vitprobe.probes import hessian as _hessian
from vitprobe.probes import landscape as _landscape
from vitprobe.probes import robustness as _robustness
from vitprobe.probes import variance as _variance

__all__ = ["load_model", "fourier", "variance", "hessian", "robustness", "landscape", "evaluate", "corruption"]

fourier = _fourier.compute
variance = _variance.compute
hessian = _hessian.compute
robustness = _robustness.compute
landscape = _landscape.compute
evaluate = _evaluate.compute
corruption = _corruption.compute


def __getattr__(name: str):
    """`api.<probe>` for any probe of the catalogue, also one added after this file was written:
    its module's `compute`."""
    if name in PROBES:
        return module_of(name).compute
    raise AttributeError(f"module 'vitprobe.api' has no attribute {name!r}; probes: {', '.join(PROBES)}")


def load_model(arch: str, weights: str | os.PathLike = "init", num_classes: int | None = None, *, root="data",
               **kwargs) -> nn.Module:
    """A vitprobe or timm model `arch` (kwargs: the entry point's) with weights from `weights`:
    "init", "timm" (timm's pretrained), or a path (str or os.PathLike) or URL of a state-dict
    file (.pth, .pth.tar with state_dict, .safetensors; the paper release's checkpoints
    included, their key names mapped: `vitprobe.models.weights`). URLs are downloaded into
    `<root>/weights/`. Eval mode, CPU. `num_classes` None: the model's own (100 for
    vitprobe's CIFAR models)."""
    weights = os.fspath(weights)
    if weights not in w.KEYWORDS:
        w.check_source(weights, "weights", download=True)
    model = models.create_any(arch, num_classes=num_classes, pretrained=weights == "timm", **kwargs)
    if w.kind(weights) in ("file", "url"):
        w.load_into(model, weights, root=root, download=True)
    return model.eval()
