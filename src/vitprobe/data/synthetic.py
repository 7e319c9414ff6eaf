"""A synthetic CIFAR-format dataset with learnable class structure, for tests and demos:
class-coloured oriented gratings with a class shape on top. Written atomically under
``root/synthetic-cifar`` in the CIFAR-100 pickle layout and read by `vitprobe.data.cifar`."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from itertools import product
from pathlib import Path

import numpy as np

from vitprobe.atomic import dir_mode
from vitprobe.data.cifar import SYNTHETIC_FOLDER, SyntheticCIFAR, missing_files
from vitprobe.errors import VitprobeError

_PARAMS_FILE = "vitprobe-synthetic.json"
_SYNTHETIC_VERSION = 1
#: The parameters of the synthetic set (`data.synthetic` in the config; defaults: the schema).
SYNTHETIC_KEYS = ("num_classes", "train_per_class", "test_per_class", "seed", "noise")

_ORIENTS = (0.0, 45.0, 90.0, 135.0)          # grating orientation, degrees
_FREQS = (3.0, 6.0, 10.0)                    # grating cycles per 32 pixels
_COLOURS = ((0.85, 0.20, 0.20), (0.20, 0.75, 0.25), (0.20, 0.30, 0.85),
            (0.85, 0.80, 0.20), (0.80, 0.25, 0.80), (0.20, 0.75, 0.80))
_SHAPES = ("disc", "square", "bar")


class SyntheticParamsError(VitprobeError, ValueError):
    """Synthetic-data parameters with keys missing or unknown, or a value out of range."""


def check_params(synthetic: dict | None) -> dict:
    """The parameters, checked: exactly the keys `SYNTHETIC_KEYS` (the config fills in the
    schema's defaults; a spec passed by hand must give all), each in range."""
    if synthetic is not None and not isinstance(synthetic, dict):
        raise SyntheticParamsError(f"synthetic parameters: a JSON object of the keys {', '.join(SYNTHETIC_KEYS)}, "
                                   f"not a {type(synthetic).__name__}")
    p = dict(synthetic or {})
    missing = [k for k in SYNTHETIC_KEYS if k not in p]
    unknown = sorted(k for k in p if k not in SYNTHETIC_KEYS)
    if missing or unknown:
        found = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else ""]
        raise SyntheticParamsError(f"synthetic parameters: {'; '.join(f for f in found if f)}; give exactly the keys "
                                   f"{', '.join(SYNTHETIC_KEYS)} (the config's data.synthetic; defaults: "
                                   f"vitprobe.config.load.defaults('data', 'synthetic'))")
    max_classes = len(_ORIENTS) * len(_FREQS) * len(_COLOURS) * len(_SHAPES)
    if not (isinstance(p["num_classes"], int) and 2 <= p["num_classes"] <= max_classes):
        raise SyntheticParamsError(f"synthetic num_classes must be an int in [2, {max_classes}], "
                                   f"got {p['num_classes']!r}")
    for k in ("train_per_class", "test_per_class"):
        if not (isinstance(p[k], int) and p[k] >= 1):
            raise SyntheticParamsError(f"synthetic {k} must be a positive int, got {p[k]!r}")
    if not (isinstance(p["noise"], (int, float)) and p["noise"] >= 0):
        raise SyntheticParamsError(f"synthetic noise must be >= 0, got {p['noise']!r}")
    if not (isinstance(p["seed"], int) and p["seed"] >= 0):
        raise SyntheticParamsError(f"synthetic seed must be an int >= 0, got {p['seed']!r}")
    p["noise"] = float(p["noise"])
    p["seed"] = int(p["seed"])
    return p


def synthetic_class_table(num_classes: int) -> np.ndarray:
    """(K, 4) int attribute indices (orientation, frequency, colour, shape) per class:
    chosen greedily (fixed order, independent of the seed) so that every new class differs
    from all earlier ones in as many attributes as possible."""
    combos = np.array(list(product(range(len(_ORIENTS)), range(len(_FREQS)),
                                   range(len(_COLOURS)), range(len(_SHAPES)))))
    combos = combos[np.random.default_rng(1234).permutation(len(combos))]
    chosen = [0]
    mind = np.full(len(combos), 4)
    for _ in range(num_classes - 1):
        mind = np.minimum(mind, (combos != combos[chosen[-1]]).sum(1))
        mind[chosen] = -1
        chosen.append(int(np.argmax(mind)))
    return combos[chosen]


def _class_names(table: np.ndarray) -> list[str]:
    return [f"c{k:03d}_{_SHAPES[s]}_{['red', 'green', 'blue', 'yellow', 'magenta', 'cyan'][c]}"
            f"_o{int(_ORIENTS[o])}_f{int(_FREQS[f])}" for k, (o, f, c, s) in enumerate(table)]


