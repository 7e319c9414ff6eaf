"""Models vitprobe did not train: weights files and their key layouts (the paper release's
included), timm models, class-folder image sets, imported runs in the plan, the Python API."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
from conftest import REPO, randomize_bn

import vitprobe
from vitprobe import api, models
from vitprobe.analysis.featuremaps import feature_maps, map_statistics, module_maps
from vitprobe.config.load import validate
from vitprobe.data import imagefolder
from vitprobe.data.registry import DataMissing
from vitprobe.errors import ConfigError
from vitprobe.models import weights
from vitprobe.probes.fourier.measure import relative_log_amplitude
from vitprobe.probes.hessian import measure as hessian_probe
from vitprobe.probes.variance.measure import feature_map_variance


def _images(tmp_path, classes=("n01", "n02", "n03"), per_class=3):
    """A tiny class-folder image set of random JPEGs of varied sizes."""
    from PIL import Image
    rng = np.random.default_rng(0)
    for c in classes:
        (tmp_path / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.JPEG")
    return tmp_path


class NotAWeight:
    """A pickled object in a weights file: what weights_only=True refuses."""


# ---- weights files ----------------------------------------------------------------------

def _tiny_resnet():
    return randomize_bn(models.create("resnet18_cifar", num_classes=10, widths=(4, 4, 8, 8))).eval()


@pytest.mark.parametrize("name, wrap", [("w.pth", None), ("w.pth.tar", "state_dict"), ("w.pt", "model"),
                                        ("w.safetensors", None)])
def test_state_dict_round_trip_through_a_file(tmp_path, name, wrap):
    model = _tiny_resnet()
    state = model.state_dict()
    path = tmp_path / name
    if name.endswith(".safetensors"):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({wrap: state, "epoch": 3} if wrap else state, path)
    loaded = api.load_model("resnet18_cifar", str(path), num_classes=10, widths=(4, 4, 8, 8))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_a_file_that_is_no_state_dict_or_does_not_fit_says_what(tmp_path):
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(weights.WeightsError, match="holds no state dict"):
        weights.read_state_dict(tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(weights.WeightsError, match="junk.pth was not written by torch.save"):
        weights.read_state_dict(tmp_path / "junk.pth")
    torch.save({"state_dict": {"w": torch.ones(1)}, "args": NotAWeight()}, tmp_path / "pickled.pth")
    with pytest.raises(weights.WeightsError, match="cannot be read safely with torch.load.weights_only=True"):
        weights.read_state_dict(tmp_path / "pickled.pth")
    torch.save(_tiny_resnet().state_dict(), tmp_path / "small.pth")
    with pytest.raises(weights.WeightsError, match=r"small.pth does not fit the model CifarResNet: \d+ keys differ in "
                                                   r"shape, first conv1.weight \(4, 3, 3, 3\) vs \(64, 3, 3, 3\)"):
        api.load_model("resnet18_cifar", str(tmp_path / "small.pth"), num_classes=10)
    state = _tiny_resnet().state_dict()
    state["extra.weight"] = state.pop("fc.weight")
    torch.save(state, tmp_path / "keys.pth")
    with pytest.raises(weights.WeightsError, match=r"1 of the model's keys missing, first fc.weight; 1 key not the "
                                                   r"model's, first extra.weight"):
        api.load_model("resnet18_cifar", str(tmp_path / "keys.pth"), num_classes=10, widths=(4, 4, 8, 8))
    with pytest.raises(weights.WeightsError, match="no such file weights.zip; allowed: init, timm, an http"):
        api.load_model("resnet18_cifar", "weights.zip")
    with pytest.raises(ValueError, match="unknown model 'no_such_net'"):
        api.load_model("no_such_net")


def test_a_url_is_fetched_once_and_refused_without_download(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, dst, hash_prefix=None):
        calls.append((url, hash_prefix))
        torch.save(_tiny_resnet().state_dict(), dst)
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    url = "https://example.org/files/resnet-0123abcd.pth"
    with pytest.raises(weights.WeightsError, match="downloads are off"):
        weights.fetch(url, tmp_path, download=False)
    assert weights.fetch(url, tmp_path, download=True) == tmp_path / "weights" / "resnet-0123abcd.pth"
    weights.fetch(url, tmp_path, download=True)
    assert calls == [(url, "0123abcd")]  # torch hub's hash convention; the second call finds the file

    def failing(url, dst, hash_prefix=None):
        raise OSError("Name or service not known")
    monkeypatch.setattr(torch.hub, "download_url_to_file", failing)
    with pytest.raises(weights.WeightsError, match="cannot fetch weights https://example.org/x.pth: Name or service"):
        weights.fetch("https://example.org/x.pth", tmp_path, download=True)


# ---- the paper release's key layouts --------------------------------------------------------
# A transcription of the release's CIFAR ResNet-50 (xxxnell/how-do-vits-work, models/resnet.py
# with stem=False, models/resnet_dnn_block.py Bottleneck, models/classifier_block.py GAPBlock):
# the module names and the forward pass that its checkpoints' keys come from.

class _ReleaseBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, channels, stride=1):
        super().__init__()
        out = channels * 4
        self.shortcut = nn.Sequential(*([nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)]
                                        if stride != 1 or cin != out else []))
        self.conv1 = nn.Sequential(nn.Conv2d(cin, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, stride, 1, bias=False), nn.BatchNorm2d(channels),
                                   nn.ReLU())
        self.conv3 = nn.Sequential(nn.Conv2d(channels, out, 1, bias=False), nn.BatchNorm2d(out))
        self.relu = nn.ReLU()
        self.sd = nn.Identity()

    def forward(self, x):
        skip = self.shortcut(x)
        return self.relu(self.sd(self.conv3(self.conv2(self.conv1(x)))) + skip)


class _ReleaseGAP(nn.Module):
    def __init__(self, cin, num_classes):
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.dense = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.dense(self.gap(x).flatten(1))


class _ReleaseResNet50(nn.Module):
    def __init__(self, num_classes=100):
        super().__init__()
        self.layer0 = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        cin = 64
        for i, (width, n, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
            blocks = []
            for j in range(n):
                blocks.append(_ReleaseBottleneck(cin, width, stride if j == 0 else 1))
                cin = width * 4
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        for i in range(1, 5):
            setattr(self, f"smooth{i}", nn.Sequential())
        self.classifier = nn.Sequential(_ReleaseGAP(2048, num_classes))

    def forward(self, x):
        x = self.layer0(x)
        for i in range(1, 5):
            x = getattr(self, f"smooth{i}")(getattr(self, f"layer{i}")(x))
        return self.classifier(x)


def test_release_resnet50_checkpoint_loads_into_resnet50_cifar_with_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    release = randomize_bn(_ReleaseResNet50()).eval()
    assert "layer1.0.shortcut.0.weight" in release.state_dict() and "classifier.0.dense.weight" in release.state_dict()
    path = tmp_path / "resnet_50_cifar100_691cc9a9e4.pth.tar"
    torch.save({"epoch": 300, "state_dict": release.state_dict(), "optimizer": {}}, path)
    ours = api.load_model("resnet50_cifar", str(path), num_classes=100)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), release(x), rtol=1e-5, atol=1e-5)


def test_timm05_pit_and_swin_layouts_load_into_timm1_classes(tmp_path):
    """The release's PiT-Ti and Swin-Ti are timm 0.5 classes: a stage's pooling/merging at its
    end (`transformers.0.pool`, `layers.0.downsample`), Swin's classifier `head`, its
    relative_position_index and attn_mask buffers saved. Built here from today's state dicts
    by moving the names back, they must load and give the same outputs."""
    torch.manual_seed(0)
    pit = models.create("pit_ti_cifar", num_classes=100).eval()
    old = {re.sub(r"^transformers\.(\d+)\.pool\.", lambda m: f"transformers.{int(m[1]) - 1}.pool.", k): v
           for k, v in pit.state_dict().items()}
    assert "transformers.0.pool.conv.weight" in old
    fresh = models.create("pit_ti_cifar", num_classes=100).eval()
    weights.load_into(fresh, _save(old, tmp_path / "pit.pth.tar"))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(fresh(x), pit(x), rtol=0, atol=0)

    swin = models.create("swin_ti_cifar", num_classes=100, qkv_bias=False).eval()
    old = {}
    for k, v in swin.state_dict().items():
        k = re.sub(r"^layers\.(\d+)\.downsample\.", lambda m: f"layers.{int(m[1]) - 1}.downsample.", k)
        old[k.replace("head.fc.", "head.")] = v
    for name, buf in swin.named_buffers():  # persistent in timm 0.5
        if name.endswith(("relative_position_index", "attn_mask")):
            old[name] = buf
    assert "layers.0.downsample.reduction.weight" in old and "head.weight" in old
    assert any(k.endswith("attn_mask") for k in old)
    fresh = models.create("swin_ti_cifar", num_classes=100, qkv_bias=False).eval()
    weights.load_into(fresh, _save(old, tmp_path / "swin.pth.tar"))
    torch.testing.assert_close(fresh(x), swin(x), rtol=0, atol=0)


def _save(state, path):
    torch.save({"state_dict": state}, path)
    return str(path)


# ---- feature maps of timm's ImageNet classes, odd sides -----------------------------------

@pytest.mark.parametrize("arch, sides, kinds", [
    ("pit_ti_224", [27, 14, 7], {"embed", "msa", "mlp", "pool"}),
    ("swin_tiny_patch4_window7_224", [56, 28, 14, 7], {"embed", "msa", "mlp", "pool"}),
    ("resnet50", [56, 28, 14, 7], {"stem", "conv"}),
    ("vit_tiny_patch16_224", [14], {"embed", "msa", "mlp"}),
])
def test_timm_imagenet_models_give_tagged_maps_and_streamed_statistics_equal_stored_ones(arch, sides, kinds):
    model = models.create_any(arch).eval()
    x = torch.randn(2, 3, 224, 224)
    maps = feature_maps(model, x)
    assert sorted({m.tensor.shape[-1] for m in maps}, reverse=True) == sides
    assert {m.kind for m in maps} == kinds
    stats = map_statistics(model, x, {"f": relative_log_amplitude, "v": feature_map_variance})
    assert [(s[1], s[2], s[4]) for s in stats] == [(m.name, m.kind, m.tensor.shape[-1]) for m in maps]
    for m, s in zip(maps, stats):
        torch.testing.assert_close(s[5]["f"], relative_log_amplitude(m.tensor))
        assert s[5]["v"] == feature_map_variance(m.tensor)
        assert len(s[5]["f"]) == (m.tensor.shape[-1] + 1) // 2


def test_module_maps_read_any_model_by_module_names():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    x = torch.randn(2, 3, 9, 9)
    maps = module_maps(model, x, ["0", "2"])
    torch.testing.assert_close(maps[0].tensor, model[0](x))
    torch.testing.assert_close(maps[1].tensor, model(x))
    assert [m.kind for m in maps] == ["module", "module"] and [m.depth for m in maps] == [0.0, 1.0]
    with pytest.raises(ValueError, match="'nope' are not in Sequential"):
        module_maps(model, x, ["nope"])
    df, _ = api.variance(model, x, modules=["0", "2"])
    assert df["variance"].tolist() == [feature_map_variance(model[0](x)), feature_map_variance(model(x))]


# ---- class-folder image sets ------------------------------------------------------------------

def test_image_folder_uses_the_models_own_preprocessing(tmp_path):
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    root = _images(tmp_path / "val")
    model = models.create_any("vit_tiny_patch16_224")
    transform, mean, std = imagefolder.eval_transform(model)
    sample = imagefolder.ImageFolderSample(root, transform, n_images=5, seed=1)
    x, y = sample.chunk(0, 5)
    assert x.dtype == torch.uint8 and x.shape == (5, 3, 224, 224) and len(sample) == 5
    timm_transform = create_transform(**resolve_data_config({}, model=model), is_training=False)
    from vitprobe.data.augment import normalize
    for img, label, path in zip(x, y, sample.paths):
        truth = timm_transform(Image.open(path).convert("RGB"))
        torch.testing.assert_close(normalize(img[None], mean, std)[0], truth, rtol=0, atol=1e-5)
        assert sample.classes[label] == path.parent.name
    again = imagefolder.ImageFolderSample(root, transform, n_images=5, seed=1)
    assert again.paths == sample.paths and len(imagefolder.ImageFolderSample(root, transform)) == 9


def test_image_folder_errors_name_the_key_and_the_layout(tmp_path):
    with pytest.raises(DataMissing, match=r"data.imagenet_dir: .*missing is not a directory; expected <dir>/<class>/"):
        imagefolder.scan(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.JPEG").write_bytes(b"")
    with pytest.raises(DataMissing, match="has no class sub-directories"):
        imagefolder.scan(tmp_path / "flat")
    (tmp_path / "empty" / "n01").mkdir(parents=True)
    with pytest.raises(DataMissing, match="hold no images"):
        imagefolder.scan(tmp_path / "empty")


# ---- the plan ------------------------------------------------------------------------------

def _config(tmp_path, **models_):
    return {"data": {"dataset": "synthetic", "root": str(tmp_path), "download": False,
                     "imagenet_dir": str(tmp_path / "val")},
            "models": models_ or {"rn": {"arch": "resnet50", "weights": "init"}},
            "experiments": {"inet": {"models": list(models_ or ["rn"]), "dataset": "imagenet"},
                            "cifar": {"models": ["resnet18_cifar"]}},
            "train": {"epochs": 2, "warmup_epochs": 0, "checkpoint_epochs": [0, 2]},
            "probes": {"fourier": {"epochs": [2]}, "hessian": {"epochs": [2]}},
            "figures": {"fig_fourier": {"experiments": ["inet"], "epoch": 0,
                                        "series": [{"label": m, "model": m} for m in models_ or ["rn"]]}}}


def test_imported_runs_have_one_checkpoint_and_no_training_probes_on_imagenet(tmp_path):
    plan = validate(_config(tmp_path))
    inet = plan.run("imagenet-rn-k0-f1-s0")
    cifar = plan.run("synthetic-resnet18_cifar-k0-f1-s0")
    assert plan.imported(inet) and not plan.imported(cifar)
    assert plan.trained_runs == [cifar] and plan.imported_runs == [inet]
    assert plan.run_checkpoint_epochs(inet) == [0] and plan.run_checkpoint_epochs(cifar) == [0, 2]
    assert plan.run_probe_epochs(inet, "fourier") == [0] and plan.run_probe_epochs(inet, "hessian") == []
    assert plan.train_spec(inet)["data"]["dataset"] == "imagenet"
    assert "imagenet_dir" not in plan.train_spec(cifar)["data"]  # trained runs keep their hashes
    assert plan.train_spec(inet)["model"] == {"arch": "resnet50", "kwargs": {}, "weights": "init"}


@pytest.mark.parametrize("change, message", [
    (lambda c: c["models"]["rn"].update(arch="resnet_fifty"),
     "models.rn.arch: unknown model 'resnet_fifty': neither a vitprobe model"),
    (lambda c: c["models"]["rn"].update(weights="https://example.org/w.pth"),
     "models.rn.weights: https://example.org/w.pth is a URL, but data.download is false"),
    (lambda c: c["models"]["rn"].update(weights="nowhere/w.pth"),
     "models.rn.weights: no such file nowhere/w.pth .folder nowhere does not exist.; allowed: init, timm"),
    (lambda c: c["models"]["rn"].pop("weights"), "models.rn.arch: unknown model 'resnet50'; allowed: .*with models.rn"),
    (lambda c: c["experiments"]["inet"]["models"].append("resnet18_cifar"),
     "experiments.inet.dataset: imagenet has no training split.*resnet18_cifar would be trained"),
    (lambda c: c["figures"]["fig_fourier"].update(epoch=2),
     r"figures.fig_fourier.epoch: 2 is not analyzed by probes.fourier for run imagenet-rn-k0-f1-s0; allowed: \[0\]"),
    (lambda c: c["figures"]["fig_fourier"].update(figure="fig_fouriers"),
     "figures.fig_fourier.figure: unknown figure 'fig_fouriers'; allowed: fig_hessian"),
    (lambda c: c["figures"].update(fig_hessian={"experiments": ["inet"], "epoch": 0,
                                                "series": [{"label": "rn", "model": "rn"}]}),
     "figures.fig_hessian: needs probes.hessian, which reads training .or CIFAR-C. images, but run imagenet-rn"),
])
def test_bad_weights_configs_fail_before_any_job(tmp_path, change, message):
    config = _config(tmp_path)
    change(config)
    with pytest.raises(ConfigError, match=message):
        validate(config)


def test_a_mistyped_weights_path_says_no_such_file_and_the_nearest_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "model.safetensors").write_bytes(b"x")  # only its name matters here
    (tmp_path / "mine" / "model.ckpt").write_bytes(b"x")

    def error(source):
        with pytest.raises(weights.WeightsError) as exc:
            weights.check_source(source, "models.mine.weights", download=False)
        return str(exc.value)

    assert error("mine/model.safetensor") == (
        "models.mine.weights: no such file mine/model.safetensor (did you mean mine/model.safetensors?); allowed: "
        "init, timm, an http(s) URL or a path of a file ending in .pth, .pth.tar, .pt, .bin, .safetensors")
    assert error("mine/model.ckpt").startswith("models.mine.weights: mine/model.ckpt is a file, but its extension "
                                               "(.ckpt) is not one vitprobe reads; allowed: .pth, .pth.tar")
    assert "no such file other/w.pth (folder other does not exist); allowed" in error("other/w.pth")
    assert "no such file mine/w.pth; allowed" in error("mine/w.pth")  # nothing close in mine/
    assert "'timmm' is not a weights source (did you mean timm?); allowed: init, timm" in error("timmm")
    assert "mine is a folder; allowed" in error("mine")
    assert "the URL https://example.org/w.zip names no file ending in .pth" in error("https://example.org/w.zip")
    weights.check_source("mine/model.safetensors", "models.mine.weights", download=False)
    config = _config(tmp_path, rn={"arch": "resnet50", "weights": "mine/model.safetensor"})
    with pytest.raises(ConfigError, match=r"models.rn.weights: no such file mine/model.safetensor \(did you mean "):
        validate(config)


def _fit_config(source, arch="resnet18_cifar", kwargs=None):
    return {"data": {"dataset": "synthetic", "root": "data", "download": False},
            "models": {"mine": {"arch": arch, "kwargs": kwargs if kwargs is not None else {"widths": [4, 4, 8, 8]},
                                "weights": str(source)}},
            "experiments": {"x": {"models": ["mine"]}},
            "train": {"epochs": 1, "warmup_epochs": 0, "checkpoint_epochs": [1]}}


def test_a_weights_file_of_another_architecture_fails_the_config_check(tmp_path):
    from safetensors.torch import save_file

    from vitprobe.models import recipe

    good = _tiny_resnet().state_dict()
    torch.save(good, tmp_path / "good.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in good.items()}, "epoch": 3}, tmp_path / "dp.pth.tar")
    save_file({k: v.contiguous() for k, v in good.items()}, str(tmp_path / "good.safetensors"))
    for name in ("good.pt", "dp.pth.tar", "good.safetensors"):  # unwrapped and prefix-stripped as the import does
        validate(_fit_config(tmp_path / name))

    wrong = models.create("resnet18_cifar", num_classes=100, widths=(4, 4, 8, 8)).state_dict()
    wrong["extra.weight"] = wrong.pop("fc.bias")
    torch.save(wrong, tmp_path / "x.pt")
    save_file({k: v.contiguous() for k, v in wrong.items()}, str(tmp_path / "x.safetensors"))
    problem = ("1 key differs in shape, first fc.weight (100, 8) vs (10, 8) of the model; 1 of the model's keys "
               "missing, first fc.bias; 1 key not the model's, first extra.weight")
    for name in ("x.pt", "x.safetensors"):
        with pytest.raises(ConfigError) as exc:
            validate(_fit_config(tmp_path / name))
        assert str(exc.value) == (f"config: models.mine.weights: {tmp_path / name} does not fit resnet18_cifar "
                                  f"(widths=[4, 4, 8, 8], num_classes=10, for synthetic): {problem}; give that "
                                  f"model's weights, or change models.mine.arch/kwargs")

    # the import job refuses exactly that, with the same words, and loads what the check accepts
    plan = validate(_fit_config(tmp_path / "dp.pth.tar"))
    spec = plan.train_spec(plan.runs[0])
    recipe.import_weights(spec, tmp_path / "e0.pt")
    spec["model"]["weights"] = str(tmp_path / "x.pt")
    assert recipe.weights_misfit(spec) == problem
    with pytest.raises(weights.WeightsError, match=re.escape(problem)):
        recipe.import_weights(spec, tmp_path / "e0_x.pt")

    # the release's key layout is converted before the check too (a state dict of meta tensors: no data)
    for classes, fits in ((10, True), (100, False)):
        with torch.device("meta"):
            release = _ReleaseResNet50(num_classes=classes)
        torch.save({"epoch": 300, "state_dict": release.state_dict()}, tmp_path / f"release{classes}.pth.tar")
        config = _fit_config(tmp_path / f"release{classes}.pth.tar", arch="resnet50_cifar", kwargs={})
        if fits:
            validate(config)
        else:
            with pytest.raises(ConfigError, match=r"2 keys differ in shape, first fc.weight \(100, 2048\) vs "
                                                  r"\(10, 2048\) of the model; give"):
                validate(config)


def test_import_weights_writes_a_checkpoint_every_probe_reads(tmp_path):
    from vitprobe.device import resolve
    from vitprobe.models import recipe
    from vitprobe.probe_runner import run_probe

    _images(tmp_path / "val")
    plan = validate(_config(tmp_path, vt={"arch": "vit_tiny_patch16_224", "weights": "init",
                                          "kwargs": {"depth": 2}}))
    run = plan.run("imagenet-vt-k0-f1-s0")
    ckpt = tmp_path / "e0.pt"
    model = recipe.import_weights(plan.train_spec(run), ckpt)
    loaded = recipe.load_checkpoint(ckpt)
    assert type(loaded).__name__ == "VisionTransformer" and len(loaded.blocks) == 2
    x = torch.randn(1, 3, 224, 224)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    spec = {**plan.probe_spec(run, "fourier"), "probe": {"n_images": 4, "seed": 0, "epochs": [0]}}
    df, per_image = run_probe("fourier", spec, ckpt, {"fourier": tmp_path / "f.parquet",
                                                      "fourier_images": tmp_path / "fi.parquet"}, resolve("cpu"))
    import pandas as pd
    table = pd.read_parquet(tmp_path / "f.parquet")
    assert sorted(set(pd.read_parquet(tmp_path / "fi.parquet")["image"])) == [0, 1, 2, 3]
    assert len(per_image) == 4 * len(df)
    assert set(table["weights"]) == {"init"} and set(table["epoch"]) == {0} and set(table["dataset"]) == {"imagenet"}
    assert df["n_images"].iloc[0] == 4 and sorted(df["kind"].unique()) == ["embed", "mlp", "msa"]


# ---- the Python API -------------------------------------------------------------------------

def test_vit_ti_cifar_has_timm05s_key_names():
    """The release's ViT-Ti checkpoint is a timm 0.5 VisionTransformer(img_size=32, patch_size=2,
    embed_dim=192, depth=12, num_heads=3, qkv_bias=False) state dict; timm 0.5's names for it
    (transcribed from its vision_transformer.py: cls_token, pos_embed, patch_embed.proj, per
    block norm1, attn.qkv (no bias), attn.proj, norm2, mlp.fc1, mlp.fc2; norm, head) are
    vit_ti_cifar's, shapes included, so it loads as it is."""
    block = {"norm1.weight": [192], "norm1.bias": [192], "attn.qkv.weight": [576, 192], "attn.proj.weight": [192, 192],
             "attn.proj.bias": [192], "norm2.weight": [192], "norm2.bias": [192], "mlp.fc1.weight": [768, 192],
             "mlp.fc1.bias": [768], "mlp.fc2.weight": [192, 768], "mlp.fc2.bias": [192]}
    timm05 = {"cls_token": [1, 1, 192], "pos_embed": [1, 257, 192], "patch_embed.proj.weight": [192, 3, 2, 2],
              "patch_embed.proj.bias": [192], "norm.weight": [192], "norm.bias": [192], "head.weight": [100, 192],
              "head.bias": [100], **{f"blocks.{i}.{k}": v for i in range(12) for k, v in block.items()}}
    ours = {k: list(v.shape) for k, v in models.create("vit_ti_cifar", num_classes=100).state_dict().items()}
    assert ours == timm05


