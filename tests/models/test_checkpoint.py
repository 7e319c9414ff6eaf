"""Checkpoints rebuild their model without a config (format 2), format 1 still loads with a
spec, and a damaged or foreign file fails with one line that names it."""

import re

import pytest
import torch
from conftest import randomize_bn

import vitprobe
from vitprobe.config import identity
from vitprobe.config.job import JobSpec
from vitprobe.config.load import validate
from vitprobe.models import checkpoint
from vitprobe.models import recipe as recipes
from vitprobe.models.checkpoint import CheckpointError
from vitprobe.training.loop import ResumeError, load_resume


class NotAWeight:  # a custom class: torch.save pickles it, weights_only loading refuses it
    pass


@pytest.fixture
def specs(demo_config):
    """Training specs of a narrow ResNet-18 and of a local-MSA ViT with windows of side 5
    (not its default 3, so a recipe that dropped kernel_size would build another model)."""
    demo_config["data"]["dataset"] = "synthetic"
    demo_config["models"]["resnet_demo"]["kwargs"] = {"layers": [1, 1, 1, 1], "widths": [8, 8, 16, 16]}
    demo_config["models"]["lmsa_demo"]["kwargs"] = {"embed_dim": 16, "depth": 1, "num_heads": 2}
    demo_config["experiments"]["kernel_size"]["kernel_sizes"] = [5]
    demo_config["figures"] = {}
    demo_config["train"]["drop_path_rate"] = 0.1
    plan = validate(demo_config)
    pick = {"resnet": ("resnet_demo", 0), "lmsa": ("lmsa_demo", 5)}
    return {key: plan.train_spec(next(r for r in plan.runs if (r.model, r.kernel_size) == want and r.fraction == 1))
            for key, want in pick.items()}


def _save(spec, path):
    torch.manual_seed(0)
    model = randomize_bn(recipes.build_model(spec)).eval()  # non-trivial BN statistics and affine
    checkpoint.save(path, model, run=spec["run"], epoch=3, config_hash=identity.train_hash(spec),
                    recipe=JobSpec.of(spec).recipe)
    return model


def _one_line_naming(err, path) -> str:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    return msg


@pytest.mark.parametrize("key", ["resnet", "lmsa"])
def test_checkpoint_rebuilds_its_model_without_a_config(specs, tmp_path, key):
    path = tmp_path / "e3.pt"
    original = _save(specs[key], path)
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == 2
    recipe = payload["model_recipe"]
    assert recipe["arch"] == {"resnet": "resnet18_cifar", "lmsa": "lmsa_vit_cifar"}[key]
    assert recipe["num_classes"] == 10 and recipe["kwargs"]["drop_path_rate"] == 0.1
    assert recipe["kwargs"].get("kernel_size") == {"resnet": None, "lmsa": 5}[key]

    model = vitprobe.load_checkpoint(path)
    assert not model.training and {p.device.type for p in model.parameters()} == {"cpu"}
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = original(x)
        assert torch.equal(model(x), expected)
        assert not torch.allclose(torch.nn.Softmax(-1)(expected)[0], torch.full((10,), 0.1))  # not a constant net
    if key == "lmsa":  # the same weights with the default window (3) compute something else
        other = recipes.build_from_recipe({**recipe, "kwargs": {**recipe["kwargs"], "kernel_size": 3}})
        other.load_state_dict(payload["model"])
        with torch.no_grad():
            assert not torch.allclose(other.eval()(x), expected)


