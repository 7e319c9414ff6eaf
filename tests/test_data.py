import hashlib
import pickle

import numpy as np
import pytest
import torch
from torchvision.datasets import CIFAR10, CIFAR100

from vitprobe import data


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
    with pytest.raises(ValueError, match="imagenet.*cifar10.*cifar100.*synthetic"):
        data.load_split("imagenet", tmp_path, train=True)
    with pytest.raises(ValueError, match="imagenet"):
        data.prepare("imagenet", tmp_path)


class _Reader(CIFAR100):
    """An independent CIFAR100-derived reader for the synthetic folder."""
    base_folder = "synthetic-cifar"
    train_list = [["train", None]]
    test_list = [["test", None]]
    meta = {"filename": "meta", "key": "fine_label_names", "md5": None}


SMALL = {"num_classes": 5, "train_per_class": 12, "test_per_class": 4, "seed": 3}


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
        data.prepare("synthetic", a, synthetic={"colour": 1})


def _features(images):
    """Mean colour and the phase-free (downsampled) amplitude spectrum of the grey image."""
    x = images.float() / 255
    colour = x.mean((2, 3))
    grey = x.mean(1)
    spectrum = torch.fft.fft2(grey - grey.mean((1, 2), keepdim=True)).abs().log1p()
    return torch.cat([colour * 10, torch.nn.functional.avg_pool2d(spectrum[:, None], 2).flatten(1)], 1)


def test_synthetic_classes_separable(tmp_path):
    data.prepare("synthetic", tmp_path, synthetic={"train_per_class": 150, "test_per_class": 60})
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
    return torch.arange(k).repeat_interleave(per_class)[torch.randperm(per_class * k, generator=torch.Generator().manual_seed(0))]


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
