"""How the lesion probe measures (torch): `compute` on any model, `run` on a pipeline run.
What it computes, its tables and their intervals: `vitprobe.probes.lesion`."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from vitprobe.analysis.featuremaps import map_statistics
from vitprobe.data.augment import normalize
from vitprobe.models.modes import eval_mode
from vitprobe.probes import no_progress
from vitprobe.probes.cka import stages
from vitprobe.probes.evaluate.measure import per_image_metrics
from vitprobe.probes.lesion import summarize

#: The sub-block suffix of a feature map's name -> the branch module of its block.
SUB_BLOCKS = {".msa": "attn", ".mlp": "mlp", ".token": "mlp_tokens", ".channel": "mlp_channels"}
#: A residual block's class -> the last layer of its residual branch.
BRANCH_ENDS = {"BasicBlock": "bn2", "Bottleneck": "bn3", "PreActBottleneck": "conv3", "MSABlock": "attn"}
UNIT_KINDS = ("conv", "msa", "mlp", "mixer_token", "mixer_channel")


def lesion_units(model: nn.Module, probe_images: Tensor, units: dict[str, str] | None = None) -> pd.DataFrame:
    """The removable units of `model` in forward order (unit, unit_name, removed, kind,
    subsampling, depth, stage), found from its feature maps on `probe_images` (package
    docstring), or `units` {name: module path whose output is zeroed} for another model."""
    named = dict(model.named_modules())
    if units is not None:
        missing = [p for p in units.values() if p not in named]
        if missing:
            raise ValueError(f"units: {', '.join(map(repr, missing[:3]))} are not modules of {type(model).__name__}; "
                             f"some of its modules: {', '.join(list(named)[1:8])}, ...")
        return pd.DataFrame({"unit": range(len(units)), "unit_name": list(units), "removed": list(units.values()),
                             "kind": "module", "subsampling": False, "depth": np.linspace(0, 1, len(units)),
                             "stage": 1})
    try:
        maps = map_statistics(model, probe_images, {})
    except TypeError as exc:  # a model whose feature maps vitprobe does not know
        raise ValueError(f"{exc}; for another model pass units={{name: module path}}") from None
    stage, marker = stages([m[2] for m in maps], [m[4] for m in maps])
    rows, previous = [], None
    for (i, name, kind, depth, side, _), s, mk in zip(maps, stage, marker):
        after_pool, previous = previous == "pool", kind
        if kind not in UNIT_KINDS:
            continue
        suffix = next((x for x in SUB_BLOCKS if name.endswith(x)), None)
        if suffix:
            removed = f"{name[:-len(suffix)]}.{SUB_BLOCKS[suffix]}"
        else:
            block = type(named.get(name)).__name__
            if block not in BRANCH_ENDS:
                raise ValueError(f"{name}: a residual block of class {block}, whose branch vitprobe does not know "
                                 f"(known: {', '.join(BRANCH_ENDS)}); pass units={{name: module path}}")
            removed = f"{name}.{BRANCH_ENDS[block]}"
        if removed not in named:
            raise ValueError(f"{name}: no module {removed} to remove; pass units={{name: module path}}")
        rows.append({"unit_name": name, "removed": removed, "kind": kind, "subsampling": mk == "P" or after_pool,
                     "depth": depth, "stage": s})
    if not rows:
        raise ValueError(f"{type(model).__name__} has no residual unit vitprobe can remove (conv, MSA or MLP "
                         "branches); pass units={name: module path}")
    return pd.DataFrame(rows).rename_axis("unit").reset_index()


@contextlib.contextmanager
def removed(model: nn.Module, path: str | None):
    """The model with the output of module `path` set to zero (None: intact)."""
    if path is None:
        yield model
        return
    handle = dict(model.named_modules())[path].register_forward_hook(lambda mod, args, out: torch.zeros_like(out))
    try:
        yield model
    finally:
        handle.remove()


@torch.no_grad()
def _per_image(model, images, labels, batch_size: int, prepare) -> tuple[np.ndarray, np.ndarray]:
    """Per image, correct and NLL (the eval probe's `per_image_metrics`)."""
    with eval_mode(model):
        logits = torch.cat([model(prepare(images[i:i + batch_size])).float().cpu()
                            for i in range(0, len(images), batch_size)])
    arrays = per_image_metrics(logits, torch.as_tensor(labels))
    return arrays["correct"], arrays["nll"]


def compute(model: nn.Module, images: Tensor, labels: Tensor, *, units: dict[str, str] | None = None,
            batch_size: int = 500, prepare=None, progress=no_progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables lesion and lesion_images of `model` on `images` with `labels`, every unit
    removed in turn (package docstring), or the modules of `units` {name: module path}.
    `images` are normalized floats, or anything `prepare(batch)` makes into them on the
    model's device (the pipeline: uint8 images, normalized batch by batch). The intact model's
    predictions are the reference for every unit: paired."""
    device = next(model.parameters()).device
    prepare = prepare or (lambda batch: batch.to(device))
    table = lesion_units(model, prepare(images[:2]), units)
    intact_correct, intact_nll = _per_image(model, images, labels, batch_size, prepare)
    parts = []
    for unit, path in progress(list(zip(table["unit"], table["removed"]))):
        with removed(model, path):
            correct, nll = _per_image(model, images, labels, batch_size, prepare)
        parts.append(pd.DataFrame({"unit": unit, "image": np.arange(len(labels), dtype=np.int64), "correct": correct,
                                   "nll": nll, "intact_correct": intact_correct, "intact_nll": intact_nll}))
    per_image = pd.concat(parts, ignore_index=True)
    return summarize(per_image, table), per_image


def run(model, inputs, settings: dict, log):
    p = settings
    sample, mean, std = inputs.image_sample(model, p["n_images"], p["seed"])
    images, labels = sample.chunk(0, len(sample))  # uint8, in memory: every unit reads them again

    def prepare(batch):
        return normalize(batch.to(inputs.device.torch_device), mean, std)
    units = lesion_units(model, prepare(images[:2]))
    log(f"test error and NLL with each of {len(units)} residual units removed in turn, on {len(labels)} "
        f"{inputs.images_described}")
    return compute(model, images, labels, batch_size=p["batch_size"], prepare=prepare,
                   progress=log.bar("units", total=len(units)))
