"""What every CLI verb needs from a run spec: the model, the data, the checkpoint.

A spec is the JSON handed over by a Snakemake rule (see `Plan.train_spec`/`probe_spec`):
{"run": {...grid columns}, "data": {...}, "model": {"arch", "kwargs"}, "train": {...}, ...}.
"""

from __future__ import annotations

import torch

from vitprobe import checkpoint, data
from vitprobe.grid import train_hash  # noqa: F401  (re-exported: runtime is where jobs look for it)


def num_classes(data_spec: dict) -> int:
    if data_spec["dataset"] == "synthetic":
        return int(data_spec.get("synthetic", {}).get("num_classes", data.DATASETS["synthetic"]))
    return data.DATASETS[data_spec["dataset"]]


def build_model(spec: dict) -> torch.nn.Module:
    from vitprobe import models
    kwargs = dict(spec["model"]["kwargs"])
    if spec["train"].get("drop_path_rate"):  # stochastic depth; a model alias's own value wins
        kwargs.setdefault("drop_path_rate", spec["train"]["drop_path_rate"])
    if spec["run"]["kernel_size"]:
        kwargs["kernel_size"] = spec["run"]["kernel_size"]
    return models.create(spec["model"]["arch"], num_classes=num_classes(spec["data"]), **kwargs)


def load_model(checkpoint_path, spec: dict) -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint, checked against the spec's training hash (CPU, eval mode)."""
    payload = checkpoint.load(checkpoint_path, expected_hash=train_hash(spec))
    model = build_model(spec)
    model.load_state_dict(payload["model"])
    return model.eval(), payload


def training_split(spec: dict) -> data.Split:
    """The run's training set: the class-stratified, seeded fraction of the train split."""
    d, run = spec["data"], spec["run"]
    full = data.load_split(d["dataset"], d["root"], train=True)
    if run["fraction"] >= 1:
        return full
    idx = data.stratified_indices(full.labels, run["fraction"], seed=run["seed"])
    return data.Split(full.images[idx].contiguous(), full.labels[idx].contiguous(), full.num_classes)


def test_split(spec: dict) -> data.Split:
    d = spec["data"]
    return data.load_split(d["dataset"], d["root"], train=False)


def mean_std(spec: dict):
    return data.MEAN_STD[spec["data"]["dataset"]]
