"""Class-folder image sets (ImageNet's validation set laid out as ``<root>/<class>/<image>``)
read with a model's own preprocessing, a chunk of images at a time.

Classes are the sub-directories in sorted order (class i = the i-th name, as torchvision's
ImageFolder and timm's ImageNet models number them). A probe reads ``n_images`` of the
images: the first n of a seeded permutation of all of them. Each image goes through the
model's evaluation transform as timm builds it (`timm.data.resolve_data_config` and
`create_transform`: resize to size / crop_pct, centre crop, both on the PIL image) and is
kept as uint8 (3, H, W), like the CIFAR sets; the model's mean/std normalisation comes
after, on the batch (`vitprobe.data.augment.normalize`), where the band-noise probe adds its
noise in [0, 1] pixel units first.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config
from torchvision.transforms import Compose, Normalize, PILToTensor

from vitprobe.data.registry import DataMissing

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
LAYOUT = "<dir>/<class>/<image>.JPEG, one sub-directory per class (ImageNet's validation set sorted by synset)"


def scan(root, where: str = "data.imagenet_dir") -> tuple[list[Path], list[int], list[str]]:
    """(image paths, class indices, class names) of a class-folder directory, in sorted order;
    a missing directory, one without class folders or without images raises DataMissing."""
    root = Path(root)
    if not root.is_dir():
        raise DataMissing(f"{where}: {root} is not a directory; expected {LAYOUT}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise DataMissing(f"{where}: {root} has no class sub-directories; expected {LAYOUT}")
    paths, labels = [], []
    for i, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in EXTENSIONS)
        paths += files
        labels += [i] * len(files)
    if not paths:
        raise DataMissing(f"{where}: the class folders of {root} hold no images ({', '.join(EXTENSIONS)}); "
                          f"expected {LAYOUT}")
    return paths, labels, classes


def eval_transform(model):
    """(transform of a PIL image to uint8 (3, H, W), mean, std): timm's evaluation transform
    for `model` (its pretrained_cfg: input size, interpolation, crop_pct) without its final
    ToTensor/Normalize, and the mean/std that Normalize would apply."""

    cfg = resolve_data_config({}, model=model)
    full = create_transform(**cfg, is_training=False)
    steps = list(full.transforms)
    while steps and (isinstance(steps[-1], Normalize) or "ToTensor" in type(steps[-1]).__name__):
        steps.pop()
    return Compose([*steps, PILToTensor()]), tuple(cfg["mean"]), tuple(cfg["std"])


class ImageFolderSample:
    """The first `n_images` of a seeded permutation of a class-folder set; `len()`, and
    `chunk(i, j)` -> (uint8 (j - i, 3, H, W), int64 labels), decoded on demand."""

    chunk_size = 16  # images per forward pass of the feature-map probes (224 px maps are large)

    def __init__(self, root, transform, n_images: int | None = None, seed: int = 0):
        paths, labels, self.classes = scan(root)
        order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))[:n_images].tolist()
        self.paths = [paths[i] for i in order]
        self.labels = torch.tensor([labels[i] for i in order], dtype=torch.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def chunk(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:

        images = []
        for path in self.paths[start:stop]:
            with Image.open(path) as img:
                images.append(self.transform(img.convert("RGB")))
        return torch.stack(images), self.labels[start:stop]


class TensorSample:
    """The same interface over images already in memory (CIFAR and the other sets)."""
    chunk_size = 64

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def chunk(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[start:stop], self.labels[start:stop]
