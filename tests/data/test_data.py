import gzip
import hashlib
import importlib.util
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100, FashionMNIST

from vitprobe.config.load import defaults
from vitprobe.data import fashion_mnist, registry
from vitprobe.data import splits as data
from vitprobe.errors import VitprobeError


def _dump(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)
    return hashlib.md5(path.read_bytes()).hexdigest()


def _images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def test_load_cifar100_layout(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-100-python"
    train, test = _images(7, 1), _images(3, 2)
    train[4, 1024 + 32 * 5 + 9] = 201  # image 4, green channel, row 5, column 9
    md5_train = _dump(folder / "train", {"data": train, "fine_labels": [3, 1, 4, 1, 5, 9, 2]})
    md5_test = _dump(folder / "test", {"data": test, "fine_labels": [99, 0, 7]})
    md5_meta = _dump(folder / "meta", {"fine_label_names": [f"n{i}" for i in range(100)]})
    # torchvision checks md5s of the real files: point it at ours.
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5_train]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5_test]])
    monkeypatch.setattr(CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": md5_meta})

    s = data.load_split("cifar100", tmp_path, train=True)
    assert s.images.dtype == torch.uint8 and s.images.shape == (7, 3, 32, 32)
    assert s.images.is_contiguous() and s.images.device.type == "cpu"
    assert s.images[4, 1, 5, 9].item() == 201
    assert torch.equal(s.images.reshape(7, -1), torch.from_numpy(train))
    assert s.labels.dtype == torch.int64 and s.labels.tolist() == [3, 1, 4, 1, 5, 9, 2]
    assert s.num_classes == 100
    t = data.load_split("cifar100", str(tmp_path), train=False)
    assert t.labels.tolist() == [99, 0, 7] and torch.equal(t.images.reshape(3, -1), torch.from_numpy(test))
    summary = data.prepare("cifar100", tmp_path)
    assert (summary["n_train"], summary["n_test"], summary["num_classes"]) == (7, 3, 100)


def test_load_cifar10_layout(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    batches, train_list = [], []
    for i in range(1, 6):
        x = _images(2, 10 + i)
        batches.append(x)
        train_list.append([f"data_batch_{i}", _dump(folder / f"data_batch_{i}", {"data": x, "labels": [i, 9 - i]})])
    test = _images(4, 3)
    test[2, 2048 + 32 * 31 + 0] = 17  # image 2, blue channel, row 31, column 0
    md5_test = _dump(folder / "test_batch", {"data": test, "labels": [0, 1, 2, 3]})
    md5_meta = _dump(folder / "batches.meta", {"label_names": [f"n{i}" for i in range(10)]})
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5_test]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": md5_meta})

    s = data.load_split("cifar10", tmp_path, train=True)
    assert s.images.shape == (10, 3, 32, 32) and s.num_classes == 10
    assert torch.equal(s.images.reshape(10, -1), torch.from_numpy(np.concatenate(batches)))
    assert s.labels.tolist() == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]
    t = data.load_split("cifar10", tmp_path, train=False)
    assert t.images[2, 2, 31, 0].item() == 17 and t.labels.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_missing_cifar_is_clear(tmp_path, dataset):
    with pytest.raises(FileNotFoundError, match="download") as e:
        data.prepare(dataset, tmp_path / "nowhere", download=False)
    assert str(tmp_path / "nowhere") in str(e.value)
    with pytest.raises(FileNotFoundError, match="download"):
        data.load_split(dataset, tmp_path, train=True)


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="svhn.*cifar10.*cifar100.*synthetic"):
        data.load_split("svhn", tmp_path, train=True)
    with pytest.raises(ValueError, match="svhn"):
        data.prepare("svhn", tmp_path)
    with pytest.raises(ValueError, match="imagenet is a class-folder directory .* no training split"):
        data.load_split("imagenet", tmp_path, train=True)


class _Reader(CIFAR100):
    """An independent CIFAR100-derived reader for the synthetic folder."""
    base_folder = "synthetic-cifar"
    train_list = [["train", None]]
    test_list = [["test", None]]
    meta = {"filename": "meta", "key": "fine_label_names", "md5": None}


SYNTHETIC = defaults("data", "synthetic")  # the schema's defaults, the one source
SMALL = {**SYNTHETIC, "num_classes": 5, "train_per_class": 12, "test_per_class": 4, "seed": 3}