def synthetic_images(labels: np.ndarray, table: np.ndarray, noise: float,
                     rng: np.random.Generator, chunk: int = 4096) -> np.ndarray:
    """uint8 (N, 3, 32, 32) images for ``labels``: a class-coloured background modulated by
    an oriented sinusoidal grating (class orientation and frequency; random phase, contrast,
    small orientation/frequency jitter), a flat light or dark class shape (disc, square or
    bar) at a random position and size, plus Gaussian pixel noise of std ``noise``."""
    n, size = len(labels), 32
    attrs = table[labels]
    theta = np.deg2rad(np.asarray(_ORIENTS)[attrs[:, 0]] + rng.normal(0, 4, n))
    freq = np.asarray(_FREQS)[attrs[:, 1]] * rng.uniform(0.9, 1.1, n) / size
    phase = rng.uniform(0, 2 * np.pi, n)
    contrast = rng.uniform(0.4, 1.0, n)
    colour = np.clip(np.asarray(_COLOURS)[attrs[:, 2]] + rng.normal(0, 0.06, (n, 3)), 0, 1)
    colour *= rng.uniform(0.75, 1.1, (n, 1))
    centre = rng.uniform(8, 24, (n, 2))
    radius = rng.uniform(4.5, 7.5, n)
    bar_vertical = rng.random(n) < 0.5
    fill = np.where(rng.random(n) < 0.5, rng.uniform(0.8, 1.0, n), rng.uniform(0.0, 0.2, n))

    out = np.empty((n, 3, size, size), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for a in range(0, n, chunk):
        s = slice(a, min(a + chunk, n))
        col = lambda v: v[s, None, None].astype(np.float32)  # noqa: E731
        proj = xx * col(np.cos(theta)) + yy * col(np.sin(theta))
        grating = np.cos(2 * np.pi * col(freq) * proj + col(phase))
        img = colour[s, :, None, None].astype(np.float32) * (0.55 + 0.45 * col(contrast) * grating)[:, None]
        dy, dx = np.abs(yy - col(centre[:, 0])), np.abs(xx - col(centre[:, 1]))
        r, shape = col(radius), attrs[s, 3, None, None]
        long_, short = np.where(col(bar_vertical), dy, dx), np.where(col(bar_vertical), dx, dy)
        mask = np.where(shape == 0, dy ** 2 + dx ** 2 <= r ** 2,
                        np.where(shape == 1, np.maximum(dy, dx) <= 0.85 * r,
                                 (long_ <= 1.6 * r) & (short <= 0.45 * r)))
        img = np.where(mask[:, None], col(fill)[:, None], img)
        img += rng.normal(0, noise, img.shape).astype(np.float32) if noise > 0 else 0
        out[s] = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return out


def _synthetic_split(params: dict, table: np.ndarray, train: bool) -> dict:
    per_class = params["train_per_class" if train else "test_per_class"]
    rng = np.random.default_rng([params["seed"], 0 if train else 1])
    labels = rng.permutation(np.repeat(np.arange(params["num_classes"]), per_class))
    images = synthetic_images(labels, table, params["noise"], rng)
    return {"batch_label": f"synthetic {'training' if train else 'testing'} batch",
            "data": images.reshape(len(labels), -1), "fine_labels": labels.tolist()}


def _read_params(folder: Path) -> dict | None:
    try:
        return json.loads((folder / _PARAMS_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_synthetic(root: Path, params: dict) -> None:
    folder = root / SYNTHETIC_FOLDER
    record = {"version": _SYNTHETIC_VERSION, **params}
    if _read_params(folder) == record and not missing_files(SyntheticCIFAR, root):
        return
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{SYNTHETIC_FOLDER}.tmp-"))
    os.chmod(tmp, dir_mode())  # mkdtemp makes it 0o700; the data folder follows the umask
    try:
        table = synthetic_class_table(params["num_classes"])
        files = {"train": _synthetic_split(params, table, True),
                 "test": _synthetic_split(params, table, False),
                 "meta": {"fine_label_names": _class_names(table)}}
        for name, obj in files.items():
            with open(tmp / name, "wb") as f:
                pickle.dump(obj, f, protocol=4)
        (tmp / _PARAMS_FILE).write_text(json.dumps(record, indent=1, sort_keys=True))
        old = None
        if folder.exists():  # move the stale version aside, then swap the new one in
            old = Path(tempfile.mkdtemp(dir=root, prefix=f".{SYNTHETIC_FOLDER}.old-"))
            os.replace(folder, old / "data")
        try:
            os.rename(tmp, folder)
        except OSError:
            # Another process put a folder there meanwhile; keep it if it matches.
            if _read_params(folder) != record:
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def prepare(root: Path, synthetic: dict | None) -> dict:
    """Generate ``root/synthetic-cifar`` from the parameters (keys ``SYNTHETIC_KEYS``); a
    no-op when it already holds data generated with the same parameters (recorded in a json
    file inside the folder)."""
    params = check_params(synthetic)
    _write_synthetic(root, params)
    return {"dataset": "synthetic", "num_classes": params["num_classes"],
            "n_train": params["num_classes"] * params["train_per_class"],
            "n_test": params["num_classes"] * params["test_per_class"], "path": str(root / SYNTHETIC_FOLDER)}
