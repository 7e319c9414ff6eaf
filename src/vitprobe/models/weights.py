"""Weights vitprobe did not train: where they come from, how they are read, how their key
names are mapped onto vitprobe's (timm's) modules.

A *source* (`models.<alias>.weights` in the config, `vitprobe.load_model(arch, weights)`):

- ``init``: the model's fresh initialisation (offline runs and tests);
- ``timm``: timm's pretrained weights of a timm model name, downloaded and cached by timm;
- a path to a state-dict file: ``.pth``/``.pt``/``.bin`` (``torch.save`` of a state dict, or a
  dict holding one under ``state_dict`` or ``model``, e.g. the paper release's ``.pth.tar``
  files or a vitprobe checkpoint), or ``.safetensors``; read with ``weights_only=True``;
- an ``http(s)://`` URL of such a file: downloaded once into ``<data root>/weights/`` (only
  with ``download``), with torch hub's hash check when the file name carries one
  (``name-<sha256 prefix>.ext``).

Key layouts converted before loading (``convert``):

- the release's CIFAR ResNets (``xxxnell/how-do-vits-work``, ``models/resnet.py``):
  ``layer0.{0,1}`` (stem conv, BN) -> ``conv1``/``bn1``; in each block ``convN.0`` (conv) and
  ``convN.1`` (BN) -> ``convN``/``bnN``, ``shortcut.{0,1}`` -> ``downsample.{0,1}``;
  ``classifier.0.dense`` -> ``fc``. Same modules, same shapes, same forward: our ResNet
  (timm's blocks) gives the release's outputs.
- timm 0.5's PiT (the release's PiT-Ti): a stage's pooling at its end
  (``transformers.s.pool``) -> timm 1.x's at the start of the next (``transformers.s+1.pool``).
- timm 0.5's Swin (the release's Swin-Ti): timm's own ``checkpoint_filter_fn`` (downsampling
  moved to the next stage, ``head`` -> ``head.fc``, non-persistent buffers dropped).
- ViT-Ti: timm's VisionTransformer keys are unchanged since timm 0.5; loaded as they are.
- ``module.`` prefixes (DataParallel) are stripped.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import torch
from timm.models.pit import PoolingVisionTransformer
from timm.models.swin_transformer import SwinTransformer
from timm.models.swin_transformer import checkpoint_filter_fn as swin_filter

from vitprobe.config.job import WEIGHTS_KEYWORDS as KEYWORDS
from vitprobe.config.job import weights_kind as kind
from vitprobe.config.job import weights_label
from vitprobe.errors import VitprobeError, first_line
from vitprobe.models.checkpoint import CheckpointError, load_state

SUFFIXES = (".pth", ".pth.tar", ".pt", ".bin", ".safetensors")
_HASH = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's convention: name-<sha256 prefix>.ext


class WeightsError(VitprobeError, ValueError):
    """A weights source that cannot be used: unknown, unreadable, not a state dict, or not
    fitting the model."""


def check_source(source: str | os.PathLike, where: str, *, download: bool) -> None:
    """Checks that need no torch and no network, run before any job: a known keyword, a file
    that exists with a known suffix, or a URL allowed to be downloaded. A missing file names
    the nearest file of its folder with a known suffix (a typo in the extension, say)."""
    source = os.fspath(source)
    k = kind(source)
    if k in KEYWORDS:
        return
    allowed = f"init, timm, an http(s) URL or a path of a file ending in {', '.join(SUFFIXES)}"
    name = weights_label(source)
    if k == "url":
        if not name.endswith(SUFFIXES):
            raise WeightsError(f"{where}: the URL {source} names no file ending in {', '.join(SUFFIXES)}")
        if not download:
            raise WeightsError(f"{where}: {source} is a URL, but data.download is false; set it to true, or "
                               f"download the file yourself and give its path")
        return
    path = Path(source)
    if path.is_file():
        if not name.endswith(SUFFIXES):
            raise WeightsError(f"{where}: {source} is a file, but its extension ({path.suffix or 'none'}) is not one "
                               f"vitprobe reads; allowed: {', '.join(SUFFIXES)} (a state-dict file: rename it)")
        return
    if path.is_dir():
        raise WeightsError(f"{where}: {source} is a folder; allowed: {allowed}")
    if any(sep in source for sep in ("/", os.sep, os.altsep) if sep) or path.suffix:  # meant as a path
        near = _nearest(path)
        hint = (f" (did you mean {near}?)" if near else
                "" if path.parent.is_dir() else f" (folder {path.parent} does not exist)")
        raise WeightsError(f"{where}: no such file {source}{hint}; allowed: {allowed}")
    near = difflib.get_close_matches(source, KEYWORDS, n=1, cutoff=0.6)
    raise WeightsError(f"{where}: {source!r} is not a weights source" + (f" (did you mean {near[0]}?)" if near else "")
                       + f"; allowed: {allowed}")


def _nearest(path: Path) -> str | None:
    """The file of `path`'s folder with a known suffix whose name is closest to its name, if close."""
    try:
        names = [p.name for p in path.parent.iterdir() if p.name.endswith(SUFFIXES) and p.is_file()]
    except OSError:
        return None
    found = difflib.get_close_matches(path.name, names, n=1, cutoff=0.8)
    return str(path.parent / found[0]) if found else None


def cached_path(url: str, root) -> Path:
    return Path(root) / "weights" / weights_label(url)


def fetch(url: str, root, *, download: bool) -> Path:
    """The local copy of `url` under `<root>/weights/`, downloaded first if missing (with the
    hash check of torch hub when the name carries a hash)."""
    path = cached_path(url, root)
    if path.is_file():
        return path
    if not download:
        raise WeightsError(f"weights {url} are not in {path.parent} and downloads are off (data.download: false)")
    path.parent.mkdir(parents=True, exist_ok=True)
    found = _HASH.search(path.name)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=found.group(1) if found else None)
    except Exception as exc:  # URLError, HTTPError, hash mismatch (RuntimeError)
        raise WeightsError(f"cannot fetch weights {url}: {first_line(exc)}") from exc
    return path


