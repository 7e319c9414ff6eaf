"""Checkpoints: `torch.load(path, weights_only=True)` gives a dict with the state dict under
"model", the run's identity, the epoch, the hash of the training spec that made it and
(format 2) the "model_recipe" {"arch", "kwargs", "num_classes"} that rebuilds the model:
`vitprobe.models.create(arch, num_classes=num_classes, **kwargs)`."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from vitprobe.atomic import atomic_path
from vitprobe.config.identity import Run
from vitprobe.errors import VitprobeError, first_line

FORMAT_VERSION = 2  # 1: no "model_recipe"
_FIX = "delete it and rerun the job that writes it"


class CheckpointError(VitprobeError, RuntimeError):
    """A checkpoint is unreadable or belongs to another run, config or model."""


def read(path, *, what: str = "checkpoint", error: type[VitprobeError] = CheckpointError, fix: str = _FIX):
    """`torch.load(path, map_location="cpu", weights_only=True)`; a missing, empty, truncated or
    foreign file, or one holding pickled objects, raises `error` with a one-line message."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} does not exist; rerun the job that writes it")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise error(f"{what} {path} is empty (0 bytes), probably left by a killed writer; {fix}")
    if head != b"PK\x03\x04":  # torch.save writes a zip archive
        raise error(f"{what} {path} is damaged or not a {what} (it lacks the zip header of torch.save); {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        raise error(f"{what} {path} holds pickled Python objects ({found.group(1) if found else first_line(exc)}) "
                    f"that safe loading (torch.load with weights_only=True) refuses; vitprobe does not load "
                    f"untrusted pickles, and its own files hold none: {fix}") from exc
    except Exception as exc:  # torch raises several types for damaged files
        raise error(f"{what} {path} is truncated or damaged ({first_line(exc)}); {fix}") from exc


def save(path, model: torch.nn.Module, *, run: dict, epoch: int, config_hash: str, recipe: dict) -> None:
    """Write the model's state dict (on CPU) with the run, epoch, config hash and model recipe."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format_version": FORMAT_VERSION, "model": state, "run": dict(run), "epoch": int(epoch),
               "config_hash": config_hash, "arch": recipe["arch"], "model_recipe": recipe}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path, *, expected_hash: str | None = None, expected_run: dict | None = None) -> dict:
    """Load safely (weights_only) and check it was made for the expected run by the expected
    training spec."""
    payload = read(path)
    if not isinstance(payload, dict) or "model" not in payload or "config_hash" not in payload:
        raise CheckpointError(f"checkpoint {path} is not a vitprobe checkpoint (no 'model'/'config_hash' "
                              f"entries); pass a file written by vitprobe train")
    if expected_run is not None and payload.get("run") not in (None, expected_run):
        raise CheckpointError(f"checkpoint {path} is of run {Run(**payload['run']).id}, but the spec is of run "
                              f"{Run(**expected_run).id}; pass that run's checkpoint or its spec")
    if payload.get("format_version", 1) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {payload['format_version']}, newer than this "
                              f"vitprobe reads ({FORMAT_VERSION}); upgrade vitprobe")
    if expected_hash is not None and payload["config_hash"] != expected_hash:
        raise CheckpointError(
            f"checkpoint {path} was trained with config hash {payload['config_hash']}, but the current "
            f"config gives {expected_hash}: the training config changed since. Delete the run directory "
            f"or restore the config that made it.")
    return payload


def load_state(model: torch.nn.Module, state: dict, path) -> torch.nn.Module:
    """`model.load_state_dict(state)`, or a one-line CheckpointError naming the file and the
    first keys whose shapes differ, that are missing or that are unexpected."""
    own = model.state_dict()
    shape = {k: list(getattr(v, "shape", [])) for k, v in state.items()}
    problems = {
        "tensors of another shape": [f"{k}: checkpoint {shape[k]}, model {list(v.shape)}" for k, v in own.items()
                                     if k in shape and shape[k] != list(v.shape)],
        "missing tensors": [k for k in own if k not in state],
        "unexpected tensors": [k for k in state if k not in own]}
    found = [f"{len(keys)} {kind} ({'; '.join(keys[:3])}{'; ...' if len(keys) > 3 else ''})"
             for kind, keys in problems.items() if keys]
    if found:
        raise CheckpointError(f"checkpoint {path} does not fit the model {type(model).__name__}: "
                              f"{', '.join(found)}; it was made with other model settings: load it with the "
                              f"spec of the run that wrote it")
    model.load_state_dict(state)
    return model
