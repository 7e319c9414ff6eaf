"""Config validation: the paper grid plans; bad values fail naming the key and what is allowed."""

import pytest
import yaml
from conftest import REPO

from vitprobe.config.identity import Run
from vitprobe.config.load import apply_overrides, assemble, load_yaml, validate
from vitprobe.errors import ConfigError


def test_paper_grid_plans_every_experiment(paper_config):
    plan = validate(paper_config)
    assert {name: len(runs) for name, runs in plan.experiments.items()} == {
        "inductive_bias": 7, "data_size": 14, "kernel_size": 3, "gap": 2, "alternet": 2}
    # ViT-Ti and ResNet-50 on all the data belong to two experiments but are trained once
    assert len(plan.runs) == 28 - 3
    ids = {r.id for r in plan.runs}
    assert "cifar100-vit_ti_cifar-k0-f1of64-s0" in ids
    assert {"cifar100-lmsa_vit_cifar-k3-f1-s0", "cifar100-lmsa_vit_cifar-k8-f1-s0"} <= ids
    assert plan.checkpoint_epochs == [0, 5, 105, 205, 305]


def test_defaults_are_filled(demo_config):
    validate(demo_config)
    assert demo_config["train"]["grad_clip"] == 5.0
    for ra, filled in [({}, {"impl": "timm", "num_ops": 2, "magnitude": 9, "magnitude_std": 1.0, "prob": 0.5,
                             "magnitude_max": None, "interpolation": "random"}),
                       ({"impl": "torchvision"}, {"impl": "torchvision", "num_ops": 2, "magnitude": 9,
                                                  "magnitude_std": 1.0, "group_size": 8})]:
        demo_config["train"]["augment"]["randaugment"] = ra
        validate(demo_config)
        assert ra == filled
    hessian = demo_config["probes"]["hessian"]
    assert (hessian["method"], hessian["batches_at_once"], hessian["hvp"], hessian["shards"]) == \
        ("lanczos", "auto", "double_backward", 1)
    assert demo_config["experiments"]["inductive_bias"]["seeds"] == [0]


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["experiments"]["inductive_bias"].update(models=["resnet_demo", "vgg16"]),
     ["experiments.inductive_bias.models", "'vgg16'", "resnet18_cifar"]),
    (lambda c: c["experiments"]["data_size"].update(fractions=[0.5, 1.5]),
     ["experiments.data_size.fractions.1", "1.5", "(0, 1]"]),
    (lambda c: c["experiments"]["data_size"].update(fractions=[0]),
     ["experiments.data_size.fractions.0", "(0, 1]"]),
    (lambda c: c["experiments"]["kernel_size"].update(kernel_sizes=[3, 9]),
     ["experiments.kernel_size.kernel_sizes", "9", "8x8", "1..8"]),
    (lambda c: c["data"].update(dataset="svhn"),
     ["data.dataset", "'svhn'", "'cifar100'"]),
    (lambda c: c["train"].update(learning_rate=0.1),
     ["train", "learning_rate", "allowed keys", "lr"]),
    (lambda c: c["probes"]["hessian"].update(method="arnoldi"),
     ["probes.hessian.method", "'lanczos'", "'pyhessian'"]),
    (lambda c: c["probes"]["hessian"].update(epochs=[3]),
     ["probes.hessian.epochs", "3", "[0, 1, 6]"]),
    (lambda c: c["train"].update(checkpoint_epochs=[0, 7]),
     ["train.checkpoint_epochs", "7", "0..train.epochs (6)"]),
    (lambda c: c["figures"]["fig_hessian"].update(experiments=["nope"]),
     ["figures.fig_hessian.experiments", "'nope'", "inductive_bias"]),
    (lambda c: c["models"]["vit_demo"].update(arch="vit_huge"),
     ["models.vit_demo.arch", "'vit_huge'"]),
    (lambda c: c["experiments"].update({"Bad-Name": {"models": ["vit_demo"]}}),
     ["experiments", "Bad-Name"]),
    # caught by building each model once on the meta device
    (lambda c: c["models"]["vit_demo"]["kwargs"].update(depht=4),
     ["models.vit_demo.kwargs", "vit_ti_cifar(", "unexpected keyword argument 'depht'"]),
    (lambda c: c["models"]["resnet_demo"]["kwargs"].update(layers=2),
     ["models.resnet_demo.kwargs", "resnet18_cifar(", "layers=2", "cannot be built"]),
    (lambda c: c["experiments"]["inductive_bias"].update(kernel_sizes=[3]),
     ["experiments.inductive_bias.kernel_sizes", "none of its models", "lmsa_vit_cifar"]),
    (lambda c: c["figures"]["fig_hessian"]["series"].append({"label": "Swin", "model": "swin_ti_cifar"}),
     ["figures.fig_hessian.series.3", "'Swin'", "matches no run", "vit_demo (k0, f1of16)"]),
    (lambda c: c["figures"]["fig_hessian"]["series"][0].update(fraction="1/4"),
     ["figures.fig_hessian.series.0", "matches no run"]),
    (lambda c: c["probes"].update(robustness={"eps": 2.0}),
     ["probes.robustness.eps", "2.0", "maximum of 1"]),
    (lambda c: c["train"]["augment"].update(randaugment={"impl": "albumentations"}),
     ["train.augment.randaugment.impl", "'albumentations'", "'timm', 'torchvision'"]),
    (lambda c: c["train"]["augment"].update(randaugment={"interpolation": "nearest"}),
     ["train.augment.randaugment.interpolation", "'nearest'", "'random', 'bilinear', 'bicubic'"]),
    (lambda c: c["train"]["augment"].update(randaugment={"prob": 1.5}),
     ["train.augment.randaugment.prob", "1.5", "maximum of 1"]),
    (lambda c: c["train"]["augment"].update(randaugment={"num_op": 2}),
     ["train.augment.randaugment", "'num_op'", "allowed keys", "num_ops"]),
    (lambda c: c["train"]["augment"].update(randaugment={"group_size": 4}),
     ["train.augment.randaugment.group_size", "only for impl: torchvision", "impl is timm"]),
    (lambda c: c["train"]["augment"].update(randaugment={"impl": "torchvision", "interpolation": "bilinear"}),
     ["train.augment.randaugment.interpolation", "only for impl: timm", "impl is torchvision"]),
    # each figure declares the keys it needs (catalog.FIGURES[...].needs); the plot job never
    # meets a missing one
    (lambda c: c["figures"]["fig_hessian"].pop("epoch"),
     ["figures.fig_hessian", "fig_hessian needs the key epoch", "add epoch:"]),
    (lambda c: c["figures"]["fig_fourier"].pop("series"),
     ["figures.fig_fourier", "needs the key series"]),
    (lambda c: c["probes"]["landscape"].update(points_1d=0, points_2d=0),
     ["probes.landscape.points_1d and points_2d", "both 0", "at least one of them >= 1"]),
])
def test_bad_config_is_rejected_with_key_and_allowed_values(demo_config, edit, expected):
    edit(demo_config)
    with pytest.raises(ConfigError) as err:
        validate(demo_config)
    for fragment in expected:
        assert fragment in str(err.value), f"{fragment!r} not in: {err.value}"
    assert "\n" not in str(err.value)  # one line


