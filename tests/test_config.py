"""Config validation: the paper grid plans; bad values fail naming the key and what is allowed."""

import pytest

from vitprobe.config import validate
from vitprobe.grid import ConfigError, Run


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
    assert demo_config["probes"]["hessian"]["method"] == "lanczos"
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
    (lambda c: c["data"].update(dataset="imagenet"),
     ["data.dataset", "'imagenet'", "'cifar100'"]),
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
])
def test_bad_config_is_rejected_with_key_and_allowed_values(demo_config, edit, expected):
    edit(demo_config)
    with pytest.raises(ConfigError) as err:
        validate(demo_config)
    for fragment in expected:
        assert fragment in str(err.value), f"{fragment!r} not in: {err.value}"


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
    assert ids == ["synthetic-resnet_demo-k0-f1-s0", "synthetic-vit_demo-k0-f1-s0",
                   "synthetic-vit_demo-k0-f1of16-s0"]


def test_train_spec_hash_ignores_unrelated_keys(demo_config):
    from vitprobe.runtime import train_hash
    plan = validate(demo_config)
    run = plan.runs[0]
    before = train_hash(plan.train_spec(run))
    demo_config["probes"]["hessian"]["n_batches"] = 7
    demo_config["figures"]["fig_hessian"]["bins"] = 10
    assert train_hash(validate(demo_config).train_spec(run)) == before
    demo_config["train"]["lr"] = 0.5
    assert train_hash(validate(demo_config).train_spec(run)) != before


def test_readme_documents_every_table_column():
    from conftest import REPO
    from vitprobe.results import markdown_docs
    readme = (REPO / "README.md").read_text()
    section = readme.split("<!-- tables:begin -->")[1].split("<!-- tables:end -->")[0]
    assert section.strip() == markdown_docs().strip(), "README table reference is stale: paste `vitprobe tables`"


def test_every_figure_has_a_rule_a_caption_and_a_demo_entry(demo_config, paper_config):
    """The demo draws every registered figure, the paper grid configures every one, and each
    has its Snakemake rule and a report caption."""
    from conftest import REPO
    from vitprobe.figures import FIGURES
    rules = (REPO / "workflow/rules/plot.smk").read_text()
    assert set(demo_config["figures"]) == set(FIGURES)
    assert set(paper_config["figures"]) == set(FIGURES)
    for fig in FIGURES:
        assert f"rule {fig}:" in rules or f"use rule fig_hessian as {fig} with:" in rules, fig
        assert (REPO / f"workflow/report/{fig}.rst").read_text().strip(), fig
    validate(demo_config)  # and the demo's figure settings are valid
