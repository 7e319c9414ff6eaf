"""Feature maps: the residual stream, read after every sub-block (README, "Analyses").

`feature_maps(model, images)` runs one forward pass in eval mode under `torch.no_grad`,
reads the residual stream with hooks and returns one `FeatureMap` per reading, in forward
order. Every map is a (B, C, H, W) tensor; tokens are turned into a grid by dropping the
class/register (prefix) tokens and reshaping (B, N, C) to (B, C, sqrt N, sqrt N); Swin's
(B, H, W, C) is permuted. The logits and the final norm are never maps.

What is read, per family (the `kind` of each map in quotes):

- ViT, ViT-GAP, local-MSA ViT (timm VisionTransformer): "embed" = the input of block 0
  (patch embedding + position embedding, after pos_drop/patch_drop/norm_pre); then per
  block x + ls1(attn(norm1(x))) "msa" and x + ls2(mlp(norm2(x))) "mlp": 2 * depth + 1 maps.
- PiT: "embed" = patch embedding + position embedding; per stage after the first the
  pooling layer's output "pool" (the grid halves, the class token goes through a linear
  layer); per block "msa" and "mlp" as for ViT.
- Swin: "embed" = patch embedding (with its norm); per stage after the first the patch
  merging output "pool"; per block "msa" (windowed, shifted or not) and "mlp".
- MLP-Mixer: "embed" = stem (patch embedding); per block x + token_mlp(norm1(x))
  "mixer_token" (the spatial mixing, the Mixer's analogue of MSA) and
  x + channel_mlp(norm2(x)) "mixer_channel".
- ResNet-18/50 (timm ResNet): "stem" = output of conv-BN-ReLU (and the max-pool, an
  identity here); then the output of every residual block "conv": 1 + #blocks maps.
- Pre-activation ResNet and AlterNet: "stem" = output of the stem conv; then the output
  of every block, "conv" for a bottleneck, "msa" for an MSA block. The final BN-ReLU
  before pooling is not a residual block, so the last map is the last block's output.

The same classes built by timm for ImageNet (`resnet50`, `vit_tiny_patch16_224`, `pit_ti_224`,
`swin_tiny_patch4_window7_224`, ...) are read the same way: timm's ResNet "stem" is then the
7x7 conv-BN-ReLU and the max-pool (56x56 at 224 px); the token grids are 14x14 (ViT), 27x27 ->
14x14 -> 7x7 (PiT) and 56 -> 28 -> 14 -> 7 (Swin): odd sides are fine for every probe.
A model of another class: `module_maps(model, images, ["name", ...])` reads the outputs of
the modules named (kind "module"); `map_statistics` reduces maps inside the forward pass
(the probes' streaming path: one map in memory at a time), and `map_per_image` does so over
chunks of images, keeping one value (or array) per image and map.

`depth` = index / (n - 1). Maps keep the model's dtype (half precision is cast to
float32) and device.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
from timm.models.mlp_mixer import MlpMixer
from timm.models.pit import PoolingVisionTransformer
from timm.models.resnet import ResNet
from timm.models.swin_transformer import SwinTransformer
from timm.models.vision_transformer import VisionTransformer

from vitprobe.models.alternet import MSABlock, PreActResNet
from vitprobe.models.modes import eval_mode

KINDS = ("embed", "stem", "msa", "mlp", "conv", "pool", "mixer_token", "mixer_channel", "module")


@dataclass
class FeatureMap:
    index: int  # 0..n-1 in forward order
    name: str  # module path, plus ".msa"/".mlp"/".token"/".channel" for sub-blocks
    kind: str  # one of KINDS
    depth: float  # index / (n - 1)
    tensor: torch.Tensor  # (B, C, H, W), detached


def msa_mask(maps: list[FeatureMap], token_mixing: bool = False) -> list[bool]:
    """True for maps read after an MSA (sub-)block; with token_mixing, also after the
    Mixer's token-mixing MLP."""
    kinds = {"msa", "mixer_token"} if token_mixing else {"msa"}
    return [m.kind in kinds for m in maps]


