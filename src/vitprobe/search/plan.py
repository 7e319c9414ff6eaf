"""The build-up search's part of the plan: its spec from the config's `search:` block,
checked (the base is a pre-activation ResNet, a stage to search exists, the decision epoch
is a checkpoint), and which runs are its candidates."""

from __future__ import annotations

import torch

from vitprobe import models
from vitprobe.config.identity import NO_KERNEL, Run, model_kwargs
from vitprobe.errors import ConfigError, first_line
from vitprobe.models.alternet import MSABlock, PreActResNet
from vitprobe.search import walk


def setup(config: dict, model_spec, checkpoint_epochs: list[int]) -> dict | None:
    """The search's spec (what `vitprobe search-step` needs), or None without a `search:`
    block; `model_spec(name)` resolves a model name as the plan does."""
    cfg = config.get("search")
    if not cfg:
        return None

    base = cfg["base"]
    spec = model_spec(base)
    if spec["arch"] not in models.MODELS:
        raise ConfigError(f"search.base: unknown model {base!r}; allowed: {', '.join(sorted(models.MODELS))} "
                          f"or an alias under models:")
    try:
        with torch.device("meta"):
            net = models.create(spec["arch"], num_classes=10, **model_kwargs(spec, config["train"], 0))
    except Exception as exc:  # noqa: BLE001 - the model's constructor
        raise ConfigError(f"search.base: {base!r} cannot be built: {first_line(exc)}") from None
    if not isinstance(net, PreActResNet):
        allowed = sorted(n for n, i in models.MODELS.items() if i.family in ("preact_resnet", "alternet"))
        raise ConfigError(f"search.base: {base!r} ({spec['arch']}) is not a pre-activation ResNet; the build-up "
                          f"rule starts from one: {', '.join(allowed)} or an alias of them")
    n_stages = net.num_stages
    layers = [len(getattr(net, f"layer{i + 1}")) for i in range(n_stages)]
    start = [sum(isinstance(b, MSABlock) for b in getattr(net, f"layer{i + 1}")) for i in range(n_stages)]
    if "stages" in cfg and not cfg["stages"]:
        raise ConfigError("search.stages: empty, so there is no stage to search; list stages 1.."
                          f"{n_stages} in search order, or leave the key out (every stage, last to first)")
    stages = cfg.get("stages") or list(range(n_stages, 0, -1))
    bad = [st for st in stages if not 1 <= st <= n_stages]
    if bad:
        raise ConfigError(f"search.stages: stage {bad[0]} does not exist in {base!r}; allowed: 1..{n_stages}")
    if all(start[st - 1] >= walk.max_msa(layers[st - 1]) for st in stages):
        raise ConfigError(f"search.stages: no stage to search: stages {stages} of {base!r} (blocks {layers}, "
                          f"MSA {start}) hold no more MSA blocks (at most blocks // 2 per stage)")
    epoch = cfg.get("epoch", config["train"]["epochs"])
    if epoch not in checkpoint_epochs:
        raise ConfigError(f"search.epoch: {epoch} is not a checkpoint epoch; allowed: {checkpoint_epochs}")
    full = [walk.max_msa(n) if i + 1 in stages else m for i, (n, m) in enumerate(zip(layers, start))]
    try:
        with torch.device("meta"):
            full_spec = {**spec, "kwargs": {**spec["kwargs"], "msa_blocks": full}}
            models.create(spec["arch"], num_classes=10, **model_kwargs(full_spec, config["train"], 0))
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"search.base: {base!r} with MSA blocks {full} cannot be built: "
                          f"{first_line(exc)}") from None
    return {"base": base, "dataset": config["data"]["dataset"], "layers": layers, "start": start,
            "stages": stages, "budget": cfg["budget"], "holdout": cfg["holdout"], "seed": cfg["seed"],
            "epoch": epoch}


def is_candidate(search: dict | None, run: Run) -> bool:
    """True for a candidate of the configured search (any layout the rule may reach)."""
    s = search
    if not s or (run.dataset, run.kernel_size, run.fraction, run.seed) != (s["dataset"], NO_KERNEL, 1.0, s["seed"]):
        return False
    layout = walk.parse_candidate(s["base"], run.model)
    return (layout is not None and len(layout) == len(s["layers"])
            and all(m0 <= m <= walk.max_msa(n) for m, m0, n in zip(layout, s["start"], s["layers"])))


def candidate_run(search: dict, layout) -> Run:
    return Run(search["dataset"], walk.candidate_model(search["base"], layout), NO_KERNEL, 1.0, search["seed"])
