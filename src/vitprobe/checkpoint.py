"""Checkpoints: `torch.load(path, weights_only=True)` gives a dict with the state dict under
"model", the run's identity, the epoch and the hash of the training spec that made it."""

from __future__ import annotations

from pathlib import Path

import torch

from vitprobe.atomic import atomic_path
from vitprobe.errors import VitprobeError

FORMAT_VERSION = 1


class CheckpointError(VitprobeError, RuntimeError):
    """A checkpoint is unreadable or belongs to another run or config."""


def save(path, model: torch.nn.Module, *, run: dict, epoch: int, config_hash: str, arch: str) -> None:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format_version": FORMAT_VERSION, "model": state, "run": dict(run), "epoch": int(epoch),
               "config_hash": config_hash, "arch": arch}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path, *, expected_hash: str | None = None) -> dict:
    """Load safely (weights_only) and check it was made by the expected training spec."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for damaged files
        raise CheckpointError(f"checkpoint {path} is damaged or not a vitprobe checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or "model" not in payload or "config_hash" not in payload:
        raise CheckpointError(f"checkpoint {path} is not a vitprobe checkpoint (no 'model'/'config_hash' entries)")
    if expected_hash is not None and payload["config_hash"] != expected_hash:
        raise CheckpointError(
            f"checkpoint {path} was trained with config hash {payload['config_hash']}, but the current "
            f"config gives {expected_hash}: the training config changed since. Delete the run directory "
            f"or restore the config that made it.")
    return payload