def feature_maps(model: nn.Module, images: torch.Tensor) -> list[FeatureMap]:
    """The residual stream of `model` on `images` after every sub-block (module docstring).

    The model runs in eval mode without gradients; every module's train/eval flag is
    restored and every hook removed afterwards, also when the forward pass fails.
    """
    found = _forward_hooked(model, images, [], lambda found, handles: _attach(model, found, handles))
    return _numbered(found, FeatureMap)


def _forward_hooked(model: nn.Module, images: torch.Tensor, found: list, attach: Callable) -> list:
    """`attach(found, handles)` hooks, one forward pass in eval mode without gradients, then
    every hook removed and every train/eval flag restored (also when the pass fails): `found`."""
    handles: list = []
    with eval_mode(model):
        try:
            attach(found, handles)
            with torch.no_grad():
                model(images)
        finally:
            for h in handles:
                h.remove()
    return found


def _numbered(found: list, make: Callable) -> list:
    """make(index, *entry[:2], depth, *entry[2:]) per entry, depth = index / (n - 1) (0 for one map)."""
    n = len(found)
    return [make(i, name, kind, i / (n - 1) if n > 1 else 0.0, *rest) for i, (name, kind, *rest) in enumerate(found)]


class _Reduced(list):
    """The `found` list of `_attach`, reducing every map as it arrives: it keeps (name, kind,
    side, {statistic: value}) instead of the tensor, so a forward pass holds one map at a time."""

    def __init__(self, statistics: dict):
        super().__init__()
        self.statistics = statistics

    def append(self, item) -> None:
        name, kind, t = item
        super().append((name, kind, t.shape[-1], {k: f(t) for k, f in self.statistics.items()}))


def map_statistics(model: nn.Module, images: torch.Tensor, statistics: dict[str, Callable],
                   modules: list[str] | None = None) -> list[tuple[int, str, str, float, int, dict]]:
    """`statistics` ({name: function of a (B, C, H, W) map}) of every feature map of
    `feature_maps` (or of the outputs of `modules`, see `module_maps`), computed inside the
    forward pass so that no map outlives its hook: [(index, name, kind, depth, side,
    {name: value})] in forward order. Peak memory is that of one forward pass."""
    def attach(found, handles):
        if modules is None:
            _attach(model, found, handles)
        else:
            _attach_modules(model, modules, found, handles)
    return _numbered(_forward_hooked(model, images, _Reduced(statistics), attach), lambda *row: row)


def module_maps(model: nn.Module, images: torch.Tensor, modules: list[str],
                prefix_tokens: int = 0) -> list[FeatureMap]:
    """Feature maps of any model: the outputs of the named `modules` (`model.named_modules()`
    paths), in forward order, kind "module". A (B, C, H, W) output is kept as it is; a
    (B, N, C) token output becomes (B, C, sqrt N, sqrt N) after dropping `prefix_tokens`;
    a tuple output gives its first element."""
    found = _forward_hooked(model, images, [],
                            lambda found, handles: _attach_modules(model, modules, found, handles, prefix_tokens))
    return _numbered(found, FeatureMap)


def _attach_modules(model, modules, found, handles, prefix_tokens: int = 0) -> None:
    named = dict(model.named_modules())
    missing = [m for m in modules if m not in named]
    if missing:
        raise ValueError(f"modules {', '.join(map(repr, missing[:3]))} are not in {type(model).__name__}; "
                         f"some of its modules: {', '.join(list(named)[1:8])}, ...")
    tokens = _tokens(prefix_tokens)

    def to_map(t):
        return t if t.dim() == 4 else tokens(t)
    for name in modules:
        _on_output(found, handles, named[name], name, "module", to_map,
                   pick=lambda out: out[0] if isinstance(out, (tuple, list)) else out)


