#!/usr/bin/env python
"""Regenerate src/vitprobe/data/bundled/fashion_mnist_subset.npz, bit for bit, from the full
Fashion-MNIST.

    python scripts/make_fashion_mnist_subset.py [--source FOLDER] [--out FILE]

--source: a folder holding the four idx files (plain or .gz): torchvision's
``<root>/FashionMNIST/raw`` (``vitprobe prepare-data --dataset fashion_mnist --download``)
or Debian's ``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``,
the default when present).

The subset: for each split and class c, the rows of class c in the full split, ordered by
keys ``np.random.default_rng([seed, split, c]).random(n_c)`` (split 0 = train, 1 = test;
stable argsort), the first ``per_class`` taken; all picked rows sorted, i.e. in the
full set's order. Only PCG64's raw doubles are used, which numpy keeps stable.

The .npz is written deterministically: a zip of ``.npy`` members in a fixed order, every
member dated 1980-01-01, deflated at level 9; so the same arrays give the same bytes with
the same zlib.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from vitprobe.data import fashion_mnist as data

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "vitprobe" / "data" / "bundled" / "fashion_mnist_subset.npz"


def select(labels: np.ndarray, per_class: int, seed: int, split: int) -> np.ndarray:
    """Sorted int64 row numbers: ``per_class`` rows of every class 0..9 of ``labels``."""
    labels = np.asarray(labels)
    picked = []
    for c in range(10):
        rows = np.flatnonzero(labels == c)
        if len(rows) < per_class:
            raise ValueError(f"class {c} has {len(rows)} images, fewer than {per_class}")
        keys = np.random.default_rng([seed, split, c]).random(len(rows))
        picked.append(rows[np.argsort(keys, kind="stable")[:per_class]])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def make_subset(source: str | Path, per_class: dict[str, int] | None = None,
                seed: int = data.SUBSET_SEED) -> dict[str, np.ndarray]:
    """The subset's arrays (keys ``vitprobe.data.fashion_mnist.SUBSET_KEYS``) from the full data set in
    ``source``."""
    per_class = per_class or data.SUBSET_PER_CLASS
    arrays = {}
    for split_no, (split, train) in enumerate((("train", True), ("test", False))):
        images, labels = data.read_fashion_mnist(source, train)
        index = select(labels, per_class[split], seed, split_no)
        arrays[f"x_{split}"] = np.ascontiguousarray(images[index])
        arrays[f"y_{split}"] = np.ascontiguousarray(labels[index])
        arrays[f"index_{split}"] = index
    return {k: arrays[k] for k in data.SUBSET_KEYS}


def write_npz(arrays: dict[str, np.ndarray], path: str | Path) -> None:
    """``arrays`` as a compressed .npz (np.load reads it), same arrays -> same bytes;
    written to a temporary file, then renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            for key, array in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                z.writestr(info, buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _default_source() -> Path | None:
    return next((f for f in data.FASHION_MNIST_SYSTEM if data._complete(f)), None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=_default_source(),
                   help="folder of the four Fashion-MNIST idx files (default: the Debian copy if installed)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output .npz (default {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if args.source is None:
        p.error("no --source, and no Debian copy in /usr/share/datasets/fashion-mnist "
                "(apt-get install dataset-fashion-mnist, or pass torchvision's <root>/FashionMNIST/raw)")
    arrays = make_subset(args.source)
    write_npz(arrays, args.out)
    data.read_fashion_mnist_subset(args.out)  # the package accepts it
    counts = {s: np.bincount(arrays[f"y_{s}"], minlength=10).tolist() for s in data.SUBSET_PER_CLASS}
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) from {args.source}: class counts {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