def test_local_model_needs_kernel_sizes(demo_config):
    del demo_config["experiments"]["kernel_size"]["kernel_sizes"]
    with pytest.raises(ConfigError, match="experiments.kernel_size.kernel_sizes: required"):
        validate(demo_config)


@pytest.mark.parametrize("run", [
    Run("cifar100", "vit_ti_cifar", 0, 1 / 64, 0),
    Run("cifar10", "lmsa_vit_cifar", 5, 1.0, 3),
    Run("synthetic", "resnet_demo", 0, 0.5, 12),
])
def test_run_id_round_trips(run):
    assert Run.parse(run.id) == run


def test_run_id_format():
    assert Run("cifar100", "vit_ti_cifar", 0, 0.015625, 0).id == "cifar100-vit_ti_cifar-k0-f1of64-s0"
    with pytest.raises(ValueError, match="not a run id"):
        Run.parse("cifar100_vit")


def test_figure_selects_only_the_runs_it_needs(demo_config):
    plan = validate(demo_config)
    ids = sorted(r.id for r in plan.figure_runs("fig_hessian"))
    assert ids == ["fashion_mnist_subset-resnet_demo-k0-f1-s0", "fashion_mnist_subset-vit_demo-k0-f1-s0",
                   "fashion_mnist_subset-vit_demo-k0-f1of16-s0"]


