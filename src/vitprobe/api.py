"""The probes on any model, from Python: each function is the `compute` of a probe module
(`vitprobe.probes.<name>`), the same code the pipeline runs, with the pipeline's defaults; it
takes an `nn.Module` and tensors (or a DataLoader) and returns DataFrames with the columns of
the pipeline's tables (`vitprobe.results.TABLES`, without the grid and provenance columns;
`vitprobe.plot` draws them with the pipeline's figures).

    model = vitprobe.load_model("resnet50", weights="timm")        # or a path, a URL, "init"
    fourier, per_image = api.fourier(model, images)                 # tables fourier, fourier_images
    eigs, summary = api.hessian(model, (x, y))                      # tables hessian, hessian_summary
    api.intervals((fourier, per_image))                             # fourier with its interval columns

Every probe returns its tables in the order of `PROBE.tables`: a summary table and the
per-unit table it is a mean over (per image: eval_images, fourier_images, variance_images,
robustness_images, corruption_images; per mini-batch: hessian). `intervals` adds the
summary's interval columns (`<column>_low`, `<column>_high`, `interval_level`), as the
pipeline's aggregated tables have them (`vitprobe.stats`, docs/guide/intervals.md).

Defaults. Every keyword argument that has a namesake in the probe's config block
(`probes.<name>` of `src/vitprobe/config/schema.yaml`) takes the schema's default there, and
`weight_decay` (Hessian, landscape) the schema's `train.weight_decay` (0.05): called with
defaults, `api.<probe>` computes what the pipeline computes on the same batches. Read from the
schema when this module is imported (`pipeline_defaults`), never copied; each function's
signature and docstring show them.

Inputs. `images` are what the model's forward takes (normalised float tensors, (N, 3, H, W)),
a tensor or an iterable of tensors or of (images, labels) batches such as a DataLoader; a
tensor is cut into chunks of `batch_size`. Feature-map statistics are reduced inside each
forward pass (`vitprobe.analysis.featuremaps.map_statistics`): memory does not grow with the
number of images. `batches` (Hessian, landscape) are one (inputs, targets) pair, as PyHessian
takes it, or an iterable of pairs (`vitprobe.analysis.inputs.as_batches`); targets are class
indices (B,) or soft targets (B, K), used as given: no augmentation, no Mixup (the pipeline
feeds its augmented training batches with soft targets). `robustness`, `evaluate` and
`corruption` take uint8 images with the mean/std that normalise them (noise and corruptions
live in pixel space).

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

import contextlib
import copy
import functools
import importlib
import inspect
import os

from torch import nn

from vitprobe import models
from vitprobe.analysis.inputs import as_batches
from vitprobe.catalog import PROBES, measure_of
from vitprobe.columns import GRID_COLUMNS
from vitprobe.config import load
from vitprobe.device import full_precision
from vitprobe.models import weights as w

_API_NAMES = {"eval": "evaluate"}  # probe -> its name here, where they differ

# every probe of the catalogue, by its name here: a new probe is in the API without a line here
__all__ = ["load_model", *(_API_NAMES.get(p, p) for p in PROBES), "pipeline_defaults", "intervals"]


@functools.cache
def _pipeline_defaults(probe: str) -> dict:
    compute = measure_of(probe).compute
    block = load.schema()["properties"]["probes"]["properties"].get(probe, {}).get("properties", {})
    keyword = {n for n, p in inspect.signature(compute).parameters.items() if p.kind is p.KEYWORD_ONLY}
    out = {k: v["default"] for k, v in block.items() if k in keyword and "default" in v}
    if "weight_decay" in keyword:
        out["weight_decay"] = load.defaults("train")["weight_decay"]
    return out


def pipeline_defaults(probe: str) -> dict:
    """The defaults `api.<probe>` takes from the schema: {argument: value} for every keyword
    argument of the probe's `compute` that `probes.<probe>` has a default for (the pipeline
    passes those settings under the same names), and `weight_decay`: `train.weight_decay`."""
    if probe not in PROBES:
        raise ValueError(f"unknown probe {probe!r}; probes: {', '.join(PROBES)}")
    return copy.deepcopy(_pipeline_defaults(probe))


def _listed(value):
    return list(value) if isinstance(value, tuple) else value  # the schema's lists are compute's tuples


@functools.cache
def _probe(probe: str):
    """`api.<probe>`: the probe's `compute` with the pipeline's defaults, its `batches` (if it
    takes any) normalised by `as_batches` (one pair or an iterable of pairs)."""
    compute = measure_of(probe).compute
    exact = PROBES[probe].exact  # float32 products as float32 (TF32 off on CUDA), as in the pipeline
    signature = inspect.signature(compute)
    defaults = _pipeline_defaults(probe)

    @functools.wraps(compute)
    def run(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if "batches" in bound.arguments:
            bound.arguments["batches"] = as_batches(bound.arguments["batches"])
        for name, value in defaults.items():
            bound.arguments.setdefault(name, copy.deepcopy(value))
        with full_precision() if exact else contextlib.nullcontext():
            return compute(*bound.args, **bound.kwargs)

    run.__signature__ = signature.replace(parameters=[
        p.replace(default=defaults[p.name]) if p.name in defaults else p for p in signature.parameters.values()])
    run.__name__ = run.__qualname__ = _API_NAMES.get(probe, probe)
    run.__module__ = __name__
    changed = ", ".join(f"{k}={v!r}" for k, v in defaults.items() if _listed(signature.parameters[k].default) != v)
    wd = ", train.weight_decay" if "weight_decay" in defaults else ""
    run.__doc__ = (f"{compute.__doc__ or ''}\n\n`vitprobe.api.{run.__name__}` is `{compute.__module__}.compute` with "
                   f"the pipeline's defaults (`pipeline_defaults({probe!r})`: probes.{probe}.*{wd}), where they "
                   f"differ from compute's: {changed or 'none'}." + ("" if "batches" not in signature.parameters else
                                                                    " `batches`: one (inputs, targets) pair or an "
                                                                    "iterable of pairs."))
    return run


fourier = _probe("fourier")
variance = _probe("variance")
hessian = _probe("hessian")
hessian_blocks = _probe("hessian_blocks")
robustness = _probe("robustness")
landscape = _probe("landscape")
evaluate = _probe("eval")
corruption = _probe("corruption")


def __getattr__(name: str):
    """`api.<probe>` for any probe of the catalogue, also one added after this file was written:
    its module's `compute` with the pipeline's defaults."""
    if name in PROBES:
        return _probe(name)
    raise AttributeError(f"module 'vitprobe.api' has no attribute {name!r}; probes: {', '.join(PROBES)}")


def intervals(tables, *, level: float | None = None, resamples: int | None = None, seed: int | None = None):
    """The summary table of a probe's result with its interval columns: `tables` is what
    `api.<probe>` returns (e.g. `api.evaluate`'s pair) or {table name: DataFrame}; `level`,
    `resamples` and `seed` default to the schema's `intervals` block (95 %, 2000, 0). A
    result with several summary tables gives {table: DataFrame}."""
    # by name, as vitprobe.plot: vitprobe -> api -> figures/results -> vitprobe would be a
    # cycle on paper (tests/test_layout.py), though every module is loaded by now
    figures, results = (importlib.import_module(f"vitprobe.{m}") for m in ("figures", "results"))
    frames = figures._frames(tables)
    given = {k: v for k, v in (("level", level), ("resamples", resamples), ("seed", seed)) if v is not None}
    ci = load.intervals({"intervals": given})
    out = {}
    for t, df in frames.items():
        if t not in results.INTERVALS:
            continue
        units = results.units_table(t)
        if units is not None and units not in frames:
            raise ValueError(f"the intervals of table {t} need its per-unit table {units} too: pass the whole result "
                             f"of the probe (got {', '.join(frames)})")
        grid = {c.name for c in GRID_COLUMNS}
        filled = {name: figures._with_grid(frames[name], figures.GRID_DEFAULTS) for name in (t, units) if name}
        shown = results.with_intervals(t, filled[t], filled.get(units), ci)
        out[t] = shown.drop(columns=[c for c in grid if c not in df.columns])
    if not out:
        raise ValueError(f"none of the tables {', '.join(frames)} has intervals; tables that do: "
                         f"{', '.join(results.INTERVALS)}")
    return next(iter(out.values())) if len(out) == 1 else out


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
