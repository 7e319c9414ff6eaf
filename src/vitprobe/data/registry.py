"""The one registry of dataset facts: classes, training-set size, mean/std, whether it has a
training split, its published corrupted test set. Everything else reads it (the run plan,
the models' pretrained configs, the corruption probe, the config schema's dataset list,
which a test keeps equal to `DATASETS`). Torch-free: the planner imports it at start-up.

Also what every dataset module shares: `Split` and the two data errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vitprobe.errors import VitprobeError

if TYPE_CHECKING:  # annotations only: this module stays torch-free
    import torch


class DataMissing(VitprobeError, FileNotFoundError):
    """A dataset file is not there; the message names it and how to get it."""


class DataDamaged(VitprobeError, ValueError):
    """A dataset file is there but unreadable or of the wrong shape; the message names it and the fix."""


@dataclass(frozen=True)
class Split:
    images: "torch.Tensor"  # uint8 (N, 3, 32, 32), CPU, contiguous
    labels: "torch.Tensor"  # int64 (N,)
    num_classes: int


@dataclass(frozen=True)
class Archive:
    """A published corrupted copy of a dataset's test set (CIFAR-C, Hendrycks & Dietterich 2019)."""

    folder: str   # the folder the archive extracts to, under the data root
    url: str
    md5: str


@dataclass(frozen=True)
class Dataset:
    name: str
    num_classes: int                         # synthetic: the default (data.synthetic.num_classes)
    train_per_class: int | None              # training images per class; None: set by the config (synthetic)
    mean: tuple[float, float, float]         # per-channel mean in [0, 1] pixel units
    std: tuple[float, float, float]
    has_training_split: bool = True          # imagenet: a folder of validation images only
    corruptions: Archive | None = None       # its published CIFAR-C archive


_FASHION = ((0.2190,) * 3, (0.3318,) * 3)

#: CIFAR mean/std are those of the paper's code release (xxxnell/how-do-vits-work configs);
#: synthetic: measured on the default synthetic set (seed 0). Fashion-MNIST: measured on the
#: full training set (60 000 images) as `load_split` returns it, i.e. zero-padded to 32x32
#: and replicated to 3 channels, pixels / 255, in float64: mean and (population) std over all
#: N*32*32 values of each channel (the channels are equal): 0.218999..., 0.331811... The
#: padding lowers both against the 28x28 values (0.2860, 0.3530). Recomputed from exact
#: integer sums by tests/data/test_data.py (needs the full set). The subset is drawn from the
#: same distribution and uses the same statistics (its own padded training images: 0.2185,
#: 0.3316). imagenet: timm's IMAGENET_DEFAULT_MEAN/STD; the probes use each model's own
#: (`vitprobe.data.imagefolder`).
DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("cifar10", 10, 5000, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010),
            corruptions=Archive("CIFAR-10-C", "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
                                "56bf5dcef84df0e2308c6dcbcbbd8499")),
    Dataset("cifar100", 100, 500, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761),
            corruptions=Archive("CIFAR-100-C", "https://zenodo.org/records/3555552/files/CIFAR-100-C.tar",
                                "11f0ed0f1191edbf9fa23466ae6021d3")),
    Dataset("synthetic", 10, None, (0.3200, 0.2660, 0.2910), (0.2591, 0.2389, 0.2543)),
    Dataset("fashion_mnist", 10, 6000, *_FASHION),
    Dataset("fashion_mnist_subset", 10, 500, *_FASHION),
    Dataset("imagenet", 1000, None, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), has_training_split=False),
]}

#: The published corrupted test sets, by the clean dataset whose test set they corrupt.
ARCHIVES: dict[str, Archive] = {n: d.corruptions for n, d in DATASETS.items() if d.corruptions}


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[name]


def mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    d = dataset(name)
    return d.mean, d.std


def num_classes(data_spec: dict) -> int:
    """Classes of a run's dataset (a spec's `data` block: synthetic's come from its parameters)."""
    if data_spec["dataset"] == "synthetic":
        return int(data_spec.get("synthetic", {}).get("num_classes", DATASETS["synthetic"].num_classes))
    return dataset(data_spec["dataset"]).num_classes


def train_size(name: str, fraction: float, synthetic: dict | None = None) -> int | None:
    """Training images of a class-stratified fraction (max(1, round(f·per class)) per class),
    if known before any data is read (synthetic: from its config parameters)."""
    d = DATASETS.get(name)
    if d is None or not d.has_training_split:
        return None
    classes, per_class = d.num_classes, d.train_per_class
    if name == "synthetic":
        classes, per_class = (synthetic or {}).get("num_classes"), (synthetic or {}).get("train_per_class")
    if classes is None or per_class is None:
        return None
    return classes * (per_class if fraction >= 1 else max(1, round(fraction * per_class)))