@pytest.mark.parametrize("page, heading", [("README.md", "## Analyse your own model"),
                                           ("docs/guide/api.md", "# Analysing your own model")])
def test_readme_api_example_runs_as_written(tmp_path, page, heading):
    """The first ```python block under the heading: the README's small example and the API page's."""
    text = (REPO / page).read_text()
    section = text.split(heading)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nep" in out.stdout and "conv" in out.stdout


def test_api_hessian_takes_any_loss_and_matches_the_dense_hessian():
    """A linear model with a squared-error loss: H = 2/B·XᵀX (per output) + wd·I, exactly."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    eigs, summary = api.hessian(model, [(x, y)], k=3, weight_decay=0.1, loss=lambda out, t: ((out - t) ** 2).mean(),
                                trace_samples=2)
    truth = np.sort(np.linalg.eigvalsh((2 / 8 * x.T @ x).numpy()) + 0.1)[::-1]
    np.testing.assert_allclose(eigs["eigenvalue"].to_numpy(), truth, rtol=1e-8)
    assert summary["nep"].iloc[0] == 0 and summary["n_params"].iloc[0] == 3 and summary["trace_samples"].iloc[0] == 2
    np.testing.assert_allclose(summary["ape"].iloc[0], truth.mean(), rtol=1e-8)


def test_api_defaults_are_the_pipelines_read_from_the_schema():
    """Every keyword argument of api.<probe> with a namesake in probes.<probe> defaults to the
    schema's value, weight_decay to train.weight_decay: what the pipeline passes."""
    import inspect

    from vitprobe.catalog import PROBES
    from vitprobe.config.load import defaults, schema
    blocks = schema()["properties"]["probes"]["properties"]
    checked = []
    for name in PROBES:
        params = inspect.signature(getattr(api, name)).parameters
        for key, prop in blocks[name]["properties"].items():
            if key in params and params[key].kind is params[key].KEYWORD_ONLY and "default" in prop:
                assert params[key].default == prop["default"] == api.pipeline_defaults(name)[key], (name, key)
                checked.append(f"{name}.{key}")
        if "weight_decay" in params:
            assert params["weight_decay"].default == defaults("train")["weight_decay"] == 0.05, name
            checked.append(f"{name}.weight_decay")
    assert {"hessian.k", "hessian.trace_samples", "hessian.weight_decay", "landscape.points_2d",
            "landscape.weight_decay", "robustness.eps", "eval.batch_size"} <= set(checked)
    assert "train.weight_decay" in api.hessian.__doc__ and "trace_samples=20" in api.hessian.__doc__
    assert api.eval is api.evaluate and api.hessian.__wrapped__ is hessian_probe.compute


