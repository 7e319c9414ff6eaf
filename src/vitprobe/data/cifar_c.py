"""CIFAR-10-C and CIFAR-100-C (Hendrycks & Dietterich, ICLR 2019) in their published layout.

``<root>/CIFAR-100-C/<corruption>.npy``: uint8 (5 N, 32, 32, 3), the N = 10 000 test images
under one corruption at severities 1..5, one block of N rows per severity (rows
``(s - 1) N .. s N - 1`` hold severity ``s``); ``labels.npy``: the (5 N,) labels, the test
labels repeated five times. CIFAR-10-C is the same under ``<root>/CIFAR-10-C``.

The 15 standard corruptions (noise, blur, weather, digital) are ``CORRUPTIONS``; the 4
extra ones that the archives also hold are ``EXTRA_CORRUPTIONS`` (an option). The archives
are on Zenodo (records 2535967 and 3555552); `prepare` downloads and md5-checks one only
when asked to.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitprobe.data.registry import ARCHIVES, DataDamaged, DataMissing

if TYPE_CHECKING:
    import torch

#: The 15 corruptions of the benchmark, by group: noise, blur, weather, digital.
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise",
               "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
               "snow", "frost", "fog", "brightness",
               "contrast", "elastic_transform", "pixelate", "jpeg_compression")
#: The 4 held-out corruptions of the paper, also in the archives.
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEVERITIES = (1, 2, 3, 4, 5)
LABELS_FILE = "labels.npy"


def corruption_names(extra: bool = False) -> tuple[str, ...]:
    """The 15 standard corruptions, and with ``extra`` the 4 extra ones after them."""
    return CORRUPTIONS + (EXTRA_CORRUPTIONS if extra else ())


def default_folder(dataset: str, root: str | Path) -> Path:
    """``root/CIFAR-10-C`` or ``root/CIFAR-100-C``; other datasets have no published set."""
    if dataset not in ARCHIVES:
        raise ValueError(f"no published corrupted test set for dataset {dataset!r}; allowed: "
                         f"{', '.join(ARCHIVES)} (or give a folder in the same layout)")
    return Path(root) / ARCHIVES[dataset].folder


def _how(dataset: str | None) -> str:
    if dataset in ARCHIVES:
        a = ARCHIVES[dataset]
        return (f"set probes.corruption.download: true, or download {a.url} (md5 {a.md5}) and extract it "
                f"so that the folder {a.folder} holds the .npy files")
    return "write the .npy files in the published CIFAR-C layout there (see vitprobe.data.cifar_c)"


def missing_files(folder: str | Path, names) -> list[Path]:
    folder = Path(folder)
    return [folder / f for f in (*(f"{n}.npy" for n in names), LABELS_FILE) if not (folder / f).is_file()]


def check(folder: str | Path, names, dataset: str | None = None) -> int:
    """Check that ``folder`` holds labels.npy and ``<name>.npy`` of every corruption in
    ``names`` with matching lengths (a multiple of 5, no file read beyond its header);
    return the images per severity. Missing -> DataMissing naming the first missing file
    and how to get it; a wrong shape or dtype -> DataDamaged."""
    folder = Path(folder)
    missing = missing_files(folder, names)
    if missing:
        what = f"corruption {missing[0].stem!r}" if missing[0].name != LABELS_FILE else "the labels"
        more = f", and {len(missing) - 1} more of its files" if len(missing) > 1 else ""
        raise DataMissing(f"CIFAR-C: {missing[0]} ({what}) not found{more}; {_how(dataset)}")
    labels = _load(folder / LABELS_FILE, dataset)
    if labels.ndim != 1 or len(labels) % len(SEVERITIES) or not len(labels):
        raise DataDamaged(f"{folder / LABELS_FILE}: shape {labels.shape}, expected (5 N,) labels; {_fix(dataset)}")
    for name in names:
        images = _load(folder / f"{name}.npy", dataset)
        if images.dtype != np.uint8 or images.shape != (len(labels), 32, 32, 3):
            raise DataDamaged(f"{folder / name}.npy: {images.dtype} {images.shape}, expected uint8 "
                              f"({len(labels)}, 32, 32, 3) like {LABELS_FILE}; {_fix(dataset)}")
    return len(labels) // len(SEVERITIES)


def _fix(dataset: str | None) -> str:
    return f"delete the folder and get it again ({_how(dataset)})"


def _load(path: Path, dataset: str | None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataDamaged(f"{path}: not a readable .npy file ({' '.join(str(exc).split())}); "
                          f"{_fix(dataset)}") from None


def read(folder: str | Path, corruption: str, severity: int, dataset: str | None = None,
         index: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 (n, 3, 32, 32) and labels int64 (n,) of one corruption at one severity
    (1..5): rows ``(severity - 1) N .. severity N - 1`` of its file, the ``index`` rows of
    that block when given (default: all N)."""
    import torch  # here, where tensors are made: the workflow and the figures read the names without it

    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    folder = Path(folder)
    n = check(folder, [corruption], dataset)
    rows = np.arange((severity - 1) * n, severity * n)
    if index is not None:
        rows = rows[np.asarray(index)]
    images = np.asarray(_load(folder / f"{corruption}.npy", dataset)[rows])
    labels = np.asarray(_load(folder / LABELS_FILE, dataset)[rows]).astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), torch.from_numpy(labels)


def prepare(dataset: str, root: str | Path, folder: str | Path | None = None, *, extra: bool = False,
            download: bool = False) -> dict:
    """Make the corrupted test set available and checked: ``folder`` (default
    ``default_folder(dataset, root)``) must hold every corruption file (and labels.npy). If
    not and ``download``, the dataset's Zenodo archive is downloaded into ``root``,
    md5-checked and extracted (torchvision's download helper). Returns ``{dataset, path,
    corruptions, n_per_severity}``."""
    names = corruption_names(extra)
    folder = Path(folder) if folder is not None else default_folder(dataset, root)
    if missing_files(folder, names) and download:
        if dataset not in ARCHIVES:
            raise DataMissing(f"CIFAR-C: nothing to download for dataset {dataset!r}; {_how(None)}")
        a = ARCHIVES[dataset]
        from torchvision.datasets.utils import download_and_extract_archive  # (as torch in `read`)

        try:
            download_and_extract_archive(a.url, str(root), filename=f"{a.folder}.tar", md5=a.md5)
        except Exception as exc:  # noqa: BLE001 - URLError, md5 mismatch (RuntimeError), ...
            raise DataMissing(f"CIFAR-C: download of {a.url} into {root} failed ({' '.join(str(exc).split())}); "
                              f"check the network or {_how(dataset)}") from None
    n = check(folder, names, dataset if dataset in ARCHIVES else None)
    return {"dataset": dataset, "path": str(folder), "corruptions": list(names), "n_per_severity": n}
