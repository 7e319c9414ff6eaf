"""CIFAR-C in the published layout (vitprobe.data.cifar_c) and the corruption probe, on small
.npy files the tests write: the reader against the rows it must return, the probe's numbers
against accuracies and NLLs computed by hand (numpy) for a model whose logits are a known
function of the image."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from vitprobe.data import cifar_c as corruptions
from vitprobe.data.registry import DataDamaged, DataMissing, mean_std
from vitprobe.device import resolve
from vitprobe.probes.corruption.measure import corruption_metrics

N = 6  # images per severity


def write_cifar_c(folder, clean=None, labels=None, names=corruptions.CORRUPTIONS, seed=0):
    """The published layout: labels.npy (5 N,), <name>.npy uint8 (5 N, 32, 32, 3). With
    `clean` (N, 3, 32, 32) the files hold shifted copies of it (severity s: + 8 s per pixel);
    else random images. Returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = N if clean is None else len(clean)
    labels = rng.integers(0, 10, n) if labels is None else np.asarray(labels)
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    arrays = {}
    for name in names:
        if clean is None:
            a = rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
        else:
            hwc = np.asarray(clean).transpose(0, 2, 3, 1).astype(np.int64)
            a = np.concatenate([np.clip(hwc + 8 * s, 0, 255) for s in range(1, 6)]).astype(np.uint8)
        np.save(folder / f"{name}.npy", a)
        arrays[name] = a
    return arrays, np.tile(labels, 5)


def test_read_returns_the_block_of_a_severity(tmp_path):
    arrays, labels = write_cifar_c(tmp_path / "CIFAR-100-C", names=["fog"])
    for s in (1, 3, 5):
        x, y = corruptions.read(tmp_path / "CIFAR-100-C", "fog", s)
        assert x.dtype == torch.uint8 and x.shape == (N, 3, 32, 32)
        np.testing.assert_array_equal(x.numpy(), arrays["fog"][(s - 1) * N:s * N].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(y.numpy(), labels[(s - 1) * N:s * N])
    x, _ = corruptions.read(tmp_path / "CIFAR-100-C", "fog", 2, index=torch.tensor([4, 1]))
    np.testing.assert_array_equal(x.numpy(), arrays["fog"][[N + 4, N + 1]].transpose(0, 3, 1, 2))


def test_the_standard_and_extra_corruptions():
    assert len(corruptions.CORRUPTIONS) == 15 and len(corruptions.EXTRA_CORRUPTIONS) == 4
    assert corruptions.corruption_names(extra=True)[-4:] == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert not set(corruptions.CORRUPTIONS) & set(corruptions.EXTRA_CORRUPTIONS)


def test_a_missing_corruption_file_is_named_with_how_to_get_it(tmp_path):
    folder = tmp_path / "CIFAR-100-C"
    write_cifar_c(folder)
    (folder / "frost.npy").unlink()
    with pytest.raises(DataMissing, match=r"CIFAR-100-C/frost.npy \(corruption 'frost'\) not found; set "
                                          r"probes.corruption.download: true, or download "
                                          r"https://zenodo.org/records/3555552/files/CIFAR-100-C.tar"):
        corruptions.prepare("cifar100", tmp_path)
    with pytest.raises(DataMissing, match="speckle_noise.npy"):  # the extra ones only when asked for
        (folder / "frost.npy").write_bytes((folder / "fog.npy").read_bytes())
        assert corruptions.prepare("cifar100", tmp_path)["n_per_severity"] == N
        corruptions.prepare("cifar100", tmp_path, extra=True)


def test_damaged_files_are_named(tmp_path):
    folder = tmp_path / "c"
    write_cifar_c(folder, names=["fog"])
    np.save(folder / "fog.npy", np.zeros((5 * N, 32, 32), np.uint8))
    with pytest.raises(DataDamaged, match=r"fog.npy: uint8 \(30, 32, 32\), expected uint8 \(30, 32, 32, 3\)"):
        corruptions.check(folder, ["fog"])
    (folder / "fog.npy").write_bytes(b"not numpy")
    with pytest.raises(DataDamaged, match="fog.npy: not a readable .npy file"):
        corruptions.check(folder, ["fog"])


def test_download_goes_to_zenodo_with_the_md5(tmp_path, monkeypatch):
    calls = []

    def fake(url, root, filename, md5):
        calls.append((url, filename, md5))
        write_cifar_c(tmp_path / "CIFAR-10-C")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake)
    with pytest.raises(DataMissing, match=r"CIFAR-10-C/gaussian_noise.npy \(corruption 'gaussian_noise'\) not "
                                          r"found, and 15 more of its files"):  # no download unless asked for
        corruptions.prepare("cifar10", tmp_path)
    assert not calls
    assert corruptions.prepare("cifar10", tmp_path, download=True)["n_per_severity"] == N
    assert calls == [("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar", "CIFAR-10-C.tar",
                      "56bf5dcef84df0e2308c6dcbcbbd8499")]
    corruptions.prepare("cifar10", tmp_path, download=True)  # complete: no second download
    assert len(calls) == 1