def test_train_spec_hash_ignores_unrelated_keys(demo_config):
    from vitprobe.config.identity import train_hash
    plan = validate(demo_config)
    run = plan.runs[0]
    before = train_hash(plan.train_spec(run))
    demo_config["probes"]["hessian"]["n_batches"] = 7
    demo_config["figures"]["fig_hessian"]["bins"] = 10
    assert train_hash(validate(demo_config).train_spec(run)) == before
    demo_config["train"]["lr"] = 0.5
    assert train_hash(validate(demo_config).train_spec(run)) != before



def test_every_figure_has_a_rule_a_caption_and_a_demo_entry(demo_config, paper_config):
    """The demo draws every registered figure, the paper grid configures every one, and each
    has its Snakemake rule and a report caption."""
    from conftest import REPO

    from vitprobe.catalog import FIGURES
    search_demo = yaml.safe_load((REPO / "profiles/search/search.yaml").read_text())
    # fig_corruption needs the CIFAR-C files, which are not offline; fig_buildup is the search demo's
    assert set(demo_config["figures"]) == set(FIGURES) - {"fig_corruption", "fig_buildup"}
    assert set(search_demo["figures"]) == {"fig_buildup"}
    assert set(paper_config["figures"]) == set(FIGURES)
    for fig in FIGURES:
        assert (REPO / f"workflow/report/{fig}.rst").read_text().strip(), fig
    validate(demo_config)  # and the demo's figure settings are valid


