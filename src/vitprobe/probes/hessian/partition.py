"""The block rule of the per-block Hessian spectra (`vitprobe.probes.hessian_blocks`): a
partition of a model's trainable parameters into blocks whose diagonal Hessian blocks are analysed.

**The block rule** (`partition`), on every registered model and timm's: a *unit* is the
deepest module on a parameter's path whose name ends in an integer index (``blocks.3``,
``layer2.0``, ``layers.1.blocks.0``) and that is not the parameter's own layer (so
``layer2.0.downsample.0`` belongs to the unit ``layer2.0``). Within a unit, a parameter's
*kind* is: qkv (under an ``attn*`` module, in its qkv/q/k/v/kv layer), attn_proj (its
output projection ``proj``/``out*``), attn_other (anything else under ``attn*``: relative-
position tables), mlp (under an ``mlp*`` module), norm (in a normalisation layer), conv, linear
(a convolution or a linear layer elsewhere: a shortcut, a pooling or merging layer), other.
Outside the units: embed (the parameters before the first unit: patch or stem
convolution, its norm, class token, positional embedding), final_norm and head (the norms and
the rest after the last unit). A block is a (unit, kind) pair, named ``<unit>:<kind>``; its
depth is the unit's position (0 for embed, units 1..U in parameter order, U + 1 after them).
MSA blocks are the kinds qkv, attn_proj and attn_other. `blocks=` in `vitprobe.probes.hessian_blocks.measure.compute` takes any
other grouping (block name -> parameter names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

KINDS = ("embed", "qkv", "attn_proj", "attn_other", "mlp", "norm", "conv", "linear", "other", "final_norm", "head",
         "user")
MSA_KINDS = ("qkv", "attn_proj", "attn_other")
_QKV = re.compile(r"^(qkv|q|k|v|kv|q_proj|k_proj|v_proj|query|key|value|in_proj.*)$")
_OUT = re.compile(r"^(proj|out.*|o_proj)$")


@dataclass(frozen=True)
class Block:
    """A group of trainable parameters whose diagonal Hessian block is analysed."""
    name: str
    kind: str
    depth: int
    params: tuple[str, ...]
    size: int

    @property
    def msa(self) -> bool:
        return self.kind in MSA_KINDS


def _is_norm(module: nn.Module) -> bool:
    from torch import nn  # here, not at the top: the probe's declaration reads KINDS without torch

    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)) or \
        "norm" in type(module).__name__.lower()


def _unit_of(name: str, modules: dict) -> str | None:
    parts = name.split(".")
    owner = ".".join(parts[:-1])
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        if parts[i - 1].isdigit() and prefix != owner and prefix in modules and \
                next(modules[prefix].children(), None) is not None:
            return prefix
    return None


def _kind_in_unit(sub: list[str], owner: nn.Module) -> str:
    """The kind of a parameter at path `sub` (its unit's prefix removed; the last element is
    the parameter's own name) in layer `owner`."""
    from torch import nn  # (as in _is_norm)

    layers = sub[:-1]
    at = next((i for i, s in enumerate(layers) if s.startswith("attn") or s == "attention"), None)
    if at is not None:
        inner = layers[at + 1:]
        if inner and _QKV.match(inner[-1]) or (not inner and _QKV.match(sub[-1].split("_")[0])):
            return "qkv"
        if inner and _OUT.match(inner[-1]):
            return "attn_proj"
        return "attn_other"
    if any(s.startswith("mlp") for s in layers):
        return "mlp"
    if _is_norm(owner):
        return "norm"
    if isinstance(owner, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(owner, nn.Linear):
        return "linear"
    return "other"


def partition(model: nn.Module, blocks: dict[str, list[str]] | None = None) -> list[Block]:
    """The model's trainable parameters split into blocks: by the block rule (module
    docstring), or by `blocks` (block name -> parameter names), which must name every
    trainable parameter exactly once. In parameter order (a user's blocks: in dict order)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no parameters with requires_grad=True")
    sizes = {n: p.numel() for n, p in named}
    if blocks is not None:
        return _user_blocks(blocks, sizes)
    modules = dict(model.named_modules())
    units = [_unit_of(n, modules) for n, _ in named]
    order = list(dict.fromkeys(u for u in units if u is not None))
    first = units.index(order[0]) if order else len(named)
    last = max(i for i, u in enumerate(units) if u is not None) if order else -1
    groups: dict[str, list] = {}
    for i, ((name, _), unit) in enumerate(zip(named, units)):
        owner = modules.get(name.rsplit(".", 1)[0], model) if "." in name else model
        if unit is not None:
            kind = _kind_in_unit(name[len(unit) + 1:].split("."), owner)
            key, depth = f"{unit}:{kind}", order.index(unit) + 1
        elif i < first:
            key, kind, depth = "embed", "embed", 0
        elif i > last:
            kind = "final_norm" if _is_norm(owner) else "head"
            key, depth = kind, len(order) + 1
        else:
            key, kind, depth = f"{name.rsplit('.', 1)[0] or name}:other", "other", order.index(
                next(u for u in reversed(units[:i]) if u is not None)) + 1
        groups.setdefault(key, [kind, depth, []])[2].append(name)
    out = [Block(key, kind, depth, tuple(names), sum(sizes[n] for n in names))
           for key, (kind, depth, names) in groups.items()]
    return sorted(out, key=lambda b: (b.depth, [n for n, _ in named].index(b.params[0])))


def _user_blocks(blocks: dict, sizes: dict[str, int]) -> list[Block]:
    if not isinstance(blocks, dict) or not blocks:
        raise ValueError("blocks must be a non-empty dict of block name -> list of parameter names")
    seen: dict[str, str] = {}
    for name, params in blocks.items():
        if isinstance(params, str) or not params:
            raise ValueError(f"blocks[{name!r}] must be a non-empty list of parameter names, got {params!r}")
        for p in params:
            if p not in sizes:
                raise ValueError(f"blocks[{name!r}] names {p!r}, not a trainable parameter of the model; allowed: "
                                 f"the names of model.named_parameters() with requires_grad")
            if p in seen:
                raise ValueError(f"parameter {p!r} is in two blocks, {seen[p]!r} and {name!r}; each must be in one")
            seen[p] = name
    left = [p for p in sizes if p not in seen]
    if left:
        raise ValueError(f"blocks leave {len(left)} trainable parameter(s) out ({', '.join(left[:5])}"
                         f"{', …' if len(left) > 5 else ''}); every trainable parameter must be in one block")
    return [Block(name, "user", i, tuple(params), sum(sizes[p] for p in params))
            for i, (name, params) in enumerate(blocks.items())]


def check_k(blocks: list[Block], k: int, where: str = "k") -> None:
    """k must not exceed any block's size (H_bb has `size` eigenvalues)."""
    small = [b for b in blocks if b.size < k]
    if small:
        raise ValueError(f"{where} = {k} exceeds the size of block {small[0].name} ({small[0].size} parameters); "
                         f"allowed: k <= {min(b.size for b in blocks)}, the smallest block's size")