def test_format_1_checkpoint_loads_with_a_spec_and_fails_clearly_without(specs, tmp_path):
    spec, path = specs["lmsa"], tmp_path / "old.pt"
    torch.manual_seed(0)
    original = recipes.build_model(spec).eval()
    torch.save({"format_version": 1, "model": original.state_dict(), "run": spec["run"], "epoch": 3,
                "config_hash": identity.train_hash(spec), "arch": "lmsa_vit_cifar"}, path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = original(x)
        assert torch.equal(vitprobe.load_checkpoint(path, spec)(x), expected)
        assert torch.equal(recipes.load_run_model(path, spec)[0](x), expected)
    with pytest.raises(CheckpointError) as err:
        vitprobe.load_checkpoint(path)
    msg = _one_line_naming(err, path)
    assert "predates self-describing checkpoints" in msg and "load_checkpoint(path, spec)" in msg
    assert "recipe.load_run_model(path, spec)" in msg


def test_spec_of_another_run_or_config_is_refused(specs, tmp_path):
    import copy
    path = tmp_path / "e3.pt"
    _save(specs["resnet"], path)
    with pytest.raises(CheckpointError) as err:
        recipes.load_run_model(path, specs["lmsa"])
    assert _one_line_naming(err, path).endswith(
        "is of run synthetic-resnet_demo-k0-f1-s0, but the spec is of run synthetic-lmsa_demo-k5-f1-s0; pass that "
        "run's checkpoint or its spec")
    other = copy.deepcopy(specs["resnet"])
    other["train"]["lr"] *= 2
    with pytest.raises(CheckpointError, match="config hash .* the training config changed since"):
        vitprobe.load_checkpoint(path, other)


def test_truncated_checkpoint(specs, tmp_path):
    good, cut = tmp_path / "good.pt", tmp_path / "cut.pt"
    _save(specs["resnet"], good)
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError) as err:
        vitprobe.load_checkpoint(cut)
    assert "truncated or damaged" in _one_line_naming(err, cut)


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty (0 bytes), probably left by a killed writer"),
    (b"epoch,loss\n1,2.3\n", "is damaged or not a checkpoint (it lacks the zip header of torch.save)"),
    ({"weights": torch.ones(2)}, "is not a vitprobe checkpoint"),
    ({"model": {"w": torch.ones(2)}, "config_hash": "h", "x": NotAWeight()}, "holds pickled Python objects"),
], ids=["empty", "text", "plain-dict", "pickle"])
def test_foreign_or_empty_file(tmp_path, content, expected):
    path = tmp_path / "e3.pt"
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    with pytest.raises(CheckpointError) as err:
        vitprobe.load_checkpoint(path)
    msg = _one_line_naming(err, path)
    assert expected in msg
    if "pickled" in expected:
        assert "NotAWeight" in msg and "does not load untrusted pickles" in msg


def test_state_of_other_shapes_names_the_first_mismatching_keys(specs, tmp_path):
    path = tmp_path / "e3.pt"
    _save(specs["resnet"], path)
    state = checkpoint.load(path)["model"]
    wider = recipes.build_from_recipe({"arch": "resnet18_cifar", "num_classes": 10,
                                       "kwargs": {"layers": [1, 1, 1, 1], "widths": [16, 16, 32, 32]}})
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_state(wider, state, path)
    msg = _one_line_naming(err, path)
    assert re.search(r"CifarResNet: \d+ tensors of another shape \(conv1.weight: checkpoint \[8, 3, 3, 3\], "
                     r"model \[16, 3, 3, 3\]; bn1.weight: checkpoint \[8\], model \[16\]; bn1.bias: [^;]*; \.\.\.\)",
                     msg)
    assert "missing" not in msg and "unexpected" not in msg

    deeper = recipes.build_from_recipe({"arch": "resnet18_cifar", "num_classes": 10,
                                        "kwargs": {"layers": [2, 1, 1, 1], "widths": [8, 8, 16, 16]}})
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_state(deeper, state, path)
    msg = _one_line_naming(err, path)
    assert "12 missing tensors (layer1.1.conv1.weight; layer1.1.bn1.weight; layer1.1.bn1.bias; ...)" in msg
    assert "unexpected" not in msg and "another shape" not in msg
    with pytest.raises(CheckpointError) as err:  # the other way round
        checkpoint.load_state(recipes.build_model(specs["resnet"]), deeper.state_dict(), path)
    assert "12 unexpected tensors (layer1.1.conv1.weight; " in _one_line_naming(err, path)


@pytest.mark.parametrize("damage", ["truncated", "pickle", "empty"])
def test_damaged_resume_file_is_one_line(tmp_path, damage):
    path = tmp_path / "resume.pt"
    torch.save({"config_hash": "h", "model": {"w": torch.randn(64, 64)}, "optimizer": {}}, path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "pickle":  # torch's own message for this runs over several lines
        torch.save({"config_hash": "h", "optimizer": NotAWeight()}, path)
    else:
        path.write_bytes(b"")
    with pytest.raises(ResumeError) as err:
        load_resume(tmp_path, "h")
    assert "delete it to start the run over" in _one_line_naming(err, path)