class ChannelMeans(torch.nn.Module):
    """logits = W · (per-channel mean of the normalized image) + b: a known function."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.as_tensor(w), torch.as_tensor(b)

    def forward(self, x):
        return x.double().mean((2, 3)) @ self.w.T + self.b


def _by_hand(images_nhwc, labels, w, b, mean, std):
    """Accuracy (%) and mean NLL in numpy."""
    x = (images_nhwc / 255.0 - np.asarray(mean)) / np.asarray(std)
    logits = x.mean((1, 2)) @ np.asarray(w).T + np.asarray(b)
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    return 100.0 * (logits.argmax(1) == labels).mean(), -logp[np.arange(len(labels)), labels].mean()


def test_corruption_metrics_match_hand_computed_values(tmp_path):
    rng = np.random.default_rng(1)
    w, b = rng.normal(0, 3, (10, 3)), rng.normal(0, 0.1, 10)
    names = ["gaussian_noise", "fog"]
    arrays, labels = write_cifar_c(tmp_path, names=names)
    clean = torch.from_numpy(rng.integers(0, 256, (N, 3, 32, 32), dtype=np.uint8))
    mean, std = mean_std("cifar100")
    df = corruption_metrics(ChannelMeans(w, b), tmp_path, names, [1, 2, 5], mean, std, resolve("cpu"),
                            clean, torch.from_numpy(labels[:N].astype(np.int64)), batch_size=4)
    assert len(df) == 6
    clean_acc, clean_nll = _by_hand(clean.numpy().transpose(0, 2, 3, 1), labels[:N], w, b, mean, std)
    for row in df.itertuples():
        block = slice((row.severity - 1) * N, row.severity * N)
        acc, nll = _by_hand(arrays[row.corruption][block], labels[block], w, b, mean, std)
        assert row.accuracy == pytest.approx(acc) and row.nll == pytest.approx(nll, rel=1e-6)
        assert row.clean_accuracy == pytest.approx(clean_acc) and row.clean_nll == pytest.approx(clean_nll, rel=1e-6)
        assert row.n_images == N
    assert len(set(df["accuracy"])) > 1  # the rows differ: the check above is not vacuous


def _per_image_by_hand(images_nhwc, labels, w, b, mean, std):
    """Per image: argmax == label and NLL, in numpy."""
    x = (images_nhwc / 255.0 - np.asarray(mean)) / np.asarray(std)
    logits = x.mean((1, 2)) @ np.asarray(w).T + np.asarray(b)
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    return logits.argmax(1) == labels, -logp[np.arange(len(labels)), labels]


def test_corruption_images_match_hand_computed_values_and_their_means_are_the_table(tmp_path):
    """Through compute with a seeded subset: one row per (corruption, severity, image), image
    = the index of the clean test image; the table is their means, exactly."""
    from vitprobe.probes.corruption import PROBE, headline
    from vitprobe.probes.corruption.measure import compute
    rng = np.random.default_rng(2)
    w, b = rng.normal(0, 3, (10, 3)), rng.normal(0, 0.1, 10)
    clean = rng.integers(0, 256, (N, 3, 32, 32), dtype=np.uint8)
    arrays, labels = write_cifar_c(tmp_path, clean=clean)
    test_labels = torch.from_numpy(labels[:N].astype(np.int64))
    mean, std = mean_std("cifar100")
    df, per = compute(ChannelMeans(w, b), tmp_path, torch.from_numpy(clean), test_labels, mean, std,
                      severities=[2, 5], n_images=4, seed=1, batch_size=3, device="cpu")
    assert list(per.columns) == [c.name for c in PROBE.tables["corruption_images"]]
    schema = pa.schema([(c.name, c.dtype) for c in PROBE.tables["corruption_images"]])
    assert [str(t) for t in per.drop(columns="corruption").dtypes] == ["int64", "int64", "bool", "float64", "bool",
                                                                       "float64"]
    pd.testing.assert_frame_equal(pa.Table.from_pandas(per, schema=schema, preserve_index=False).to_pandas(), per)
    assert len(per) == 15 * 2 * 4 and len(df) == 15 * 2
    index = torch.randperm(N, generator=torch.Generator().manual_seed(1))[:4].sort().values.numpy()
    clean_correct, clean_nll = _per_image_by_hand(clean[index].transpose(0, 2, 3, 1), labels[index], w, b, mean, std)
    for (name, severity), rows in per.groupby(["corruption", "severity"], sort=False):
        np.testing.assert_array_equal(rows["image"], index)
        block = (severity - 1) * N + index
        correct, nll = _per_image_by_hand(arrays[name][block], labels[block], w, b, mean, std)
        np.testing.assert_array_equal(rows["correct"], correct)
        np.testing.assert_allclose(rows["nll"], nll, rtol=1e-6)
        np.testing.assert_array_equal(rows["clean_correct"], clean_correct)
        np.testing.assert_allclose(rows["clean_nll"], clean_nll, rtol=1e-6)
        row = df[(df["corruption"] == name) & (df["severity"] == severity)].iloc[0]
        assert row["accuracy"] == 100.0 * np.mean(rows["correct"].to_numpy(dtype=float))
        assert row["nll"] == np.mean(rows["nll"].to_numpy())
        assert row["clean_accuracy"] == 100.0 * np.mean(rows["clean_correct"].to_numpy(dtype=float))
        assert row["clean_nll"] == np.mean(rows["clean_nll"].to_numpy())
        assert row["n_images"] == 4
    assert list(df[["corruption", "severity"]].itertuples(index=False, name=None)) == \
        [(c, s) for c in corruptions.CORRUPTIONS for s in (2, 5)]
    assert (per["nll"] != per["clean_nll"]).all()  # the corrupted copies differ from the clean images
    assert "mean corrupted accuracy" in headline(df, per)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained for one epoch by the CLI, and its test set in CIFAR-C files."""
    from conftest import tiny_vit_config, train_tiny_run

    from vitprobe.data import splits as data
    tmp = tmp_path_factory.mktemp("corruption")
    probes = {"corruption": {"folder": str(tmp / "C"), "severities": [1, 4], "n_images": 20, "batch_size": 7}}
    config = tiny_vit_config(tmp, probes, train_per_class=8, test_per_class=3, depth=1)
    plan, run, _ = train_tiny_run(config, tmp)  # checkpoint tmp/e1.pt
    test = data.load_split("synthetic", tmp / "data", train=False)
    write_cifar_c(tmp / "C", clean=test.images.numpy(), labels=test.labels.numpy())
    return plan, run, tmp


