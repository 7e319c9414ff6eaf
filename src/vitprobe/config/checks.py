"""The semantic checks of a config that a JSON schema cannot express, each a one-line
`ConfigError` naming the key, what is wrong and what is allowed, run by `Plan` before any
job starts: known models whose keyword arguments build (each built once on PyTorch's `meta`
device: no memory, no compute), epochs that are checkpoints, kernel sizes that fit the
token grid, weights files whose keys and shapes fit their model (read without their data),
probe settings (a probe module's own `check`), shards, figures and their keys."""

from __future__ import annotations

import importlib.util

import torch

from vitprobe import catalog, models
from vitprobe.config.identity import fraction_token, model_kwargs, series_matches
from vitprobe.data.registry import DATASETS, num_classes
from vitprobe.errors import ConfigError, first_line
from vitprobe.models import recipe, weights


def check_config(plan) -> None:
    """What needs no runs: models, epochs, augmentation, tensorboard."""
    _models(plan)
    _epochs(plan)
    _augment(plan.config)
    if plan.config.get("tensorboard") and importlib.util.find_spec("tensorboard") is None:
        raise ConfigError("tensorboard: true needs the tensorboard package: pip install "
                          "'vitprobe[tensorboard]', or set tensorboard: false")


def check_experiment(plan, name: str, exp: dict, dataset: str) -> None:
    """An experiment before its runs are expanded: its dataset's training split, kernel sizes."""
    if not DATASETS[dataset].has_training_split:
        trained = [m for m in exp["models"] if not plan.imported(m)]
        if trained:
            key = f"experiments.{name}.dataset" if "dataset" in exp else "data.dataset"
            raise ConfigError(f"{key}: {dataset} has no training split, so the models of experiment {name} need "
                              f"imported weights (models.<alias>.weights); {', '.join(trained)} would be trained")
    if exp.get("kernel_sizes") and not any(plan.model_info(m).local_attention for m in exp["models"]):
        local = sorted(n for n, i in models.MODELS.items() if i.local_attention)
        raise ConfigError(f"experiments.{name}.kernel_sizes: none of its models ({', '.join(exp['models'])}) uses "
                          f"local attention, so kernel sizes would be ignored; remove the key or add a "
                          f"local-attention model ({', '.join(local)})")
    for model in exp["models"]:
        if not plan.model_info(model).local_attention:
            continue
        kernels = exp.get("kernel_sizes")
        if not kernels:
            raise ConfigError(f"experiments.{name}.kernel_sizes: required, because {model!r} uses local attention")
        grid = plan.token_grid(model)
        for k in kernels:
            if not 1 <= k <= grid:
                raise ConfigError(f"experiments.{name}.kernel_sizes: {k} does not fit the {grid}x{grid} "
                                  f"token grid of {model!r}; allowed: 1..{grid} ({grid} = global)")


def check_plan(plan) -> None:
    """What needs the runs: model kwargs, probe settings, shards, figures."""
    _model_kwargs(plan)
    _weights_fit(plan)
    _probe_settings(plan)
    _shards(plan)
    _figures(plan)


def _models(plan) -> None:
    MODELS, config = models.MODELS, plan.config
    known = sorted(MODELS)
    download = config["data"].get("download", True)
    for name, alias in config.get("models", {}).items():
        if "weights" in alias:
            if not models.is_known(alias["arch"]):
                raise ConfigError(f"models.{name}.arch: unknown model {alias['arch']!r}: neither a vitprobe model "
                                  f"({', '.join(known)}) nor a timm model (timm.list_models())")
            if alias["weights"] == "timm" and alias["arch"] in MODELS:
                raise ConfigError(f"models.{name}.weights: timm has no pretrained weights for the vitprobe model "
                                  f"{alias['arch']!r}; allowed: init, a path or a URL")
            try:
                weights.check_source(alias["weights"], f"models.{name}.weights", download=download)
            except weights.WeightsError as exc:
                raise ConfigError(str(exc)) from None
        elif alias["arch"] not in MODELS:
            raise ConfigError(f"models.{name}.arch: unknown model {alias['arch']!r}; allowed: {', '.join(known)} "
                              f"(any timm model name with models.{name}.weights set)")
        if name in MODELS:
            raise ConfigError(f"models.{name}: an alias may not shadow the registered model {name!r}")
    allowed = known + sorted(config.get("models", {}))
    for exp_name, exp in config["experiments"].items():
        for model in exp["models"]:
            if not plan.imported(model) and plan.model_spec(model)["arch"] not in MODELS:
                raise ConfigError(f"experiments.{exp_name}.models: unknown model {model!r}; "
                                  f"allowed: {', '.join(allowed)}")


