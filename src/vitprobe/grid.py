"""The run grid: run identity, and the plan of runs, checkpoints, probes and figures
derived from a validated config. Nothing here trains or imports Snakemake."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import cached_property

import torch

from vitprobe import catalog, models
from vitprobe.errors import ConfigError, first_line
from vitprobe.series import fraction_token, parse_fraction, series_matches

__all__ = ["ConfigError", "Plan", "Run", "parse_fraction", "series_matches"]  # ConfigError: re-exported

# (classes, training images per class) of the datasets whose size is fixed (synthetic: from
# its config); the class-stratified fraction f keeps max(1, round(f·per class)) per class.
TRAIN_PER_CLASS = {"cifar10": (10, 5000), "cifar100": (100, 500), "fashion_mnist": (10, 6000),
                   "fashion_mnist_subset": (10, 500)}
NO_KERNEL = 0  # kernel_size of models without local attention ("k0" in run ids)
RUN_ID_REGEX = r"[a-z0-9_]+-[a-z0-9_]+-k\d+-f\d+(?:of\d+)?-s\d+"
_RUN_ID = re.compile(r"(?P<dataset>[a-z0-9_]+)-(?P<model>[a-z0-9_]+)-k(?P<kernel>\d+)"
                     r"-f(?P<num>\d+)(?:of(?P<den>\d+))?-s(?P<seed>\d+)")


@dataclass(frozen=True, order=True)
class Run:
    """One trained model: (dataset, model, kernel_size, fraction, seed)."""

    dataset: str
    model: str
    kernel_size: int
    fraction: float
    seed: int

    @property
    def id(self) -> str:
        """e.g. 'cifar100-vit_ti_cifar-k0-f1of64-s0' (k0: the model has no kernel size)."""
        return (f"{self.dataset}-{self.model}-k{self.kernel_size}"
                f"-f{fraction_token(self.fraction)}-s{self.seed}")

    @classmethod
    def parse(cls, run_id: str) -> "Run":
        m = _RUN_ID.fullmatch(run_id)
        if m is None:
            raise ValueError(f"not a run id: {run_id!r} (expected e.g. 'cifar100-vit_ti_cifar-k0-f1of64-s0')")
        fraction = Fraction(int(m["num"]), int(m["den"] or 1))
        return cls(m["dataset"], m["model"], int(m["kernel"]), float(fraction), int(m["seed"]))

    def columns(self) -> dict:
        """The grid columns every result row carries (epoch is added per checkpoint)."""
        return asdict(self)


def config_hash(spec: dict) -> str:
    """A short content hash of a JSON-able spec (key order does not matter)."""
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def model_kwargs(model_spec: dict, train: dict, kernel_size: int) -> dict:
    """The keyword arguments a run's model is built with: its alias's kwargs, the stochastic
    depth rate of the training config (an alias's own value wins) and the run's kernel size."""
    kwargs = dict(model_spec["kwargs"])
    if train.get("drop_path_rate"):
        kwargs.setdefault("drop_path_rate", train["drop_path_rate"])
    if kernel_size:
        kwargs["kernel_size"] = kernel_size
    return kwargs


def train_hash(spec: dict) -> str:
    """Hash of the training part of a spec; stored in checkpoints and every result row."""
    return config_hash({k: spec[k] for k in ("run", "data", "model", "train")})


class Plan:
    """Everything the pipeline will make, derived from a schema-validated config.

    Semantic checks that a JSON schema cannot express (known models, kernel sizes that fit
    the token grid, probe epochs that are checkpoints, figure experiments that exist) run
    here, at construction, before any job starts.
    """

    def __init__(self, config: dict):
        self.config = config
        self._check_models()
        self._check_epochs()
        self.experiments = {name: self._expand(name, exp) for name, exp in config["experiments"].items()}
        self._check_model_kwargs()
        self._check_shards()
        self._check_figures()
        if config.get("tensorboard"):
            if importlib.util.find_spec("tensorboard") is None:
                raise ConfigError("tensorboard: true needs the tensorboard package: pip install "
                                  "'vitprobe[tensorboard]', or set tensorboard: false")

    # ---- models -------------------------------------------------------------------
    def model_spec(self, model: str) -> dict:
        """{'arch': registered timm name, 'kwargs': {...}} for a grid model name."""
        alias = self.config.get("models", {}).get(model)
        if alias is not None:
            return {"arch": alias["arch"], "kwargs": dict(alias.get("kwargs", {}))}
        return {"arch": model, "kwargs": {}}

    def model_info(self, model: str):
        return models.MODELS[self.model_spec(model)["arch"]]

    def token_grid(self, model: str) -> int | None:
        info = self.model_info(model)
        patch = self.model_spec(model)["kwargs"].get("patch_size")
        return 32 // patch if patch else info.token_grid

    def _check_models(self) -> None:
        MODELS = models.MODELS
        known = sorted(MODELS)
        for name, alias in self.config.get("models", {}).items():
            if alias["arch"] not in MODELS:
                raise ConfigError(f"models.{name}.arch: unknown model {alias['arch']!r}; allowed: {', '.join(known)}")
            if name in MODELS:
                raise ConfigError(f"models.{name}: an alias may not shadow the registered model {name!r}")
        allowed = known + sorted(self.config.get("models", {}))
        for exp_name, exp in self.config["experiments"].items():
            for model in exp["models"]:
                if self.model_spec(model)["arch"] not in MODELS:
                    raise ConfigError(f"experiments.{exp_name}.models: unknown model {model!r}; "
                                      f"allowed: {', '.join(allowed)}")

    def _check_model_kwargs(self) -> None:
        """Build every configured model once on the meta device (no memory, no compute), so
        kwargs the entry point does not take, or of the wrong type, fail before any job."""
        built = set()
        for run in self.runs:
            if run.model in built:
                continue
            built.add(run.model)
            spec = self.model_spec(run.model)
            kwargs = model_kwargs(spec, self.config["train"], run.kernel_size)
            where = f"models.{run.model}.kwargs" if run.model in self.config.get("models", {}) else run.model
            try:
                with torch.device("meta"):
                    models.create(spec["arch"], num_classes=10, **kwargs)
            except Exception as exc:  # TypeError/ValueError/... from the model's constructor
                call = ", ".join(f"{k}={v!r}" for k, v in spec["kwargs"].items())
                raise ConfigError(f"{where}: {spec['arch']}({call})"
                                  f" cannot be built: {first_line(exc)}; see the keyword arguments of vitprobe.models."
                                  f"{spec['arch']}") from None

    # ---- runs ---------------------------------------------------------------------
    def _expand(self, name: str, exp: dict) -> list[Run]:
        dataset = self.config["data"]["dataset"]
        fractions = [parse_fraction(f, f"experiments.{name}.fractions") for f in exp.get("fractions", [1])]
        if exp.get("kernel_sizes") and not any(self.model_info(m).local_attention for m in exp["models"]):
            local = sorted(n for n, i in models.MODELS.items() if i.local_attention)
            raise ConfigError(f"experiments.{name}.kernel_sizes: none of its models ({', '.join(exp['models'])}) uses "
                              f"local attention, so kernel sizes would be ignored; remove the key or add a "
                              f"local-attention model ({', '.join(local)})")
        runs = []
        for model in exp["models"]:
            if self.model_info(model).local_attention:
                kernels = exp.get("kernel_sizes")
                if not kernels:
                    raise ConfigError(f"experiments.{name}.kernel_sizes: required, because {model!r} "
                                      f"uses local attention")
                grid = self.token_grid(model)
                for k in kernels:
                    if not 1 <= k <= grid:
                        raise ConfigError(f"experiments.{name}.kernel_sizes: {k} does not fit the {grid}x{grid} "
                                          f"token grid of {model!r}; allowed: 1..{grid} ({grid} = global)")
            else:
                kernels = [NO_KERNEL]
            runs += [Run(dataset, model, k, f, s)
                     for k in kernels for f in fractions for s in exp.get("seeds", [0])]
        return runs

    @cached_property
    def runs(self) -> list[Run]:
        """Every run of every experiment, each once (shared runs are trained once)."""
        return sorted({r for runs in self.experiments.values() for r in runs})

    def run(self, run_id: str) -> Run:
        run = Run.parse(run_id)
        if run not in set(self.runs):
            raise ValueError(f"run {run_id!r} is not in the configured grid")
        return run

    # ---- epochs -------------------------------------------------------------------
    @property
    def checkpoint_epochs(self) -> list[int]:
        """Configured checkpoint epochs; the last epoch is always one."""
        train = self.config["train"]
        return sorted(set(train["checkpoint_epochs"]) | {train["epochs"]})

    @property
    def probes(self) -> list[str]:
        """The configured probes (each also names its per-run table)."""
        return list(self.config["probes"])

    @property
    def tables(self) -> list[str]:
        """Every table the configured jobs write: train_log, then each probe's tables."""
        return [catalog.TRAIN_LOG, *(t for probe in self.probes for t in catalog.tables_of(probe))]

    def table_epochs(self, table: str) -> list[int]:
        """Checkpoint epochs of a per-checkpoint table: those of the probe that writes it."""
        return self.probe_epochs(catalog.probe_of(table))

    def probe_epochs(self, probe: str) -> list[int]:
        return sorted(set(self.config["probes"][probe].get("epochs", [self.config["train"]["epochs"]])))

    def _check_epochs(self) -> None:
        train = self.config["train"]
        total = train["epochs"]
        if train["warmup_epochs"] > total:
            raise ConfigError(f"train.warmup_epochs: {train['warmup_epochs']} exceeds train.epochs ({total})")
        for e in train["checkpoint_epochs"]:
            if not 0 <= e <= total:
                raise ConfigError(f"train.checkpoint_epochs: {e} is outside 0..train.epochs ({total})")
        for probe in self.config["probes"]:
            for e in self.probe_epochs(probe):
                if e not in self.checkpoint_epochs:
                    raise ConfigError(f"probes.{probe}.epochs: {e} is not a checkpoint epoch; "
                                      f"allowed: {self.checkpoint_epochs} (train.checkpoint_epochs)")

    # ---- shards -------------------------------------------------------------------
    def shards(self, probe: str) -> int:
        """Jobs one checkpoint's `probe` job is split into (1: not split)."""
        return int(self.config["probes"][probe].get("shards", 1))

    def train_size(self, run: Run) -> int | None:
        """Training images of a run (the class-stratified fraction), if known before any data is read."""
        data = self.config["data"]
        per_class = dict(TRAIN_PER_CLASS)
        if data["dataset"] == "synthetic":
            syn = data.get("synthetic", {})
            per_class["synthetic"] = (syn.get("num_classes"), syn.get("train_per_class"))
        classes, n = per_class.get(data["dataset"], (None, None))
        if classes is None or n is None:
            return None
        return classes * (n if run.fraction >= 1 else max(1, round(run.fraction * n)))

    def _check_shards(self) -> None:
        """`shards` of a probe: 1 unless it has a merge, at most its mini-batches (`n_batches`, or
        with `all` those of the run with the smallest training set, where the size is known)."""
        for probe, cfg in self.config["probes"].items():
            shards = cfg.get("shards", 1)
            if shards > 1 and not catalog.PROBES[probe].merge:
                raise ConfigError(f"probes.{probe}.shards: the {probe} probe cannot be split; allowed: 1")
            if cfg.get("n_batches") != "all":
                if shards > cfg.get("n_batches", shards):
                    raise ConfigError(f"probes.{probe}.shards: {shards} exceeds the {cfg['n_batches']} mini-batches of "
                                      f"probes.{probe}.n_batches; allowed: 1..{cfg['n_batches']}")
                continue
            sized = [(size, run) for run in self.runs if (size := self.train_size(run)) is not None]
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

    # ---- specs handed to the CLI -------------------------------------------------
    def train_spec(self, run: Run) -> dict:
        """All that determines a run's training; its hash identifies compatible checkpoints."""
        data = {k: v for k, v in self.config["data"].items() if k != "download"}
        return {"run": run.columns(), "data": data, "model": self.model_spec(run.model),
                "train": self.config["train"]}

    def probe_spec(self, run: Run, probe: str) -> dict:
        return {**self.train_spec(run), "probe": self.config["probes"][probe]}

    # ---- figures ------------------------------------------------------------------
    def _check_figures(self) -> None:
        for fig, spec in self.config.get("figures", {}).items():
            if fig not in catalog.FIGURES:
                raise ConfigError(f"figures.{fig}: unknown figure; allowed: {', '.join(catalog.FIGURES)}")
            for exp in spec["experiments"]:
                if exp not in self.experiments:
                    raise ConfigError(f"figures.{fig}.experiments: unknown experiment {exp!r}; "
                                      f"allowed: {', '.join(sorted(self.experiments))}")
            candidates = {r for exp in spec["experiments"] for r in self.experiments[exp]}
            for i, series in enumerate(spec.get("series") or []):
                if not any(series_matches(series, r) for r in candidates):
                    have = ", ".join(sorted({f"{r.model} (k{r.kernel_size}, f{fraction_token(r.fraction)})"
                                             for r in candidates}))
                    raise ConfigError(f"figures.{fig}.series.{i} ({series['label']!r}): matches no run of experiments "
                                      f"{', '.join(spec['experiments'])}; their runs: {have}")
            epoch = spec.get("epoch")
            for table in self.figure_tables(fig):
                if table == catalog.TRAIN_LOG:
                    continue
                probe = catalog.probe_of(table)
                if probe not in self.config["probes"]:
                    raise ConfigError(f"figures.{fig}: needs the {probe!r} probe; add probes.{probe} to the config")
                if epoch is not None and epoch not in self.probe_epochs(probe):
                    raise ConfigError(f"figures.{fig}.epoch: {epoch} is not analyzed by probes.{probe}; "
                                      f"allowed: {self.probe_epochs(probe)} (probes.{probe}.epochs)")

    @staticmethod
    def figure_tables(figure: str) -> tuple[str, ...]:
        return catalog.FIGURES[figure].tables

    def figure_runs(self, figure: str) -> list[Run]:
        """Runs of the figure's experiments that one of its series selects."""
        spec = self.config["figures"][figure]
        candidates = {r for exp in spec["experiments"] for r in self.experiments[exp]}
        series = spec.get("series")
        if series:
            candidates = {r for r in candidates if any(series_matches(s, r) for s in series)}
        return sorted(candidates)