# ---- tensor layouts ----------------------------------------------------------------------

def _keep(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    # a copy: later in-place ops of the model must not change a stored map
    return t.clone(memory_format=torch.contiguous_format)


def _tokens(prefix: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """(B, prefix + N, C) -> (B, C, sqrt N, sqrt N)."""
    def to_map(t):
        t = t[:, prefix:]
        B, N, C = t.shape
        side = math.isqrt(N)
        if side * side != N:
            raise ValueError(f"{N} tokens (after dropping {prefix} prefix tokens) are not a square grid")
        return t.transpose(1, 2).reshape(B, C, side, side)
    return to_map


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


def _nchw(t: torch.Tensor) -> torch.Tensor:
    return t


# ---- hooks ---------------------------------------------------------------------------------

def _on_output(found, handles, module, name, kind, to_map=_nchw, pick=lambda out: out):
    def hook(mod, args, out):
        found.append((name, kind, _keep(to_map(pick(out)))))
    handles.append(module.register_forward_hook(hook))


def _on_input(found, handles, module, name, kind, to_map=_nchw, pick=lambda x: x):
    def hook(mod, args, kwargs):
        x = args[0] if args else next(iter(kwargs.values()))
        found.append((name, kind, _keep(to_map(pick(x)))))
    handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))


def _residual_block(found, handles, blk, name, to_map, branches, kinds):
    """A block x -> x + b1(...) -> (...) + b2(...) whose branches end in `branches`
    (modules whose outputs are the residual branches, in call order; one module may
    serve both, as in Mixer). Reads x + b1 after the first branch and the block output."""
    state = {}

    def pre(mod, args, kwargs):
        state["x"], state["calls"] = (args[0] if args else kwargs["x"]), 0
    handles.append(blk.register_forward_pre_hook(pre, with_kwargs=True))

    def first_branch(mod, args, out):
        state["calls"] += 1
        if state["calls"] == 1:
            found.append((f"{name}.{kinds[0][1]}", kinds[0][0], _keep(to_map(state["x"] + out))))
    handles.append(branches.register_forward_hook(first_branch))
    _on_output(found, handles, blk, f"{name}.{kinds[1][1]}", kinds[1][0], to_map)


def _attach(model: nn.Module, found: list, handles: list) -> None:


    attn_kinds = (("msa", "msa"), ("mlp", "mlp"))
    if isinstance(model, VisionTransformer):
        to_map = _tokens(model.num_prefix_tokens)
        _on_input(found, handles, model.blocks[0], "embed", "embed", to_map)
        for i, blk in enumerate(model.blocks):
            _residual_block(found, handles, blk, f"blocks.{i}", to_map, blk.drop_path1, attn_kinds)
    elif isinstance(model, PoolingVisionTransformer):
        to_map = _tokens(model.cls_token.shape[1])
        stages = model.transformers
        _on_input(found, handles, stages[0], "embed", "embed", pick=lambda xc: xc[0])
        for s, stage in enumerate(stages):
            if stage.pool is not None:
                _on_output(found, handles, stage.pool, f"transformers.{s}.pool", "pool",
                           pick=lambda xc: xc[0])
            for i, blk in enumerate(stage.blocks):
                _residual_block(found, handles, blk, f"transformers.{s}.blocks.{i}", to_map,
                                blk.drop_path1, attn_kinds)
    elif isinstance(model, SwinTransformer):
        _on_output(found, handles, model.patch_embed, "embed", "embed", _nhwc)
        for s, stage in enumerate(model.layers):
            if not isinstance(stage.downsample, nn.Identity):
                _on_output(found, handles, stage.downsample, f"layers.{s}.downsample", "pool", _nhwc)
            for i, blk in enumerate(stage.blocks):
                # the block reshapes to (B, H*W, C) before the MLP and back at the end
                _residual_block(found, handles, blk, f"layers.{s}.blocks.{i}", _nhwc,
                                blk.drop_path1, attn_kinds)
    elif isinstance(model, MlpMixer):
        to_map = _tokens(0)
        _on_output(found, handles, model.stem, "embed", "embed", to_map)
        for i, blk in enumerate(model.blocks):
            # MixerBlock applies its one drop_path to both branches: the first call is token mixing
            _residual_block(found, handles, blk, f"blocks.{i}", to_map, blk.drop_path,
                            (("mixer_token", "token"), ("mixer_channel", "channel")))
    elif isinstance(model, (ResNet, PreActResNet)):
        stem = model.maxpool if isinstance(model, ResNet) else model.conv1
        _on_output(found, handles, stem, "stem", "stem")
        stages = [(n, m) for n, m in model.named_children() if re.fullmatch(r"layer\d+", n)]
        for stage_name, stage in sorted(stages, key=lambda nm: int(nm[0][5:])):
            for i, blk in enumerate(stage):
                kind = "msa" if isinstance(blk, MSABlock) else "conv"
                _on_output(found, handles, blk, f"{stage_name}.{i}", kind)
    else:
        raise TypeError(f"feature_maps: unsupported model {type(model).__name__}; supported: "
                        "timm VisionTransformer (incl. LocalViT), PoolingVisionTransformer, "
                        "SwinTransformer, MlpMixer, ResNet, and vitprobe's PreActResNet/AlterNet")