# ---- files and overrides -------------------------------------------------------------------
def test_duplicate_key_is_rejected_with_file_and_lines(tmp_path):
    f = tmp_path / "dup.yaml"
    f.write_text("data:\n  dataset: cifar100\ntrain:\n  epochs: 10\n  lr: 0.1\n  epochs: 20\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(f)
    assert str(err.value) == f"{f}:6: duplicate key 'epochs' (first given on line 4); give each key once"


def test_merge_keys_may_be_overridden(tmp_path):
    f = tmp_path / "merge.yaml"
    f.write_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert load_yaml(f)["other"] == {"x": 1, "y": 3}


@pytest.mark.parametrize("text, fragment", [
    ("data:\n  dataset: cifar100\n experiments: {}\n", ":3:2: YAML syntax error"),
    ("data: [1, 2\n", "YAML syntax error"),
    ("- a\n- b\n", "a config is a mapping"),
])
def test_yaml_errors_are_one_line_with_file_and_line(tmp_path, text, fragment):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_yaml(f)
    assert str(err.value).startswith(str(f)) and fragment in str(err.value) and "\n" not in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nope.yaml does not exist"):
        load_yaml(tmp_path / "nope.yaml")


def test_a_passed_file_replaces_the_default(tmp_path, paper_config):
    """`--configfile mine.yaml` with one experiment plans that experiment only."""
    import yaml
    mine = {**paper_config, "experiments": {"gap": paper_config["experiments"]["gap"]},
            "figures": {"fig_gap": paper_config["figures"]["fig_gap"]}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(mine))
    cfg = assemble([tmp_path / "mine.yaml"], default=REPO / "config.yaml")
    assert list(cfg["experiments"]) == ["gap"]
    assert len(validate(cfg).runs) == 2
    assert list(assemble([], default=REPO / "config.yaml")["experiments"]) == list(paper_config["experiments"])


@pytest.mark.parametrize("overrides", [
    {"train__epochs": 6, "train__checkpoint_epochs": "[0, 1, 3, 6]"},       # snakemake --config train__epochs=6
    {"train.epochs": "6", "train.checkpoint_epochs": ["0", "1", "3", "6"]},  # check-config --set / BaseLoader strings
    {"train": {"epochs": "6", "checkpoint_epochs": ["0", "1", "3", "6"]}},   # --config 'train={epochs: 6, ...}'
])
def test_overrides_take_the_schema_type(demo_config, overrides):
    demo_config["train"].update(epochs=99, checkpoint_epochs=[0])  # what the overrides must replace
    apply_overrides(demo_config, {**overrides, "probes__hessian__epochs": "[1, 3, 6]", "probes.eval.epochs": "[6]"})
    plan = validate(demo_config)
    assert demo_config["train"]["epochs"] == 6 and isinstance(demo_config["train"]["epochs"], int)
    assert plan.checkpoint_epochs == [0, 1, 3, 6]
    assert demo_config["train"]["lr"] == 1.0e-3  # untouched keys stay
    assert plan.probe_epochs("hessian") == [1, 3, 6] and plan.probe_epochs("eval") == [6]


def test_override_strings_stay_strings_where_the_schema_wants_one(demo_config):
    apply_overrides(demo_config, {"data__root": "123", "device": "cuda", "train__lr": "2e-3"})
    assert demo_config["data"]["root"] == "123" and demo_config["device"] == "cuda"
    assert demo_config["train"]["lr"] == 2e-3


def test_wrongly_typed_override_is_rejected(demo_config):
    apply_overrides(demo_config, {"train__epochs": "ten"})
    with pytest.raises(ConfigError, match="config key train.epochs: 'ten' is not of type 'integer'"):
        validate(demo_config)


def test_check_config_cli_prints_one_line_errors(tmp_path, capsys):
    from vitprobe.cli import main
    f = tmp_path / "dup.yaml"
    f.write_text("data: {dataset: cifar100}\ndata: {dataset: cifar10}\n")
    assert main(["check-config", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{f}:2: duplicate key 'data'" in err
    assert main(["check-config", str(REPO / "profiles/demo/demo.yaml"), "--set", "train.epochs=3", "--runs"]) == 2
    assert "train.checkpoint_epochs: 6 is outside 0..train.epochs (3)" in capsys.readouterr().err


def test_last_is_train_epochs_and_follows_an_override(paper_config):
    """config.yaml writes the final epoch as `last`: 305 as configured, 10 after
    `--config train__epochs=10` (with checkpoints and eval epochs that fit it)."""
    assert paper_config["probes"]["hessian"]["epochs"] == [0, 5, "last"]
    cfg = __import__("copy").deepcopy(paper_config)
    plan = validate(cfg)
    assert plan.probe_epochs("hessian") == [0, 5, 305] and cfg["figures"]["fig_fourier"]["epoch"] == 305
    apply_overrides(paper_config, {"train__epochs": "10", "train__checkpoint_epochs": "[0,5,10]",
                                   "probes__eval__epochs": "[5,10]"})
    plan = validate(paper_config)
    assert plan.probe_epochs("hessian") == [0, 5, 10] and plan.probe_epochs("fourier") == [10]
    figures = paper_config["figures"]
    assert figures["fig_fourier"]["epoch"] == 10 and figures["fig_hessian"]["epoch"] == 5


def test_last_and_its_number_are_one_epoch(demo_config):
    demo_config["probes"]["hessian"]["epochs"] = [1, 6, "last"]  # 6 is the demo's train.epochs
    assert validate(demo_config).probe_epochs("hessian") == [1, 6]


def test_a_jobs_spec_is_parsed_once_into_what_its_parts_read():
    """JobSpec.of: the run, the training hash (sha256 of the sorted JSON of run, data, model,
    train: its first 16 hex digits), the model's recipe (the alias's kwargs, the training's
    drop-path rate unless the alias sets one, the run's kernel size, the dataset's classes)
    and the weights label; a JobSpec is returned as it is."""
    import hashlib
    import json

    from vitprobe.config.identity import Run
    from vitprobe.config.job import JobSpec
    run = {"dataset": "synthetic", "model": "lvit", "kernel_size": 3, "fraction": 0.25, "seed": 1}
    spec = {"run": run, "data": {"dataset": "synthetic", "synthetic": {"num_classes": 7}},
            "model": {"arch": "lvit_demo", "kwargs": {"depth": 2}, "weights": "/w/ckpt-1a2b3c.safetensors?x=1"},
            "train": {"drop_path_rate": 0.1, "weight_decay": 0.05}, "probe": {"k": 3}}
    job = JobSpec.of(spec)
    blob = json.dumps({k: spec[k] for k in ("run", "data", "model", "train")}, sort_keys=True, separators=(",", ":"))
    assert job.hash == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert job.run == Run("synthetic", "lvit", 3, 0.25, 1) and job.run.id == "synthetic-lvit-k3-f1of4-s1"
    assert job.recipe == {"arch": "lvit_demo", "kwargs": {"depth": 2, "drop_path_rate": 0.1, "kernel_size": 3},
                          "num_classes": 7, "weights": "/w/ckpt-1a2b3c.safetensors?x=1"}
    assert job.weights == "ckpt-1a2b3c.safetensors" and job.probe == {"k": 3} and job.run_columns is run
    assert JobSpec.of(job) is job
    train_job = {k: v for k, v in spec.items() if k != "probe"}  # a training job's spec: no probe block
    trained = JobSpec.of({**train_job, "model": {"arch": "lvit_demo", "kwargs": {"drop_path_rate": 0.0}}})
    assert trained.weights == "trained" and trained.recipe["kwargs"]["drop_path_rate"] == 0.0 and trained.probe == {}
