"""What a probe reads, from a pipeline run (`RunInputs`, built from the job's spec) or from
the caller's tensors (`chunks`, `as_batches`, for `vitprobe.api`).

A run's inputs are loaded lazily, once: its training split (the class-stratified, seeded
fraction), its test split, its dataset's mean/std, the image sample of the feature-map and
band-noise probes, and the CIFAR-C folder of the corruption probe."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path

import torch
from torch import Tensor

from vitprobe.config.job import JobSpec
from vitprobe.data import imagefolder, splits
from vitprobe.data.augment import BatchAugment, normalize
from vitprobe.data.cifar_c import default_folder
from vitprobe.data.registry import Split, mean_std
from vitprobe.device import Device


def chunks(images, batch_size: int) -> Iterator[Tensor]:
    """Image tensors from a tensor (cut into chunks of `batch_size`) or from an iterable of
    tensors or of (images, labels) batches such as a DataLoader."""
    if isinstance(images, Tensor):
        for i in range(0, len(images), batch_size):
            yield images[i:i + batch_size]
        return
    for batch in images:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


BATCHES_ALLOWED = ("one (inputs, targets) pair: a tuple or list of two tensors whose first dimensions agree, or an "
                   "iterable of such pairs (a list of them, a generator, a DataLoader)")


def _is_pair(batch) -> bool:
    return isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, Tensor) for t in batch)


def _pair(batch, what: str) -> tuple[Tensor, Tensor]:
    """`batch` as an (inputs, targets) pair, or a one-line ValueError naming what is allowed."""
    if not _is_pair(batch):
        got = f"a tensor of shape {tuple(batch.shape)}" if isinstance(batch, Tensor) else (
            f"a {type(batch).__name__} of {len(batch)} items" if isinstance(batch, (tuple, list)) else
            f"of type {type(batch).__name__}")
        raise ValueError(f"{what} is {got}; allowed: {BATCHES_ALLOWED}")
    x, y = batch
    if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
        shapes = f"{tuple(x.shape)} and {tuple(y.shape)}"
        raise ValueError(f"{what}: inputs and targets of shapes {shapes} differ in their first dimension (the batch "
                         f"size); allowed: {BATCHES_ALLOWED}")
    return x, y


def as_batches(batches) -> Iterable[tuple[Tensor, Tensor]]:
    """(inputs, targets) pairs from `batches`: a single pair (x, y) as PyHessian takes it (a
    tuple or list of exactly two tensors; their first dimensions must agree), or an iterable of
    pairs (a list or tuple of them: a list; anything else, e.g. a generator or a DataLoader,
    stays lazy, each pair checked when it is drawn). A list of two pairs is two batches: a
    pair's items are tensors, a list of pairs' are not. Anything else (a bare tensor, a
    triple, a pair of mismatched tensors) is a one-line ValueError naming what is allowed."""
    if _is_pair(batches):
        return [_pair(batches, "the batch")]
    if isinstance(batches, Tensor) or not isinstance(batches, Iterable):
        _pair(batches, "batches")  # raises
    if isinstance(batches, (tuple, list)):
        return [_pair(b, f"batch {i}") for i, b in enumerate(batches)]
    return (_pair(b, f"batch {i}") for i, b in enumerate(batches))


def batch_seed(seed: int, batch: int) -> int:
    """The augmentation seed of training mini-batch `batch` of a probe seeded `seed`."""
    return (seed + 1) * 1_000_003 + batch


class RunInputs:
    """The inputs of one probe job: `spec` is the job's spec (run, data, model, train,
    probe; `vitprobe.config.plan.Plan.probe_spec`) or its parse (`JobSpec`), `device` where
    tensors go."""

    def __init__(self, spec: dict | JobSpec, device: Device):
        self.job, self.device = JobSpec.of(spec), device
        self.run = self.job.run
        self.dataset = self.job.data["dataset"]
        self.weight_decay = self.job.train["weight_decay"]

    @cached_property
    def training_split(self) -> Split:
        return splits.training_split(self.job.raw)

    @cached_property
    def test_split(self) -> Split:
        return splits.test_split(self.job.raw)

    @property
    def mean_std(self):
        return mean_std(self.dataset)

    def augment(self, num_classes: int) -> BatchAugment:
        """The run's training augmentation (crop/flip, RandAugment, Mixup/CutMix, smoothing)."""
        return BatchAugment(*self.mean_std, num_classes, **self.job.train["augment"])

    def augmented_batches(self, batches, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Mini-batches of augmented training images with soft targets, batch b for each b of
        `batches` (a range, or an int n for range(n)). Batch b is images b·batch_size ..
        (b+1)·batch_size − 1 of one seeded permutation of the training set (disjoint batches
        while they fit; beyond, further permutations follow), augmented with generators
        seeded by (seed, b): a batch is the same whichever range it is drawn in (the shards
        of a job draw disjoint ranges). The augmentation runs on the CPU and the batch moves
        to the device after it: the same images on every device (a CUDA generator draws
        other numbers than the CPU's)."""
        batches = range(batches) if isinstance(batches, int) else batches
        split = self.training_split
        augment = self.augment(split.num_classes)
        gen = torch.Generator().manual_seed(seed)
        needed = (max(batches, default=-1) + 1) * batch_size
        perm = torch.cat([torch.randperm(len(split.labels), generator=gen)
                          for _ in range(max(1, -(-needed // len(split.labels))))])
        dev = self.device.torch_device
        for b in batches:
            idx = perm[b * batch_size:(b + 1) * batch_size]
            x, y = augment(split.images[idx], split.labels[idx], torch.Generator().manual_seed(batch_seed(seed, b)))
            yield x.to(dev), y.to(dev)

    def image_sample(self, model, n_images: int | None, seed: int):
        """(images, mean, std) a feature-map or band-noise probe reads: the first `n_images`
        of a seeded permutation of the test split (uint8 tensors in memory), or of the
        class-folder directory `data.imagenet_dir` with the model's own preprocessing and
        mean/std (decoded chunk by chunk); `images` has `len()` and `chunk(i, j)`."""
        d = self.job.data
        if self.dataset == "imagenet":
            transform, mean, std = imagefolder.eval_transform(model)
            return imagefolder.ImageFolderSample(d["imagenet_dir"], transform, n_images, seed), mean, std
        test = self.test_split
        idx = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(seed))[:n_images]
        return imagefolder.TensorSample(test.images[idx], test.labels[idx]), *self.mean_std

    def map_chunks(self, model, settings: dict, log, what: str):
        """(chunks, progress) for a feature-map probe: the normalized chunks of its image sample
        (`settings` n_images, seed) on the device, and a bar over them; logs the job's start
        line, `what` it computes on how many images."""
        images, mean, std = self.image_sample(model, settings["n_images"], settings["seed"])
        size = images.chunk_size
        log(f"{what} on {len(images)} {self.images_described}, chunks of {size}")
        return (normalized_chunks(images, mean, std, self.device),
                log.bar(f"chunks of {size} images", total=-(-len(images) // size)))

    @property
    def images_described(self) -> str:
        """What `image_sample` draws from, for log lines."""
        d = self.job.data
        return f"images of {d['imagenet_dir']}" if self.dataset == "imagenet" else "test images"

    def corruption_folder(self, folder: str | None) -> Path:
        """The CIFAR-C folder: `folder` (probes.corruption.folder), else the published folder
        of the run's dataset under data.root (`vitprobe.data.cifar_c.default_folder`)."""
        return Path(folder) if folder else default_folder(self.dataset, self.job.data["root"])


def normalized_chunks(images, mean, std, device: Device, size: int | None = None) -> Iterable[Tensor]:
    """The normalized float chunks of an image sample (`RunInputs.image_sample`), on the device,
    of `size` images (default: the sample's `chunk_size`; the last may be smaller)."""
    chunk = size or images.chunk_size
    for i in range(0, len(images), chunk):
        yield normalize(images.chunk(i, i + chunk)[0].to(device.torch_device), mean, std)
