"""A dataset's splits as device-ready uint8 tensors, whatever its family, and the splits a
run reads: its class-stratified seeded training fraction, the test split, and the held-out
part that scores a build-up search candidate."""

from __future__ import annotations

from pathlib import Path

import torch

from vitprobe.data import cifar, fashion_mnist, imagefolder
from vitprobe.data import synthetic as synthetic_module
from vitprobe.data.registry import Split
from vitprobe.data.registry import dataset as _known

FASHION_DATASETS = fashion_mnist.FASHION_DATASETS


def prepare(dataset: str, root: str | Path, *, download: bool = False,
            synthetic: dict | None = None) -> dict:
    """Make ``dataset`` available under ``root`` and return
    ``{dataset, num_classes, n_train, n_test, path}``.

    cifar10/cifar100: torchvision download (only if ``download``), integrity checked by
    torchvision; missing files without ``download`` -> DataMissing (a FileNotFoundError).
    synthetic: generate ``root/synthetic-cifar`` from the ``synthetic`` parameters
    (keys ``SYNTHETIC_KEYS``) atomically; a no-op when it already holds
    data generated with the same parameters (recorded in a json file inside the folder).
    ``synthetic`` is ignored for the other datasets.
    fashion_mnist: the idx files under ``root/FashionMNIST/raw``, else Debian's copy
    (``FASHION_MNIST_SYSTEM``), else (only if ``download``) torchvision downloads them into
    root; both splits are read and checked; ``path`` is the folder they are read from.
    fashion_mnist_subset: the packaged file (``FASHION_MNIST_SUBSET``), read and checked;
    ``root`` is not used, nothing is written, no network.
    imagenet: ``root`` is the class-folder directory (``vitprobe.data.imagefolder``), scanned and
    checked; nothing is written, no network; n_train is 0 (there is no training split).
    """
    root = Path(root)
    _known(dataset)
    if dataset == "imagenet":
        paths, _, classes = imagefolder.scan(root)
        return {"dataset": dataset, "num_classes": len(classes), "n_train": 0, "n_test": len(paths),
                "path": str(root)}
    if dataset in FASHION_DATASETS:
        return fashion_mnist.prepare(dataset, root, download)
    if dataset == "synthetic":
        return synthetic_module.prepare(root, synthetic)
    return cifar.prepare(dataset, root, download)


def load_split(dataset: str, root: str | Path, train: bool) -> Split:
    """The train or test split of ``dataset`` under ``root``: images uint8 (N, 3, 32, 32) in
    the file order, labels int64. CIFAR and synthetic: read by torchvision's CIFAR classes,
    num_classes = number of class names in the meta file. fashion_mnist(_subset): the 28x28
    images zero-padded by 2 pixels on each side, grey replicated to 3 channels, 10 classes
    (the subset ignores ``root``)."""
    if dataset == "imagenet":
        raise ValueError("imagenet is a class-folder directory read chunk by chunk (vitprobe.data.imagefolder), not a "
                         "split in memory, and has no training split")
    if dataset in FASHION_DATASETS:
        return fashion_mnist.load(dataset, Path(root), train)
    return cifar.load(dataset, Path(root), train)


def stratified_indices(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted int64 indices of a class-stratified random subset: n = max(1, round(fraction *
    smallest class count)) images of every class (Python's round), drawn by a per-class
    random permutation seeded with ``seed``. fraction == 1 returns every index.
    For one seed the subsets are nested: a smaller fraction picks a prefix of the same
    per-class permutations."""
    try:
        ok = not isinstance(fraction, bool) and 0 < float(fraction) <= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    fraction = float(fraction)
    labels = torch.as_tensor(labels).cpu()
    if fraction == 1:
        return torch.arange(labels.numel(), dtype=torch.int64)
    classes, counts = torch.unique(labels, return_counts=True)
    n = max(1, round(fraction * int(counts.min())))
    g = torch.Generator().manual_seed(int(seed))
    picked = []
    for c in classes.tolist():
        idx = torch.nonzero(labels == c).flatten()
        picked.append(idx[torch.randperm(idx.numel(), generator=g)[:n]])
    return torch.sort(torch.cat(picked)).values.to(torch.int64)


# ---- the splits of a run (a spec's `data` and `run` blocks, see vitprobe.config.plan) ----

def _subset(split: Split, keep: torch.Tensor) -> Split:
    return Split(split.images[keep].contiguous(), split.labels[keep].contiguous(), split.num_classes)


def _holdout_mask(labels: torch.Tensor, holdout: dict) -> torch.Tensor:
    """bool (N,): the held-out images, a class-stratified seeded share (data.holdout of a
    build-up search candidate: {"fraction", "seed"})."""
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[stratified_indices(labels, holdout["fraction"], seed=holdout["seed"])] = True
    return mask


def holdout_split(spec: dict) -> Split:
    """The held-out part of the train split that scores a search candidate (spec data.holdout)."""
    d = spec["data"]
    full = load_split(d["dataset"], d["root"], train=True)
    return _subset(full, _holdout_mask(full.labels, d["holdout"]))


def training_split(spec: dict) -> Split:
    """The run's training set: the class-stratified, seeded fraction of the train split
    (without the held-out images when the spec has data.holdout: search candidates)."""
    d, run = spec["data"], spec["run"]
    full = load_split(d["dataset"], d["root"], train=True)
    if d.get("holdout"):
        full = _subset(full, ~_holdout_mask(full.labels, d["holdout"]))
    if run["fraction"] >= 1:
        return full
    return _subset(full, stratified_indices(full.labels, run["fraction"], seed=run["seed"]))


def test_split(spec: dict) -> Split:
    d = spec["data"]
    return load_split(d["dataset"], d["root"], train=False)
