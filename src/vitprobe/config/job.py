"""A job's spec, parsed once where the job starts.

A spec is the JSON a Snakemake rule hands a verb (`vitprobe.config.plan.Plan.train_spec`,
`probe_spec`): {"run": the grid columns, "data", "model" (the alias: arch, kwargs and maybe
weights), "train", and for a probe job "probe" (its settings)}. `JobSpec.of` reads it once
into what the job's parts need, derived here and nowhere else: the run, the training hash
that checkpoints and result rows carry, the model's recipe (what builds it), the number of
classes and the result rows' `weights` label. Everything below (the model's recipe, the
probe runner, a probe's inputs, training) takes a `JobSpec`, so that data flows down.

Also the words of a weights *source* (`models.<alias>.weights`): `weights_kind`,
`weights_label`. Torch-free.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vitprobe.config.identity import Run, model_kwargs, train_hash
from vitprobe.data.registry import num_classes

#: Weights sources that are no file: a fresh initialisation, or timm's pretrained weights.
#: Where a job may run (`--device`; `vitprobe.device.resolve` makes it a torch device).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "rehearse")
WEIGHTS_KEYWORDS = ("init", "timm")


def weights_kind(source: str | os.PathLike) -> str:
    """'init', 'timm', 'url' or 'file'."""
    source = os.fspath(source)
    if source in WEIGHTS_KEYWORDS:
        return source
    return "url" if re.match(r"https?://", source) else "file"


def weights_label(source: str | os.PathLike | None) -> str:
    """What the `weights` column of result rows says: trained (no source), init, timm, or the
    file's name."""
    if source is None:
        return "trained"
    source = os.fspath(source)
    return source if source in WEIGHTS_KEYWORDS else Path(source.split("?")[0]).name


@dataclass(frozen=True)
class JobSpec:
    """A job's spec, parsed (`JobSpec.of`)."""

    raw: dict = field(repr=False)  # the JSON as the rule passed it
    run: Run
    hash: str                      # train_hash of run, data, model, train: in checkpoints and result rows
    data: dict
    model: dict                    # the config's alias: arch, kwargs (and weights, if imported)
    train: dict
    recipe: dict                   # what builds the model: arch, kwargs, num_classes (and weights)
    probe: dict                    # a probe job's settings ({} for other jobs)
    weights: str                   # the result rows' weights column: trained, init, timm or a file name

    @classmethod
    def of(cls, spec: dict | JobSpec) -> JobSpec:
        """`spec` parsed (a JobSpec is returned as it is)."""
        if isinstance(spec, JobSpec):
            return spec
        model = spec["model"]
        recipe = {"arch": model["arch"], "kwargs": model_kwargs(model, spec["train"], spec["run"]["kernel_size"]),
                  "num_classes": num_classes(spec["data"])}
        if "weights" in model:
            recipe["weights"] = model["weights"]
        return cls(raw=spec, run=Run(**spec["run"]), hash=train_hash(spec), data=spec["data"], model=model,
                   train=spec["train"], recipe=recipe, probe=spec.get("probe", {}),
                   weights=weights_label(model.get("weights")))

    @property
    def run_columns(self) -> dict:
        """The run block as the spec gives it (the grid columns of result rows and checkpoints)."""
        return self.raw["run"]