def test_corruption_probe_through_the_cli(trained, capsys):
    """The job writes 15 corruptions x 2 severities of the same 20 seeded test images; its
    numbers are the model's accuracy and NLL on exactly those corrupted images."""
    import torch.nn.functional as F

    from vitprobe.cli import main
    from vitprobe.data.augment import normalize
    from vitprobe.models.recipe import load_run_model as load_model
    plan, run, tmp = trained
    spec = plan.probe_spec(run, "corruption")
    out, out_images = tmp / "corruption_e1.parquet", tmp / "corruption_images_e1.parquet"
    assert main(["corruption", "--spec", json.dumps(spec), "--device", "cpu", "--checkpoint", str(tmp / "e1.pt"),
                 "--out", f"corruption={out}", "--out", f"corruption_images={out_images}"]) == 0
    df, per = pd.read_parquet(out), pd.read_parquet(out_images)
    assert len(per) == 30 * 20 and (per["epoch"] == 1).all()
    assert len(df) == 30 and set(df["severity"]) == {1, 4} and (df["n_images"] == 20).all()
    assert (df["epoch"] == 1).all() and (df["model"] == "vit_demo").all()
    model, _ = load_model(tmp / "e1.pt", spec)
    idx = torch.randperm(30, generator=torch.Generator().manual_seed(0))[:20].sort().values
    labels = np.load(tmp / "C/labels.npy").astype(np.int64)
    for row in df[df["corruption"].isin(["fog", "pixelate"])].itertuples():
        rows = (row.severity - 1) * 30 + idx.numpy()
        x = torch.from_numpy(np.load(tmp / f"C/{row.corruption}.npy")[rows].transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            logits = model(normalize(x, *mean_std("synthetic")))
        y = torch.from_numpy(labels[rows])
        assert row.accuracy == pytest.approx(100.0 * (logits.argmax(1) == y).double().mean().item())
        assert row.nll == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
        rows = per[(per["corruption"] == row.corruption) & (per["severity"] == row.severity)]
        np.testing.assert_array_equal(rows["image"], idx.numpy())  # the clean test images' indices
        np.testing.assert_array_equal(rows["correct"], (logits.argmax(1) == y).numpy())
        np.testing.assert_allclose(rows["nll"], F.cross_entropy(logits, y, reduction="none").numpy(), rtol=1e-5)
        assert row.accuracy == 100.0 * rows["correct"].mean()
        assert row.nll == pytest.approx(rows["nll"].mean(), rel=1e-12)
    err = capsys.readouterr().err
    assert "corruption: accuracy and NLL on 20 test images under 15 corruptions x 2 severities" in err
    assert "mean corrupted accuracy" in err


def test_corruption_probe_needs_a_folder_off_cifar(demo_config):
    from vitprobe.config.load import validate
    demo_config["probes"] = {"corruption": {}}
    with pytest.raises(Exception, match="probes.corruption.folder: required for data.dataset 'fashion_mnist_subset'"):
        validate(demo_config)


def _table(rows):
    base = {"dataset": "cifar100", "kernel_size": 0, "fraction": 1.0, "epoch": 5, "n_images": 10, "nll": 1.0,
            "clean_nll": 0.5}
    return pd.DataFrame([{**base, **r} for r in rows])


def test_fig_corruption_points_are_clean_vs_mean_over_the_15_corruptions(tmp_path):
    """Per model: x = clean accuracy, y = per-run mean over the 15 standard corruptions (the
    extra ones left out), then mean over seeds with the t-interval over the 2 seeds as bars
    (t_{1, 0.975} = 12.706); by hand."""
    from vitprobe.figures import corruption as fig
    rows = []
    for model, seed, clean, offset in [("a", 0, 80.0, 0.0), ("a", 1, 82.0, 4.0), ("b", 0, 70.0, 10.0)]:
        for k, name in enumerate(corruptions.CORRUPTIONS):
            for sev in (1, 5):
                rows.append({"model": model, "seed": seed, "corruption": name, "severity": sev,
                             "accuracy": 30.0 + k + sev + offset, "clean_accuracy": clean})
        rows.append({"model": model, "seed": seed, "corruption": "spatter", "severity": 1, "accuracy": 0.0,
                     "clean_accuracy": clean})
    table = _table(rows)
    series = [{"label": "A", "model": "a"}, {"label": "B", "model": "b"}, {"label": "C", "model": "c"}]
    points, missing = fig.accuracy_robustness_points(table, series, 5)
    mean_k = sum(range(15)) / 15 + 3.0  # mean of k + severity over 15 corruptions x severities 1, 5
    (la, _, xa, ya), (lb, _, xb, yb) = points
    t = 12.7062047  # the two seeds differ by 2 (clean) and 4 (corrupted): sd √2 and 2√2, half width t·sd/√2
    assert (la, xa.mean, xa.n) == ("A", 81.0, 2) and (xa.lo, xa.hi) == pytest.approx((81 - t, 81 + t))
    assert (ya.mean, ya.lo, ya.hi) == pytest.approx((30 + mean_k + 2.0, 30 + mean_k + 2 - 2 * t,
                                                     30 + mean_k + 2 + 2 * t))
    assert (lb, xb.mean, yb.mean) == ("B", 70.0, pytest.approx(40 + mean_k))
    assert missing == ["C"]
    fig.plot({"series": series, "epoch": 5}, {"corruption": table}, [tmp_path / "f.pdf", tmp_path / "f.png"])
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-" and (tmp_path / "f.png").stat().st_size > 1000