def test_synthetic_layout_counts(tmp_path):
    summary = data.prepare("synthetic", tmp_path, synthetic=SMALL)
    assert summary["n_train"] == 60 and summary["n_test"] == 20 and summary["num_classes"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic-cifar"]  # no temp dirs left
    with open(tmp_path / "synthetic-cifar" / "train", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    assert raw["data"].dtype == np.uint8 and raw["data"].shape == (60, 3072)
    assert np.bincount(raw["fine_labels"]).tolist() == [12] * 5
    ds = _Reader(str(tmp_path), train=False)
    assert len(ds) == 20 and len(ds.classes) == 5
    assert np.bincount(ds.targets).tolist() == [4] * 5
    s = data.load_split("synthetic", tmp_path, train=False)
    assert s.num_classes == 5 and s.images.shape == (20, 3, 32, 32)
    assert torch.equal(s.images.permute(0, 2, 3, 1), torch.from_numpy(ds.data))
    assert s.labels.tolist() == ds.targets


def _bytes(root):
    return {n: (root / "synthetic-cifar" / n).read_bytes() for n in ("train", "test", "meta")}


def test_synthetic_deterministic_and_idempotent(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    data.prepare("synthetic", a, synthetic=SMALL)
    data.prepare("synthetic", b, synthetic=SMALL)
    data.prepare("synthetic", c, synthetic={**SMALL, "seed": 4})
    assert _bytes(a) == _bytes(b)
    assert _bytes(a)["train"] != _bytes(c)["train"] and _bytes(a)["test"] != _bytes(c)["test"]

    train = a / "synthetic-cifar" / "train"
    mtime = train.stat().st_mtime_ns
    data.prepare("synthetic", a, synthetic=dict(SMALL))
    assert train.stat().st_mtime_ns == mtime
    data.prepare("synthetic", a, synthetic={**SMALL, "seed": 4})  # different parameters: regenerate
    assert _bytes(a) == _bytes(c)
    assert sorted(p.name for p in a.iterdir()) == ["synthetic-cifar"]
    with pytest.raises(ValueError, match="colour"):
        data.prepare("synthetic", a, synthetic={**SMALL, "colour": 1})


@pytest.mark.parametrize("synthetic, words", [
    ('{"num_classes": 5, "seed": 0}', "synthetic parameters: missing train_per_class, test_per_class, noise; give "
                                      "exactly the keys num_classes, train_per_class, test_per_class, seed, noise"),
    ('{"num_classes": 5, "train_per_class": 2, "test_per_class": 2, "seed": 0, "noise": 0, "colour": 1}',
     "synthetic parameters: unknown colour; give exactly the keys num_classes, train_per_class"),
    ('{"num_classes": 5,', "--synthetic is not valid JSON (Expecting property name"),
    ('[5]', "synthetic parameters: a JSON object of the keys num_classes, train_per_class"),
    (None, "synthetic parameters: missing num_classes, train_per_class, test_per_class, seed, noise"),
])
def test_prepare_data_with_an_incomplete_synthetic_spec_is_one_line(tmp_path, capsys, synthetic, words):
    from vitprobe.cli import main

    argv = ["prepare-data", "--dataset", "synthetic", "--root", str(tmp_path / "data"), "--out", str(tmp_path / "s")]
    assert main(argv + (["--synthetic", synthetic] if synthetic else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("vitprobe prepare-data: error: ") and words in err and err.count("\n") == 1
    assert not (tmp_path / "data").exists() and not (tmp_path / "s").exists()  # before any work


def _features(images):
    """Mean colour and the phase-free (downsampled) amplitude spectrum of the grey image."""
    x = images.float() / 255
    colour = x.mean((2, 3))
    grey = x.mean(1)
    spectrum = torch.fft.fft2(grey - grey.mean((1, 2), keepdim=True)).abs().log1p()
    return torch.cat([colour * 10, torch.nn.functional.avg_pool2d(spectrum[:, None], 2).flatten(1)], 1)


def test_synthetic_classes_separable(tmp_path):
    data.prepare("synthetic", tmp_path, synthetic={**SYNTHETIC, "train_per_class": 150, "test_per_class": 60})
    tr = data.load_split("synthetic", tmp_path, True)
    te = data.load_split("synthetic", tmp_path, False)
    assert tr.num_classes == 10
    a, b = _features(tr.images), _features(te.images)
    mu, sd = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mu) / sd, (b - mu) / sd
    means = torch.stack([a[tr.labels == k].mean(0) for k in range(10)])
    acc = (torch.cdist(b, means).argmin(1) == te.labels).float().mean().item()
    assert acc > 0.6, acc  # chance is 0.1


def _labels(per_class=500, k=10):
    order = torch.randperm(per_class * k, generator=torch.Generator().manual_seed(0))
    return torch.arange(k).repeat_interleave(per_class)[order]


@pytest.mark.parametrize("fraction,n", [(1 / 64, 8), (1 / 16, 31), (1 / 2, 250), (1, 500)])
def test_stratified_counts(fraction, n):
    labels = _labels()
    idx = data.stratified_indices(labels, fraction, seed=0)
    assert idx.dtype == torch.int64
    assert torch.equal(idx, torch.sort(idx).values) and idx.unique().numel() == idx.numel()
    assert torch.bincount(labels[idx], minlength=10).tolist() == [n] * 10


def test_stratified_seeds_and_min_class():
    labels = _labels()
    a = data.stratified_indices(labels, 0.1, seed=1)
    assert torch.equal(a, data.stratified_indices(labels, 0.1, seed=1))
    assert not torch.equal(a, data.stratified_indices(labels, 0.1, seed=2))
    unbalanced = torch.tensor([0] * 40 + [1] * 20 + [2] * 30)
    idx = data.stratified_indices(unbalanced, 0.5, seed=0)
    assert torch.bincount(unbalanced[idx]).tolist() == [10, 10, 10]
    assert torch.bincount(unbalanced[data.stratified_indices(unbalanced, 0.001, 0)]).tolist() == [1, 1, 1]


@pytest.mark.parametrize("fraction", [0, 1.5, -1])
def test_stratified_rejects(fraction):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        data.stratified_indices(_labels(5), fraction, seed=0)


# ---------------------------------------------------------------- Fashion-MNIST

REPO = Path(__file__).resolve().parents[2]
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(not all((DEBIAN / f"{n}-ubyte.gz").is_file() for n in (
    "train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1")),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
NAMES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _idx(array):
    """The bytes of an idx file as published (and as torchvision reads it): 0, 0, 0x08
    (unsigned byte), number of dimensions, then each size as a big-endian uint32, then the
    values in C order."""
    array = np.asarray(array, np.uint8)
    return bytes((0, 0, 8, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_fashion(folder, n_train=6, n_test=4, gz=False, seed=0):
    """Random idx files of both splits in ``folder``; returns {train: (images, labels)}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for train, n in ((True, n_train), (False, n_test)):
        images = rng.integers(1, 256, (n, 28, 28), dtype=np.uint8)  # never 0: the padding is
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for name, a in zip(NAMES[train], (images, labels)):
            raw = _idx(a)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
        out[train] = images, labels
    return out


@pytest.fixture
def no_system_copy(monkeypatch, tmp_path):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM", (tmp_path / "no-system-copy",))


def _check_padded(split, images, labels):
    """Pixel by pixel: 2 zero rows/columns on each side, the 28x28 image in the middle of
    each of 3 channels."""
    n = len(images)
    assert split.images.dtype == torch.uint8 and split.images.shape == (n, 3, 32, 32)
    assert split.images.is_contiguous() and split.num_classes == 10
    x = split.images.numpy()
    for i in range(n):
        for c in range(3):
            for r in range(32):
                for col in range(32):
                    inside = 2 <= r < 30 and 2 <= col < 30
                    want = images[i, r - 2, col - 2] if inside else 0
                    assert x[i, c, r, col] == want, (i, c, r, col)
    assert split.labels.dtype == torch.int64 and split.labels.tolist() == labels.tolist()


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_torchvision_layout(tmp_path, no_system_copy, gz):
    truth = _write_fashion(tmp_path / "FashionMNIST" / "raw", gz=gz)
    for train in (True, False):
        _check_padded(data.load_split("fashion_mnist", tmp_path, train), *truth[train])
    summary = data.prepare("fashion_mnist", tmp_path)
    assert summary == {"dataset": "fashion_mnist", "num_classes": 10, "n_train": 6, "n_test": 4,
                       "path": str(tmp_path / "FashionMNIST" / "raw")}
    if not gz:  # the same files through torchvision's own reader
        tv = FashionMNIST(str(tmp_path), train=True)
        assert torch.equal(data.load_split("fashion_mnist", tmp_path, True).images[:, 0, 2:30, 2:30], tv.data)


def test_fashion_mnist_system_copy_when_root_has_none(tmp_path, monkeypatch):
    system = _write_fashion(tmp_path / "debian", gz=True, seed=1)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM", (tmp_path / "absent", tmp_path / "debian"))
    root = tmp_path / "root"
    s = data.load_split("fashion_mnist", root, False)
    assert torch.equal(s.images[:, 1, 2:30, 2:30], torch.from_numpy(system[False][0]))
    assert data.prepare("fashion_mnist", root)["path"] == str(tmp_path / "debian")
    own = _write_fashion(root / "FashionMNIST" / "raw", n_train=3, seed=2)  # root's own copy wins
    s = data.load_split("fashion_mnist", root, True)
    assert torch.equal(s.images[:, 2, 2:30, 2:30], torch.from_numpy(own[True][0]))


def _one_line_naming(exc_info, path):
    msg = str(exc_info.value)
    assert "\n" not in msg and str(path) in msg, msg
    assert isinstance(exc_info.value, VitprobeError)
    return msg


def test_fashion_mnist_missing_is_one_line(tmp_path, no_system_copy):
    with pytest.raises(registry.DataMissing) as e:
        data.load_split("fashion_mnist", tmp_path, True)
    msg = _one_line_naming(e, tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte")
    assert "data.download: true" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert isinstance(e.value, FileNotFoundError)
    _write_fashion(tmp_path / "FashionMNIST" / "raw")
    (tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(registry.DataMissing) as e:
        data.prepare("fashion_mnist", tmp_path, download=False)
    _one_line_naming(e, tmp_path / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte")


@pytest.mark.parametrize("damage,file,words", [
    (lambda raw: raw[:-5], "train-images-idx3-ubyte", "truncated"),
    (lambda raw: b"\x00\x00\x09\x03" + raw[4:], "train-images-idx3-ubyte", "not an idx file"),
    (lambda raw: b"", "train-labels-idx1-ubyte", "not an idx file"),
    (lambda raw: _idx(np.array([1, 2, 3, 4, 5], np.uint8)), "train-labels-idx1-ubyte", "5 labels for the 6 images"),
    (lambda raw: _idx(np.array([0, 1, 2, 3, 4, 10], np.uint8)), "train-labels-idx1-ubyte", "label 10"),
    (lambda raw: _idx(np.zeros((6, 32, 32), np.uint8)), "train-images-idx3-ubyte", "not 28x28"),
])
def test_fashion_mnist_damaged_is_one_line(tmp_path, no_system_copy, damage, file, words):
    raw = tmp_path / "FashionMNIST" / "raw"
    _write_fashion(raw)
    (raw / file).write_bytes(damage((raw / file).read_bytes()))
    with pytest.raises(registry.DataDamaged) as e:
        data.load_split("fashion_mnist", tmp_path, True)
    assert words in _one_line_naming(e, raw / file)
    assert data.load_split("fashion_mnist", tmp_path, False).images.shape == (4, 3, 32, 32)  # test split intact


def test_fashion_mnist_bad_gzip_is_one_line(tmp_path, no_system_copy):
    raw = tmp_path / "FashionMNIST" / "raw"
    _write_fashion(raw, gz=True)
    gz = raw / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:20])
    with pytest.raises(registry.DataDamaged) as e:
        data.load_split("fashion_mnist", tmp_path, False)
    _one_line_naming(e, gz)


def test_fashion_mnist_download_goes_through_torchvision(tmp_path, no_system_copy, monkeypatch):
    calls = []

    def fake_download(self):  # what torchvision's download leaves: the .gz files and the extracted ones
        calls.append(self.raw_folder)
        _write_fashion(Path(self.raw_folder), n_train=5, n_test=2, seed=3)
        _write_fashion(Path(self.raw_folder), n_train=5, n_test=2, seed=3, gz=True)

    monkeypatch.setattr(FashionMNIST, "download", fake_download)
    summary = data.prepare("fashion_mnist", tmp_path, download=True)
    assert calls == [str(tmp_path / "FashionMNIST" / "raw")]
    assert (summary["n_train"], summary["n_test"]) == (5, 2)
    data.prepare("fashion_mnist", tmp_path, download=True)
    assert len(calls) == 1  # there now: no second download

    def failing_download(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://x/, got:\n<urlopen error>\n")

    monkeypatch.setattr(FashionMNIST, "download", failing_download)
    with pytest.raises(registry.DataMissing) as e:
        data.prepare("fashion_mnist", tmp_path / "other", download=True)
    assert "urlopen error" in _one_line_naming(e, tmp_path / "other" / "FashionMNIST" / "raw")


def _script():
    spec = importlib.util.spec_from_file_location("make_fashion_mnist_subset",
                                                  REPO / "scripts" / "make_fashion_mnist_subset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_subset_selection_stratified_and_seeded():
    select = _script().select
    labels = np.random.default_rng(5).integers(0, 10, 3000)
    idx = select(labels, 40, seed=0, split=0)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert np.bincount(labels[idx], minlength=10).tolist() == [40] * 10
    assert np.array_equal(idx, select(labels, 40, seed=0, split=0))
    assert not np.array_equal(idx, select(labels, 40, seed=1, split=0))
    assert not np.array_equal(idx, select(labels, 40, seed=0, split=1))
    assert set(idx) <= set(select(labels, 80, seed=0, split=0))  # nested in the per-class size
    with pytest.raises(ValueError, match="class 3 has 2 images"):
        select(np.array([0] * 5 + [1] * 5 + [2] * 5 + [3] * 2 + list(range(4, 10)) * 5), 5, 0, 0)


def test_subset_script_on_handmade_files(tmp_path):
    script = _script()
    rng = np.random.default_rng(7)
    folder = tmp_path / "full"
    folder.mkdir()
    full = {}
    for train, n in ((True, 80), (False, 30)):
        labels = rng.permutation(np.repeat(np.arange(10, dtype=np.uint8), n // 10))
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        for name, a in zip(NAMES[train], (images, labels)):
            (folder / f"{name}.gz").write_bytes(gzip.compress(_idx(a)))
        full[train] = images, labels
    arrays = script.make_subset(folder, {"train": 5, "test": 2})
    for split, train, k in (("train", True, 5), ("test", False, 2)):
        images, labels = full[train]
        assert np.bincount(arrays[f"y_{split}"]).tolist() == [k] * 10
        assert np.array_equal(arrays[f"x_{split}"], images[arrays[f"index_{split}"]])
        assert np.array_equal(arrays[f"y_{split}"], labels[arrays[f"index_{split}"]])
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    script.write_npz(arrays, a)
    script.write_npz(arrays, b)
    assert a.read_bytes() == b.read_bytes()  # deterministic bytes
    with np.load(a) as npz:
        assert list(npz.files) == list(fashion_mnist.SUBSET_KEYS)
        assert all(np.array_equal(npz[k], arrays[k]) for k in fashion_mnist.SUBSET_KEYS)


def test_subset_shipped_loads_offline(tmp_path):
    t0 = time.perf_counter()
    tr = data.load_split("fashion_mnist_subset", tmp_path / "unused", True)
    elapsed = time.perf_counter() - t0
    te = data.load_split("fashion_mnist_subset", tmp_path / "unused", False)
    assert elapsed < 5, elapsed
    assert tr.images.shape == (5000, 3, 32, 32) and te.images.shape == (1000, 3, 32, 32)
    assert tr.images.dtype == torch.uint8 and tr.labels.dtype == torch.int64
    assert tr.num_classes == te.num_classes == 10 == registry.DATASETS["fashion_mnist_subset"].num_classes
    assert torch.bincount(tr.labels).tolist() == [500] * 10 and torch.bincount(te.labels).tolist() == [100] * 10
    raw = fashion_mnist.read_fashion_mnist_subset()
    for s, split in ((tr, "train"), (te, "test")):
        assert torch.equal(s.labels, torch.from_numpy(raw[f"y_{split}"].astype(np.int64)))
        for c in range(3):
            assert torch.equal(s.images[:, c, 2:30, 2:30], torch.from_numpy(raw[f"x_{split}"]))
        border = s.images.clone()
        border[:, :, 2:30, 2:30] = 0
        assert border.count_nonzero() == 0
    assert len(np.unique(raw["index_train"])) == 5000 and raw["index_train"].max() < 60000
    assert len(np.unique(raw["index_test"])) == 1000 and raw["index_test"].max() < 10000
    assert registry.mean_std("fashion_mnist_subset") == registry.mean_std("fashion_mnist")
    x = tr.images.double() / 255  # the subset's own statistics are close to the full set's
    mean, std = registry.mean_std("fashion_mnist")
    assert x.mean().item() == pytest.approx(mean[0], abs=0.003)
    assert x.std().item() == pytest.approx(std[0], abs=0.003)
    summary = data.prepare("fashion_mnist_subset", tmp_path / "root", download=False)
    assert summary["n_train"] == 5000 and summary["n_test"] == 1000 and summary["num_classes"] == 10
    assert not (tmp_path / "root").exists()  # nothing written


def test_subset_package_files():
    folder = REPO / "src" / "vitprobe" / "data" / "bundled"
    npz = folder / "fashion_mnist_subset.npz"
    assert Path(str(fashion_mnist.FASHION_MNIST_SUBSET)) == npz
    assert npz.stat().st_size < 4_000_000
    notice = (folder / "FASHION_MNIST_LICENSE.txt").read_text()
    for words in ("MIT License", "2017 Zalando SE", "zalandoresearch/fashion-mnist",
                  "make_fashion_mnist_subset.py", "Permission is hereby granted"):
        assert words in notice
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"vitprobe.data" = ["bundled/*.npz", "bundled/*.txt"]' in pyproject  # shipped in the wheel


def _save(path, **arrays):
    np.savez_compressed(path, **arrays)
    return path


def _good():
    return {k: v.copy() for k, v in fashion_mnist.read_fashion_mnist_subset().items()}


@pytest.mark.parametrize("case", ["missing", "truncated", "not_zip", "no_key", "shape", "dtype", "counts"])
def test_subset_damaged_is_one_line(tmp_path, monkeypatch, case):
    path = tmp_path / "fashion_mnist_subset.npz"
    good = _good()
    if case == "truncated":
        path.write_bytes(Path(str(fashion_mnist.FASHION_MNIST_SUBSET)).read_bytes()[:100_000])
    elif case == "not_zip":
        path.write_text("version https://git-lfs.github.com/spec/v1\n")
    elif case == "no_key":
        del good["y_test"]
        _save(path, **good)
    elif case == "shape":
        good["x_train"] = good["x_train"][:, :27]
        _save(path, **good)
    elif case == "dtype":
        good["x_test"] = good["x_test"].astype(np.float32)
        _save(path, **good)
    elif case == "counts":
        good["y_train"][good["y_train"] == 3] = 4
        _save(path, **good)
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SUBSET", path)
    error = registry.DataMissing if case == "missing" else registry.DataDamaged
    with pytest.raises(error) as e:
        data.load_split("fashion_mnist_subset", tmp_path, True)
    msg = _one_line_naming(e, path)
    assert "scripts/make_fashion_mnist_subset.py" in msg and "apt-get install dataset-fashion-mnist" in msg
    with pytest.raises(error):
        data.prepare("fashion_mnist_subset", tmp_path)


@needs_debian
def test_subset_regenerates_from_debian_copy():
    arrays = _script().make_subset(DEBIAN)
    shipped = fashion_mnist.read_fashion_mnist_subset()
    assert list(arrays) == list(shipped)
    for k in fashion_mnist.SUBSET_KEYS:
        assert arrays[k].dtype == shipped[k].dtype and np.array_equal(arrays[k], shipped[k]), k
    images, labels = fashion_mnist.read_fashion_mnist(DEBIAN, True)
    assert images.shape == (60000, 28, 28) and np.bincount(labels).tolist() == [6000] * 10
    assert np.array_equal(images[shipped["index_train"]], shipped["x_train"])


@needs_debian
def test_fashion_mnist_mean_std_of_padded_training_set(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "FASHION_MNIST_SYSTEM", (DEBIAN,))
    s = data.load_split("fashion_mnist", tmp_path, True)
    assert s.images.shape == (60000, 3, 32, 32) and s.num_classes == 10
    assert torch.equal(s.images[:, 0], s.images[:, 1]) and torch.equal(s.images[:, 0], s.images[:, 2])
    grey = s.images[:, 0].to(torch.int64)  # exact integer sums over all N*32*32 values
    n = grey.numel()
    mean = grey.sum().item() / n / 255
    std = (grey.square().sum().item() / n / 255 ** 2 - mean ** 2) ** 0.5
    assert registry.mean_std("fashion_mnist") == ((round(mean, 4),) * 3, (round(std, 4),) * 3)
    assert data.load_split("fashion_mnist", tmp_path, False).images.shape == (10000, 3, 32, 32)


def test_schema_lists_every_dataset():
    """The schema's dataset list is the registry's (filled in when the schema is loaded)."""
    from vitprobe.config.load import schema, validate
    s = schema()
    assert s["properties"]["data"]["properties"]["dataset"]["$ref"] == "#/$defs/dataset"
    assert s["$defs"]["dataset"]["enum"] == list(registry.DATASETS)
    with pytest.raises(VitprobeError, match="data.dataset.*'svhn'.*cifar10"):
        validate({"data": {"dataset": "svhn"}, "experiments": {"x": {"models": ["resnet18_cifar"]}}})
