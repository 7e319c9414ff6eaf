"""A run's model: its recipe (what builds it, stored in every checkpoint), building it, loading
a run's checkpoint checked against the run's training hash, and writing the one checkpoint
of a run whose weights are imported.

Every function takes a job's spec, the JSON a Snakemake rule hands over or its parse
(`vitprobe.config.job.JobSpec`); the recipe, hash and label are the parse's.
"""

from __future__ import annotations

import contextlib
import os

import torch

from vitprobe import models
from vitprobe.config.identity import IMPORTED_EPOCH
from vitprobe.config.job import JobSpec
from vitprobe.errors import first_line
from vitprobe.models import checkpoint, weights


def build_from_recipe(recipe: dict, pretrained: bool = False) -> torch.nn.Module:
    """`models.create_any(arch, num_classes=num_classes, **kwargs)` of a recipe (`JobSpec.recipe`:
    what builds the run's model, stored in its checkpoints)."""
    return models.create_any(recipe["arch"], num_classes=recipe["num_classes"], pretrained=pretrained,
                             **recipe["kwargs"])


def build_model(spec: dict | JobSpec) -> torch.nn.Module:
    return build_from_recipe(JobSpec.of(spec).recipe)


@contextlib.contextmanager
def hub_offline():
    """The Hugging Face hub offline for the body only (its cache, no network); the process's
    setting is restored afterwards."""
    import huggingface_hub.constants  # timm's dependency; only a timm-weights import needs it

    saved_env, saved = os.environ.get("HF_HUB_OFFLINE"), huggingface_hub.constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    huggingface_hub.constants.HF_HUB_OFFLINE = True  # read when a request is made
    try:
        yield
    finally:
        huggingface_hub.constants.HF_HUB_OFFLINE = saved
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def import_weights(spec: dict | JobSpec, out, *, download: bool = False) -> torch.nn.Module:
    """The one checkpoint of a run whose weights are imported (`spec["model"]["weights"]`,
    see `vitprobe.models.weights`): the model built from the run's recipe, the weights loaded,
    saved as an ordinary checkpoint of epoch 0 (`vitprobe.config.identity.IMPORTED_EPOCH`)."""
    job = JobSpec.of(spec)
    recipe = job.recipe
    source = recipe["weights"]
    if source == "timm":
        try:
            with contextlib.nullcontext() if download else hub_offline():
                model = build_from_recipe(recipe, pretrained=True)
        except Exception as exc:  # network, cache, or a name timm has no weights for
            raise weights.WeightsError(
                f"cannot get timm's pretrained weights of {recipe['arch']} ({first_line(exc)})"
                + ("; downloads are off (data.download: false) and they are not in timm's cache" if not download
                   else "")) from exc
    else:
        model = build_from_recipe(recipe)
    if weights.kind(source) in ("file", "url"):
        weights.load_into(model, source, root=job.data["root"], download=download)
    checkpoint.save(out, model, run=job.run_columns, epoch=IMPORTED_EPOCH, config_hash=job.hash, recipe=recipe)
    return model.eval()


def weights_misfit(spec: dict | JobSpec) -> str:
    """For a spec whose weights are a file: '' if `import_weights` would load it, else how its
    keys and shapes differ from the run's model (`weights.differences`). The model is built on
    PyTorch's meta device and the file read without its tensors' data: cheap, before any job."""
    recipe = JobSpec.of(spec).recipe
    with torch.device("meta"):
        model = build_from_recipe(recipe)
    return weights.check_file(model, recipe["weights"])


def load_run_model(checkpoint_path, spec: dict | JobSpec) -> tuple[torch.nn.Module, dict]:
    """The model of a run's checkpoint, built from the spec and checked against its training
    hash (CPU, eval mode), and the checkpoint's payload; reads format-1 checkpoints too."""
    job = JobSpec.of(spec)
    payload = checkpoint.load(checkpoint_path, expected_hash=job.hash, expected_run=job.run_columns)
    model = checkpoint.load_state(build_from_recipe(job.recipe), payload["model"], checkpoint_path)
    return model.eval(), payload


def load_checkpoint(path, spec: dict | None = None) -> torch.nn.Module:
    """The model of a checkpoint, rebuilt from its recipe, state loaded, in eval mode on CPU.

    With `spec` (the run's spec) it is `load_run_model`: the checkpoint must be of that run
    and match its training hash, and a format-1 checkpoint (no recipe) is rebuilt from the spec."""
    if spec is not None:
        return load_run_model(path, spec)[0]
    payload = checkpoint.load(path)
    recipe = payload.get("model_recipe")
    if recipe is None:
        raise checkpoint.CheckpointError(
            f"checkpoint {path} (format {payload.get('format_version', 1)}) predates self-describing "
            f"checkpoints and does not record how to build its model; pass the run's spec: "
            f"load_checkpoint(path, spec), or use vitprobe.models.recipe.load_run_model(path, spec)")
    return checkpoint.load_state(build_from_recipe(recipe), payload["model"], path).eval()
