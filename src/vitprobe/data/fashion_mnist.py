"""Fashion-MNIST: the idx files of torchvision's layout (``root/FashionMNIST/raw``, plain or
gzipped; torchvision downloads them), or else Debian's ``dataset-fashion-mnist`` package;
and the class-stratified subset that ships with vitprobe (the offline demo's real photos).
The 28x28 grey images are zero-padded to 32x32 and replicated to 3 channels on load."""

from __future__ import annotations

import gzip
import zipfile
import zlib
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import FashionMNIST

from vitprobe.data.registry import DataDamaged, DataMissing, Split

FASHION_DATASETS = ("fashion_mnist", "fashion_mnist_subset")
#: torchvision's layout: root/FashionMNIST/raw/<name> (or <name>.gz).
FASHION_MNIST_RAW = Path(FashionMNIST.__name__) / "raw"
#: Where system packages put the idx files, searched in order when root has no complete copy:
#: Debian/Ubuntu's ``dataset-fashion-mnist`` (gzipped files).
FASHION_MNIST_SYSTEM: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
FASHION_MNIST_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                       False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_MNIST_CLASSES = tuple(FashionMNIST.classes)
#: The packaged subset (raw 28x28 images; see scripts/make_fashion_mnist_subset.py).
FASHION_MNIST_SUBSET = resources.files("vitprobe.data").joinpath("bundled", "fashion_mnist_subset.npz")
#: What the subset holds: images per class of each split, drawn with this seed.
SUBSET_PER_CLASS = {"train": 500, "test": 100}
SUBSET_SEED = 0
SUBSET_KEYS = ("x_train", "y_train", "index_train", "x_test", "y_test", "index_test")
_REGENERATE = "python scripts/make_fashion_mnist_subset.py in a vitprobe checkout"
_GET_FULL = ("set data.download: true (torchvision downloads it into root), or "
             "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _idx_file(folder: Path, name: str) -> Path | None:
    """``folder/name``, else ``folder/name.gz``, else None."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def _complete(folder: Path) -> bool:
    return all(_idx_file(folder, n) for t in (True, False) for n in FASHION_MNIST_FILES[t])


def _fashion_folder(root: Path, download: bool) -> Path:
    """The folder to read Fashion-MNIST from: root's copy (torchvision's layout), else a
    system copy, else (``download``) root's copy after torchvision downloads it."""
    raw = root / FASHION_MNIST_RAW
    for folder in (raw, *FASHION_MNIST_SYSTEM):
        if _complete(folder):
            return folder
    missing = next(raw / n for t in (True, False) for n in FASHION_MNIST_FILES[t] if not _idx_file(raw, n))
    if not download:
        raise DataMissing(f"fashion_mnist: {missing} (or .gz) not found, and no copy in "
                          f"{', '.join(map(str, FASHION_MNIST_SYSTEM))}; {_GET_FULL}")
    try:
        FashionMNIST(str(root), train=True, download=True)  # fetches and md5-checks all four files
    except Exception as exc:  # noqa: BLE001 - URLError, RuntimeError with a multi-line report, ...
        raise DataMissing(f"fashion_mnist: download into {raw} failed ({_one_line(exc)}); check the network, "
                          f"or `apt-get install dataset-fashion-mnist`, or copy the four idx files there") from None
    if not _complete(raw):
        raise DataMissing(f"fashion_mnist: {missing} still missing after the download; copy the idx files there")
    return raw


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """The uint8 array of an idx file (``.gz`` is decompressed): 4 magic bytes 0, 0, 0x08
    (unsigned byte), ``ndim``; ``ndim`` big-endian uint32 sizes; the values, C order.
    Anything else -> DataDamaged naming the file."""
    path = Path(path)
    fix = f"delete it and get it again ({_GET_FULL})"
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataDamaged(f"{path}: unreadable ({_one_line(exc)}); {fix}") from None
    head = 4 + 4 * ndim
    if len(raw) < head or raw[:4] != bytes((0, 0, 8, ndim)):
        raise DataDamaged(f"{path}: not an idx file of {ndim}-d unsigned bytes "
                          f"(header {raw[:4].hex() or 'empty'}); {fix}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) - head != int(np.prod(shape)):
        raise DataDamaged(f"{path}: {len(raw) - head} data bytes for shape {shape} "
                          f"(expected {int(np.prod(shape))}; truncated?); {fix}")
    return np.frombuffer(raw, np.uint8, offset=head).reshape(shape)


def read_fashion_mnist(folder: str | Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Raw images uint8 (N, 28, 28) and labels uint8 (N,) of a split of the idx files in
    ``folder`` (each plain or gzipped), checked: 28x28, as many labels as images, labels < 10."""
    folder = Path(folder)
    found = []
    for name in FASHION_MNIST_FILES[train]:
        path = _idx_file(folder, name)
        if path is None:
            raise DataMissing(f"fashion_mnist: {folder / name} (or .gz) not found; {_GET_FULL}")
        found.append(path)
    images, labels = read_idx(found[0], 3), read_idx(found[1], 1)
    fix = f"delete it and get it again ({_GET_FULL})"
    if images.shape[1:] != (28, 28):
        raise DataDamaged(f"{found[0]}: images of {images.shape[1]}x{images.shape[2]} pixels, not 28x28; {fix}")
    if len(labels) != len(images):
        raise DataDamaged(f"{found[1]}: {len(labels)} labels for the {len(images)} images of {found[0].name}; {fix}")
    if labels.size and labels.max() >= 10:
        raise DataDamaged(f"{found[1]}: label {int(labels.max())} out of range 0..9; {fix}")
    return images, labels


def fashion_split(images: np.ndarray, labels: np.ndarray) -> Split:
    """A Split of raw 28x28 grey images: zero-padded to 32x32 (2 pixels each side), the grey
    channel replicated to 3, uint8 (N, 3, 32, 32); labels int64; 10 classes."""
    n = len(images)
    out = np.zeros((n, 3, 32, 32), np.uint8)
    out[:, :, 2:30, 2:30] = np.asarray(images, np.uint8)[:, None]
    return Split(images=torch.from_numpy(out), labels=torch.from_numpy(np.asarray(labels).astype(np.int64)),
                 num_classes=10)


def read_fashion_mnist_subset(path=None) -> dict[str, np.ndarray]:
    """The arrays of the subset file (default: the packaged one), checked: ``x_<split>``
    uint8 (N, 28, 28), ``y_<split>`` uint8 (N,) with ``SUBSET_PER_CLASS[split]`` of every
    class, ``index_<split>`` int64 (N,) (rows of the full split). Missing -> DataMissing,
    anything else wrong -> DataDamaged, one line naming the file and the fix."""
    if path is None:
        with resources.as_file(FASHION_MNIST_SUBSET) as p:
            return read_fashion_mnist_subset(p)
    path = Path(path)
    fix = f"reinstall vitprobe, or regenerate it with {_REGENERATE} (needs the full Fashion-MNIST: {_GET_FULL})"
    if not path.is_file():
        raise DataMissing(f"fashion_mnist_subset: {path} not found; {fix}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            absent = [k for k in SUBSET_KEYS if k not in npz.files]
            if absent:
                raise DataDamaged(f"{path}: no array {absent[0]!r} (has {', '.join(npz.files) or 'none'}); {fix}")
            arrays = {k: npz[k] for k in SUBSET_KEYS}
    except DataDamaged:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
        raise DataDamaged(f"{path}: not a readable .npz file ({_one_line(exc)}); {fix}") from None
    for split, per_class in SUBSET_PER_CLASS.items():
        x, y, i = arrays[f"x_{split}"], arrays[f"y_{split}"], arrays[f"index_{split}"]
        n = 10 * per_class
        for key, a, dtype, shape in ((f"x_{split}", x, np.uint8, (n, 28, 28)), (f"y_{split}", y, np.uint8, (n,)),
                                     (f"index_{split}", i, np.int64, (n,))):
            if a.dtype != dtype or a.shape != shape:
                raise DataDamaged(f"{path}: {key} is {a.dtype} {a.shape}, expected {np.dtype(dtype)} {shape}; {fix}")
        counts = np.bincount(y, minlength=10)
        if counts.tolist() != [per_class] * 10:
            raise DataDamaged(f"{path}: y_{split} has class counts {counts.tolist()}, expected {per_class} "
                              f"of each of 10 classes; {fix}")
    return arrays


def prepare(dataset: str, root: Path, download: bool) -> dict:
    """fashion_mnist: root's idx files, else Debian's copy, else (``download``) torchvision's
    download into root; both splits read and checked. fashion_mnist_subset: the packaged
    file, read and checked; ``root`` is not used, nothing is written, no network."""
    if dataset == "fashion_mnist":
        folder = _fashion_folder(root, download)
        path, n_train, n_test = folder, *(len(read_fashion_mnist(folder, t)[1]) for t in (True, False))
    else:
        with resources.as_file(FASHION_MNIST_SUBSET) as path:
            arrays = read_fashion_mnist_subset(path)
        n_train, n_test = len(arrays["y_train"]), len(arrays["y_test"])
    return {"dataset": dataset, "num_classes": 10, "n_train": n_train, "n_test": n_test, "path": str(path)}


def load(dataset: str, root: Path, train: bool) -> Split:
    """A split, padded to 32x32 and replicated to 3 channels (the subset ignores ``root``)."""
    if dataset == "fashion_mnist":
        return fashion_split(*read_fashion_mnist(_fashion_folder(root, False), train))
    arrays = read_fashion_mnist_subset()
    split = "train" if train else "test"
    return fashion_split(arrays[f"x_{split}"], arrays[f"y_{split}"])
