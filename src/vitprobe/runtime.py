"""What every CLI verb needs from a run spec: the model, the data, the checkpoint.

A spec is the JSON handed over by a Snakemake rule (see `Plan.train_spec`/`probe_spec`):
{"run": {...grid columns}, "data": {...}, "model": {"arch", "kwargs"}, "train": {...}, ...}.
"""

from __future__ import annotations

import os

import torch

from vitprobe import checkpoint, data
from vitprobe.errors import first_line
from vitprobe.grid import model_kwargs, train_hash  # train_hash re-exported: runtime is where jobs look for it


def num_classes(data_spec: dict) -> int:
    if data_spec["dataset"] == "synthetic":
        return int(data_spec.get("synthetic", {}).get("num_classes", data.DATASETS["synthetic"]))
    return data.DATASETS[data_spec["dataset"]]


def model_recipe(spec: dict) -> dict:
    """What builds the run's model, without the config: {"arch": registered (or, with imported
    weights, any timm) name, "kwargs": the alias's kwargs plus drop_path_rate and kernel_size
    from the run, "num_classes"}, and "weights" (the source) for imported weights."""
    kwargs = model_kwargs(spec["model"], spec["train"], spec["run"]["kernel_size"])
    recipe = {"arch": spec["model"]["arch"], "kwargs": kwargs, "num_classes": num_classes(spec["data"])}
    if "weights" in spec["model"]:
        recipe["weights"] = spec["model"]["weights"]
    return recipe


def build_from_recipe(recipe: dict, pretrained: bool = False) -> torch.nn.Module:
    """`models.create_any(arch, num_classes=num_classes, **kwargs)` of a `model_recipe`."""
    from vitprobe import models
    return models.create_any(recipe["arch"], num_classes=recipe["num_classes"], pretrained=pretrained,
                             **recipe["kwargs"])


def import_weights(spec: dict, out, *, download: bool = False) -> torch.nn.Module:
    """The one checkpoint of a run whose weights are imported (`spec["model"]["weights"]`,
    see `vitprobe.weights`): the model built from the run's recipe, the weights loaded,
    saved as an ordinary checkpoint of epoch 0 (`vitprobe.grid.IMPORTED_EPOCH`)."""
    from vitprobe import weights
    from vitprobe.grid import IMPORTED_EPOCH

    recipe = model_recipe(spec)
    source = recipe["weights"]
    if source == "timm":
        if not download:  # timm's weights come from the Hugging Face hub: its cache only
            import huggingface_hub.constants
            os.environ["HF_HUB_OFFLINE"] = "1"
            huggingface_hub.constants.HF_HUB_OFFLINE = True  # read when a request is made
        try:
            model = build_from_recipe(recipe, pretrained=True)
        except Exception as exc:  # network, cache, or a name timm has no weights for
            raise weights.WeightsError(
                f"cannot get timm's pretrained weights of {recipe['arch']} ({first_line(exc)})"
                + ("; downloads are off (data.download: false) and they are not in timm's cache" if not download
                   else "")) from exc
    else:
        model = build_from_recipe(recipe)
    if weights.kind(source) in ("file", "url"):
        weights.load_into(model, source, root=spec["data"]["root"], download=download)
    checkpoint.save(out, model, run=spec["run"], epoch=IMPORTED_EPOCH, config_hash=train_hash(spec), recipe=recipe)
    return model.eval()


def weights_label(spec: dict) -> str:
    """The `weights` column of the run's result rows: trained, init, timm or a file name."""
    from vitprobe.weights import label
    source = spec["model"].get("weights")
    return "trained" if source is None else label(source)


def build_model(spec: dict) -> torch.nn.Module:
    return build_from_recipe(model_recipe(spec))


def load_model(checkpoint_path, spec: dict) -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint, built from the spec and checked against its training hash
    (CPU, eval mode); reads format-1 checkpoints too."""
    payload = checkpoint.load(checkpoint_path, expected_hash=train_hash(spec), expected_run=spec["run"])
    model = checkpoint.load_state(build_model(spec), payload["model"], checkpoint_path)
    return model.eval(), payload


def _holdout_mask(labels: torch.Tensor, holdout: dict) -> torch.Tensor:
    """bool (N,): the held-out images, a class-stratified seeded share (data.holdout of a
    build-up search candidate: {"fraction", "seed"})."""
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[data.stratified_indices(labels, holdout["fraction"], seed=holdout["seed"])] = True
    return mask


def holdout_split(spec: dict) -> data.Split:
    """The held-out part of the train split that scores a search candidate (spec data.holdout)."""
    d = spec["data"]
    full = data.load_split(d["dataset"], d["root"], train=True)
    keep = _holdout_mask(full.labels, d["holdout"])
    return data.Split(full.images[keep].contiguous(), full.labels[keep].contiguous(), full.num_classes)


def training_split(spec: dict) -> data.Split:
    """The run's training set: the class-stratified, seeded fraction of the train split
    (without the held-out images when the spec has data.holdout: search candidates)."""
    d, run = spec["data"], spec["run"]
    full = data.load_split(d["dataset"], d["root"], train=True)
    if d.get("holdout"):
        keep = ~_holdout_mask(full.labels, d["holdout"])
        full = data.Split(full.images[keep].contiguous(), full.labels[keep].contiguous(), full.num_classes)
    if run["fraction"] >= 1:
        return full
    idx = data.stratified_indices(full.labels, run["fraction"], seed=run["seed"])
    return data.Split(full.images[idx].contiguous(), full.labels[idx].contiguous(), full.num_classes)


def test_split(spec: dict) -> data.Split:
    d = spec["data"]
    return data.load_split(d["dataset"], d["root"], train=False)


def mean_std(spec: dict):
    return data.MEAN_STD[spec["data"]["dataset"]]


def probe_images(spec: dict, model: torch.nn.Module, n_images: int | None, seed: int):
    """(images, mean, std) a feature-map or band-noise probe reads: the first `n_images` of a
    seeded permutation of the test split (CIFAR and the other sets, as `uint8` tensors in
    memory), or of the class-folder directory `data.imagenet_dir` with the model's own
    preprocessing and mean/std (decoded chunk by chunk); `images` has `len()` and
    `chunk(i, j)` (`vitprobe.imagefolder`)."""
    from vitprobe import imagefolder

    d = spec["data"]
    if d["dataset"] == "imagenet":
        transform, mean, std = imagefolder.eval_transform(model)
        return imagefolder.ImageFolderSample(d["imagenet_dir"], transform, n_images, seed), mean, std
    test = test_split(spec)
    idx = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n_images]
    return imagefolder.TensorSample(test.images[idx], test.labels[idx]), *mean_std(spec)


def load_checkpoint(path, spec: dict | None = None) -> torch.nn.Module:
    """The model of a checkpoint, rebuilt from its recipe, state loaded, in eval mode on CPU.

    With `spec` (the run's spec) it is `load_model`: the checkpoint must be of that run and
    match its training hash, and a format-1 checkpoint (no recipe) is rebuilt from the spec."""
    if spec is not None:
        return load_model(path, spec)[0]
    payload = checkpoint.load(path)
    recipe = payload.get("model_recipe")
    if recipe is None:
        raise checkpoint.CheckpointError(
            f"checkpoint {path} (format {payload.get('format_version', 1)}) predates self-describing "
            f"checkpoints and does not record how to build its model; pass the run's spec: "
            f"load_checkpoint(path, spec), or use vitprobe.runtime.load_model(path, spec)")
    return checkpoint.load_state(build_from_recipe(recipe), payload["model"], path).eval()