def _model_kwargs(plan) -> None:
    """Build every configured model once on the meta device (no memory, no compute), so
    kwargs the entry point does not take, or of the wrong type, fail before any job."""
    built = set()
    for run in plan.runs:
        if run.model in built:
            continue
        built.add(run.model)
        spec = plan.model_spec(run.model)
        kwargs = model_kwargs(spec, plan.config["train"], run.kernel_size)
        where = f"models.{run.model}.kwargs" if run.model in plan.config.get("models", {}) else run.model
        if "num_classes" in spec["kwargs"]:
            classes = num_classes(plan.train_spec(run)["data"])
            raise ConfigError(f"{where}.num_classes: a run's number of classes comes from its dataset "
                              f"({run.dataset}: {classes}); remove num_classes from the kwargs")
        try:
            with torch.device("meta"):
                models.create_any(spec["arch"], num_classes=10, **kwargs)
        except Exception as exc:  # TypeError/ValueError/... from the model's constructor
            call = ", ".join(f"{k}={v!r}" for k, v in spec["kwargs"].items())
            raise ConfigError(f"{where}: {spec['arch']}({call})"
                              f" cannot be built: {first_line(exc)}; see the keyword arguments of "
                              f"{_entry_point(spec['arch'])}") from None


def _entry_point(arch: str) -> str:
    """Where a model's keyword arguments are documented: vitprobe's entry point, or timm's."""
    return f"vitprobe.models.{arch}" if arch in models.MODELS else f"timm's {arch} (timm.create_model({arch!r}, ...))"


def _weights_fit(plan) -> None:
    """A weights file (models.<alias>.weights) against the model of each of its runs, as
    `vitprobe import-weights` will load it: names and shapes only, the model on the meta device
    (`recipe.weights_misfit`). URLs are checked by the import job, once downloaded."""
    seen = set()
    for run in plan.imported_runs:
        spec = plan.train_spec(run)
        source = spec["model"]["weights"]
        key = (run.model, num_classes(spec["data"]), run.kernel_size)
        if weights.kind(source) != "file" or key in seen:
            continue
        seen.add(key)
        try:
            problem = recipe.weights_misfit(spec)
        except weights.WeightsError as exc:
            raise ConfigError(f"models.{run.model}.weights: {exc}") from None
        if problem:
            call = ", ".join([*(f"{k}={v!r}" for k, v in spec["model"]["kwargs"].items()), f"num_classes={key[1]}"])
            raise ConfigError(f"models.{run.model}.weights: {source} does not fit {spec['model']['arch']} ({call}, "
                              f"for {run.dataset}): {problem}; give that model's weights, or change "
                              f"models.{run.model}.arch/kwargs")


def _augment(config: dict) -> None:
    ra = config.get("train", {}).get("augment", {}).get("randaugment")
    if not ra:
        return
    own = {"timm": ("prob", "magnitude_max", "interpolation"), "torchvision": ("group_size",)}
    for impl, keys in own.items():
        for key in keys:
            if key in ra and ra["impl"] != impl:
                raise ConfigError(f"train.augment.randaugment.{key}: only for impl: {impl} (impl is "
                                  f"{ra['impl']}); remove it or set impl: {impl}")


def _epochs(plan) -> None:
    train = plan.config["train"]
    total = train["epochs"]
    if train["warmup_epochs"] > total:
        raise ConfigError(f"train.warmup_epochs: {train['warmup_epochs']} exceeds train.epochs ({total})")
    for e in train["checkpoint_epochs"]:
        if not 0 <= e <= total:
            raise ConfigError(f"train.checkpoint_epochs: {e} is outside 0..train.epochs ({total})")
    for probe in plan.config["probes"]:
        for e in plan.probe_epochs(probe):
            if e not in plan.checkpoint_epochs:
                raise ConfigError(f"probes.{probe}.epochs: {e} is not a checkpoint epoch; "
                                  f"allowed: {plan.checkpoint_epochs} (train.checkpoint_epochs)")


def _probe_settings(plan) -> None:
    """A probe module's own `check(settings, config)`, where it has one."""
    for probe, settings in plan.config["probes"].items():
        check = getattr(catalog.module_of(probe), "check", None)
        if check is not None:
            check(settings, plan.config)