def test_api_hessian_with_defaults_is_the_pipelines_loss_with_weight_decay():
    """Called with defaults, the Hessian is of loss + train.weight_decay/2·‖θ‖² (0.05, the
    pipeline's), with the pipeline's 20 trace samples; weight_decay=0 gives the loss's alone."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)

    def mse(out, t):
        return ((out - t) ** 2).mean()
    truth = np.sort(np.linalg.eigvalsh((2 / 8 * x.T @ x).numpy()))[::-1]
    eigs, summary = api.hessian(model, (x, y), k=3, loss=mse)
    np.testing.assert_allclose(eigs["eigenvalue"].to_numpy(), truth + 0.05, rtol=1e-8)
    assert summary["trace_samples"].iloc[0] == 20
    assert summary["trace"].iloc[0] - summary["trace_nll"].iloc[0] == pytest.approx(0.05 * 3)  # wd·n_params
    eigs0, _ = api.hessian(model, (x, y), k=3, loss=mse, weight_decay=0.0, trace_samples=0)
    np.testing.assert_allclose(eigs0["eigenvalue"].to_numpy(), truth, rtol=1e-8)


def test_api_batches_take_one_pair_or_an_iterable_of_pairs():
    from vitprobe.analysis.inputs import as_batches
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).double()
    x, y = torch.randn(4, 3, 4, 4, dtype=torch.float64), torch.randint(0, 3, (4,))
    kw = dict(k=2, trace_samples=0)
    one = api.hessian(model, (x, y), **kw)[0]
    for same in ([x, y], [(x, y)], iter([(x, y)]), ((x, y) for _ in range(1))):
        assert one.equals(api.hessian(model, same, **kw)[0])
    two = api.hessian(model, [(x[:2], y[:2]), (x[2:], y[2:])], **kw)[0]  # a list of two pairs: two batches
    assert sorted(two["batch"].unique()) == [0, 1] and (two["batch_size"] == 2).all()
    assert len(api.landscape(model, (x, y), points_1d=3, points_2d=0)) == 3
    # as_batches: lists stay lists, an iterator stays lazy
    assert len(as_batches((x, y))) == 1 and len(as_batches([(x, y), (x, y)])) == 2
    drawn = []
    lazy = as_batches(drawn.append(b) or b for b in [(x, y)])
    assert not drawn and len(list(lazy)) == 1 and len(drawn) == 1
    for bad, message in [(x, "batches is a tensor of shape \\(4, 3, 4, 4\\)"),
                         ((x, y[:3]), "shapes \\(4, 3, 4, 4\\) and \\(3,\\) differ in their first dimension"),
                         ([(x, y, y)], "batch 0 is a tuple of 3 items"),
                         (iter([(x, y), x]), "batch 1 is a tensor"),
                         (3, "batches is of type int")]:
        with pytest.raises(ValueError, match=message) as info:
            api.hessian(model, bad, **kw)
        assert "allowed: one (inputs, targets) pair" in str(info.value) and "\n" not in str(info.value)


def test_api_tables_have_the_pipelines_columns_and_landscape_takes_any_loss():
    from vitprobe.results import TABLES
    torch.manual_seed(0)
    model = models.create("resnet18_cifar", num_classes=10, widths=(4, 4, 8, 8)).eval()
    x_u8 = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    x, y = (x_u8.float() / 255 - 0.5) / 0.25, torch.randint(0, 10, (6,))
    robustness, robustness_images = api.robustness(model, x_u8, y, (0.5,) * 3, (0.25,) * 3, freqs=[0.5], batch_size=4)
    fourier, fourier_images = api.fourier(model, x, batch_size=4)
    variance, variance_images = api.variance(model, x)
    frames = {"fourier": fourier, "fourier_images": fourier_images, "variance": variance,
              "variance_images": variance_images, "robustness": robustness, "robustness_images": robustness_images,
              "landscape": api.landscape(model, [(x, y)], points_1d=3, points_2d=2, weight_decay=0.1)}
    eigs, summary = api.hessian(model, [(x[:2], y[:2])], k=2, method="power", tol=1e-2)
    frames.update(hessian=eigs, hessian_summary=summary)
    for table, df in frames.items():
        assert sorted(df.columns) == sorted(c.name for c in TABLES[table]), table
    assert frames["fourier"]["n_images"].iloc[0] == 6  # two chunks, weighted by size

    def mse(out, target):
        return (out ** 2).mean()
    line = api.landscape(model, [(x, y)], loss=mse, points_1d=3, points_2d=0, style="li2018")
    origin = line[line["x"] == 0].iloc[0]
    assert origin["nll"] == pytest.approx(mse(model(x), y).item(), rel=1e-6)


def test_timm_weights_without_download_use_the_cache_only(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from vitprobe.models import recipe
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    config = _config(tmp_path, r10={"arch": "resnet10t", "weights": "timm"})
    plan = validate(config)
    spec = plan.train_spec(plan.run("imagenet-r10-k0-f1-s0"))
    with pytest.raises(weights.WeightsError, match="cannot get timm's pretrained weights of resnet10t .*downloads are "
                                                   "off"):
        recipe.import_weights(spec, tmp_path / "e0.pt", download=False)
    assert not (tmp_path / "e0.pt").exists()


def test_import_vitprobe_stays_torch_free_and_exports_load_model():
    code = ("import sys, vitprobe; assert 'torch' not in sys.modules; f = vitprobe.load_model; "
            "assert 'torch' in sys.modules and f.__module__ == 'vitprobe.api'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_load_model_takes_a_path_object(tmp_path):
    """Every function that takes a path takes str and os.PathLike (pathlib.Path here)."""
    torch.manual_seed(0)
    source = timm.create_model("resnet10t", num_classes=3)
    path = tmp_path / "w.pth.tar"
    torch.save({"state_dict": source.state_dict()}, path)
    model = vitprobe.load_model("resnet10t", path, num_classes=3)
    for a, b in zip(model.state_dict().values(), source.state_dict().values()):
        assert torch.equal(a, b)


def test_library_calls_leave_the_process_as_they_found_it(monkeypatch):
    """No process-wide side effects: the model's train/eval flags come back, the global RNG is
    not reseeded, and the hub's offline switch is restored after an offline import."""
    import huggingface_hub.constants

    from vitprobe.models.recipe import hub_offline

    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4), nn.Dropout(0.5))
    model.train()
    model[2].eval()  # mixed modes must come back mixed
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 4, (6,))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    api.evaluate(model, images, labels, (0.5,) * 3, (0.25,) * 3)
    api.robustness(model, images, labels, (0.5,) * 3, (0.25,) * 3, freqs=(0.5,))
    assert model.training and model[1].training and not model[2].training
    assert torch.equal(torch.get_rng_state(), state)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = huggingface_hub.constants.HF_HUB_OFFLINE
    with hub_offline():
        assert huggingface_hub.constants.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.HF_HUB_OFFLINE == before and "HF_HUB_OFFLINE" not in os.environ