def read_state_dict(path, *, meta: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of a file (module docstring), on CPU, never unpickling objects. With
    `meta`, tensors on PyTorch's meta device (names and shapes, no data): a .safetensors
    file's header only, a torch.save zip file without reading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.name.endswith(".safetensors"):
        from safetensors import safe_open  # only .safetensors files need it (timm's dependency)
        from safetensors.torch import load_file  # (the same)
        try:
            if not meta:
                return load_file(str(path), device="cpu")
            with safe_open(str(path), framework="pt") as f:
                return {k: torch.empty(f.get_slice(k).get_shape(), device="meta") for k in f.keys()}
        except Exception as exc:
            raise WeightsError(f"weights file {path} is not a readable safetensors file ({first_line(exc)})") from exc
    with open(path, "rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):  # zip (torch >= 1.6) or a legacy pickle
        raise WeightsError(f"weights file {path} was not written by torch.save (nor is it .safetensors); give a "
                           f"state-dict file (.pth, .pth.tar, .safetensors)")
    try:
        obj = torch.load(path, map_location="meta" if meta else "cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"weights file {path} cannot be read safely with torch.load(weights_only=True) "
                           f"({first_line(exc)}); give a state-dict file (.pth, .pth.tar, .safetensors)") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {path} holds no state dict (a dict of tensors, or one under "
                           f"'state_dict' or 'model')")
    return {k.removeprefix("module."): v for k, v in obj.items()}


# ---- key layouts ------------------------------------------------------------------------

_RELEASE_RESNET = [
    (re.compile(r"^layer0\.0\."), "conv1."),
    (re.compile(r"^layer0\.1\."), "bn1."),
    (re.compile(r"^(layer\d+\.\d+)\.conv(\d)\.0\."), r"\1.conv\2."),
    (re.compile(r"^(layer\d+\.\d+)\.conv(\d)\.1\."), r"\1.bn\2."),
    (re.compile(r"^(layer\d+\.\d+)\.shortcut\."), r"\1.downsample."),
    (re.compile(r"^classifier\.0\.dense\."), "fc."),
]


def release_resnet_keys(state: dict) -> dict:
    """The release's ResNet key names -> vitprobe's (module docstring)."""
    out = {}
    for k, v in state.items():
        for pattern, repl in _RELEASE_RESNET:
            k = pattern.sub(repl, k)
        out[k] = v
    return out


def convert(state: dict, model: torch.nn.Module) -> dict:
    """`state` in the key layout of `model` (module docstring); other layouts pass unchanged."""
    if "layer0.0.weight" in state:
        return release_resnet_keys(state)
    if isinstance(model, PoolingVisionTransformer) and "transformers.0.pool.conv.weight" in state:
        return {re.sub(r"^transformers\.(\d+)\.pool\.", lambda m: f"transformers.{int(m[1]) + 1}.pool.", k): v
                for k, v in state.items()}
    if isinstance(model, SwinTransformer) and "layers.0.downsample.reduction.weight" in state:
        return swin_filter(state, model)
    return state


def differences(model: torch.nn.Module, state: dict) -> str:
    """'' if `state` (converted: `convert`) loads into `model` as `load_state_dict` takes it
    (the same keys, the same shapes), else one line: how many keys differ in shape, are
    missing from `state` or are not the model's, and the first of each. Shapes only: `model`
    may be on the meta device, `state` from `read_state_dict(path, meta=True)`."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shape = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    shapes = [k for k in own if k in shape and shape[k] != own[k]]
    missing = [k for k in own if k not in shape]
    unexpected = [k for k in shape if k not in own]
    found = []
    if shapes:
        found.append(f"{len(shapes)} key{'s' if len(shapes) > 1 else ''} differ{'' if len(shapes) > 1 else 's'} in "
                     f"shape, first {shapes[0]} {shape[shapes[0]]} vs {own[shapes[0]]} of the model")
    if missing:
        found.append(f"{len(missing)} of the model's keys missing, first {missing[0]}")
    if unexpected:
        found.append(f"{len(unexpected)} key{'s' if len(unexpected) > 1 else ''} not the model's, first "
                     f"{unexpected[0]}")
    return "; ".join(found)


def check_file(model: torch.nn.Module, path) -> str:
    """`differences` of a weights file and `model` as `load_into` would load it (read with
    `meta`: no tensor data is read; `model` may be on the meta device)."""
    state = read_state_dict(path, meta=True)
    try:
        state = convert(state, model)
    except (NotImplementedError, RuntimeError):  # a conversion that needs the data (e.g. timm resizing a table)
        state = convert(read_state_dict(path), model)
    return differences(model, state)


def load_into(model: torch.nn.Module, source: str | os.PathLike, *, root="data",
              download: bool = False) -> torch.nn.Module:
    """Load the weights of a file or URL `source` into `model` (converted, all keys and
    shapes checked: a mismatch names how many keys differ and the first of each, `differences`)."""
    source = os.fspath(source)
    path = fetch(source, root, download=download) if kind(source) == "url" else Path(source)
    state = convert(read_state_dict(path), model)
    problem = differences(model, state)
    if problem:
        raise WeightsError(f"weights file {path} does not fit the model {type(model).__name__}: {problem}; check "
                           f"the model name and kwargs")
    try:
        return load_state(model, state, path)
    except CheckpointError as exc:  # not reached: `differences` checks what it checks
        raise WeightsError(str(exc)) from None