def _per_image(value, n: int, name: str) -> np.ndarray:
    """`value` (a tensor or an array, first axis = the chunk's `n` images) as a float64 numpy
    array on the CPU, or a ValueError naming the map whose statistic has another first axis."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
    out = np.asarray(value, dtype=np.float64)
    if out.ndim == 0 or out.shape[0] != n:
        raise ValueError(f"map {name}: the per-image statistic has shape {out.shape}; its first axis must be the "
                         f"chunk's {n} images")
    return out


def map_per_image(model: nn.Module, chunks, statistic: Callable, modules: list[str] | None = None,
                  progress=lambda it: it) -> tuple[list[tuple[int, str, str, float, int, "np.ndarray"]], int]:
    """Per feature map, `statistic(map)` of every image over `chunks` of images: [(index, name,
    kind, depth, side, values)] in forward order, and the number of images n. `statistic` takes
    a chunk's (B, C, H, W) map and returns one value or one array per image (a tensor or an
    array whose first axis is the B images); `values` is their float64 concatenation over the
    chunks, (n, ...), row j the j-th image given (its position in `chunks`). Each map is
    reduced inside the forward pass (`map_statistics`), so memory grows only with n times the
    size of one image's value, never with the maps."""
    meta, parts, n = None, None, 0
    for x in progress(chunks):
        maps = map_statistics(model, x, {"s": statistic}, modules)
        stats = [_per_image(m[-1]["s"], len(x), m[1]) for m in maps]
        if meta is None:
            meta, parts = [m[:5] for m in maps], [[s] for s in stats]
        elif [m[:5] for m in maps] != meta:
            raise ValueError(f"chunk of images {n}..{n + len(x) - 1} gave other feature maps than the first chunk")
        else:
            for part, s in zip(parts, stats):
                part.append(s)
        n += len(x)
    if not n:
        raise ValueError("no images given")
    return [(*m, np.concatenate(part)) for m, part in zip(meta, parts)], n


def map_means(model: nn.Module, chunks, statistic: Callable, modules: list[str] | None = None,
              progress=lambda it: it) -> tuple[list[tuple[int, str, str, float, int, "np.ndarray"]], int]:
    """Per feature map, the mean over images of `map_per_image` (same `statistic`: one value
    or array per image): [(index, name, kind, depth, side, mean)], and the number of images.
    Chunking changes nothing but memory."""
    maps, n = map_per_image(model, chunks, statistic, modules, progress)
    return [(*m[:5], m[5].mean(axis=0)) for m in maps], n