def _shards(plan) -> None:
    """`shards` of a probe: 1 unless it is shardable, at most its mini-batches (`n_batches`, or
    with `all` those of the run with the smallest training set, where the size is known)."""
    for probe, cfg in plan.config["probes"].items():
        shards = cfg.get("shards", 1)
        if shards > 1 and not catalog.PROBES[probe].shardable:
            raise ConfigError(f"probes.{probe}.shards: the {probe} probe cannot be split; allowed: 1")
        if cfg.get("n_batches") != "all":
            if shards > cfg.get("n_batches", shards):
                raise ConfigError(f"probes.{probe}.shards: {shards} exceeds the {cfg['n_batches']} mini-batches of "
                                  f"probes.{probe}.n_batches; allowed: 1..{cfg['n_batches']}")
            continue
        sized = [(size, run) for run in plan.runs if (size := plan.train_size(run)) is not None]
        for size, run in sorted(sized)[:1]:  # the run with the fewest mini-batches
            batches = size // cfg["batch_size"]
            if not batches:
                raise ConfigError(f"probes.{probe}.n_batches: all gives no mini-batch of {cfg['batch_size']} "
                                  f"images for run {run.id} ({size} training images); allowed: an integer "
                                  f">= 1, or a probes.{probe}.batch_size of at most {size}")
            if shards > batches:
                raise ConfigError(f"probes.{probe}.shards: {shards} exceeds the {batches} mini-batches of "
                                  f"{cfg['batch_size']} images of run {run.id} (n_batches: all, {size} training "
                                  f"images); allowed: 1..{batches}")


def _figures(plan) -> None:
    for fig, spec in plan.config.get("figures", {}).items():
        kind = plan.figure_kind(fig)
        if kind not in catalog.FIGURES:
            where = f"figures.{fig}.figure" if "figure" in spec else f"figures.{fig}"
            raise ConfigError(f"{where}: unknown figure {kind!r}; allowed: "
                              f"{', '.join(catalog.FIGURES)} (a figure of another name sets figure: to one)")
        missing = [key for key in catalog.FIGURES[kind].needs if key not in spec]
        if missing:
            raise ConfigError(f"figures.{fig}: {kind} needs the key{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(missing)}; add {' and '.join(f'{k}:' for k in missing)} to its block")
        for exp in spec["experiments"]:
            if exp not in plan.experiments:
                raise ConfigError(f"figures.{fig}.experiments: unknown experiment {exp!r}; "
                                  f"allowed: {', '.join(sorted(plan.experiments))}")
        candidates = {r for exp in spec["experiments"] for r in plan.experiments[exp]}
        for i, series in enumerate(spec.get("series") or []):
            if not any(series_matches(series, r) for r in candidates):
                have = ", ".join(sorted({f"{r.model} (k{r.kernel_size}, f{fraction_token(r.fraction)})"
                                         for r in candidates}))
                raise ConfigError(f"figures.{fig}.series.{i} ({series['label']!r}): matches no run of experiments "
                                  f"{', '.join(spec['experiments'])}; their runs: {have}")
        epoch = spec.get("epoch")
        for table in plan.figure_tables(fig):
            if table == catalog.TRAIN_LOG:
                imported = [r.id for r in plan.figure_runs(fig) if plan.imported(r)]
                if imported:
                    raise ConfigError(f"figures.{fig}: needs training logs, but {', '.join(imported)} has imported "
                                      f"weights (no training)")
                continue
            if table == catalog.SEARCH_TABLE:
                if not plan.search:
                    raise ConfigError(f"figures.{fig}: draws the build-up search; add a search: block to the "
                                      f"config (search.base: a pre-activation ResNet)")
                continue
            probe = catalog.probe_of(table)
            if probe not in plan.config["probes"]:
                raise ConfigError(f"figures.{fig}: needs the {probe!r} probe; add probes.{probe} to the config")
            for run in plan.figure_runs(fig):
                allowed = plan.run_probe_epochs(run, probe)
                if not allowed:
                    raise ConfigError(f"figures.{fig}: needs probes.{probe}, which reads training (or CIFAR-C) "
                                      f"images, but run {run.id} is on {run.dataset} (no training split); drop it "
                                      f"from the series")
                if epoch is not None and epoch not in allowed:
                    why = ("its weights are imported: its one checkpoint is epoch 0" if plan.imported(run)
                           else f"probes.{probe}.epochs")
                    raise ConfigError(f"figures.{fig}.epoch: {epoch} is not analyzed by probes.{probe} for run "
                                      f"{run.id}; allowed: {allowed} ({why})")
