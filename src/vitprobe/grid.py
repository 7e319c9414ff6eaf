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

from vitprobe import catalog, models, search, weights
from vitprobe.errors import ConfigError, first_line
from vitprobe.series import fraction_token, parse_fraction, series_matches

__all__ = ["ConfigError", "Plan", "Run", "parse_fraction", "series_matches"]  # ConfigError: re-exported

# (classes, training images per class) of the datasets whose size is fixed (synthetic: from
# its config); the class-stratified fraction f keeps max(1, round(f·per class)) per class.
TRAIN_PER_CLASS = {"cifar10": (10, 5000), "cifar100": (100, 500), "fashion_mnist": (10, 6000),
                   "fashion_mnist_subset": (10, 500)}
NO_KERNEL = 0  # kernel_size of models without local attention ("k0" in run ids)
IMPORTED_EPOCH = 0  # the one checkpoint of a run whose weights are imported, not trained
# Probes that read the training split (augmented batches) or CIFAR-C; datasets without them
# (imagenet: a folder of validation images) have no tables of theirs.
TRAINING_DATA_PROBES = ("hessian", "eval", "landscape", "corruption")
NO_TRAINING_SPLIT = ("imagenet",)
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
        self._check_augment()
        self.experiments = {name: self._expand(name, exp) for name, exp in config["experiments"].items()}
        self._check_model_kwargs()
        self.search = self._search_setup()
        self._check_corruption()
        self._check_shards()
        self._check_figures()
        if config.get("tensorboard"):
            if importlib.util.find_spec("tensorboard") is None:
                raise ConfigError("tensorboard: true needs the tensorboard package: pip install "
                                  "'vitprobe[tensorboard]', or set tensorboard: false")

    # ---- models -------------------------------------------------------------------
    def model_spec(self, model: str) -> dict:
        """{'arch': registered timm name, 'kwargs': {...}} for a grid model name."""
        base = self.config.get("search", {}).get("base")
        layout = search.parse_candidate(base, model) if base else None
        if layout is not None:  # a build-up search candidate: the base with its MSA layout
            spec = self.model_spec(base)
            return {"arch": spec["arch"], "kwargs": {**spec["kwargs"], "msa_blocks": list(layout)}}
        alias = self.config.get("models", {}).get(model)
        if alias is not None:
            spec = {"arch": alias["arch"], "kwargs": dict(alias.get("kwargs", {}))}
            if "weights" in alias:  # only then: the training hashes of trained runs stay as they were
                spec["weights"] = alias["weights"]
            return spec
        return {"arch": model, "kwargs": {}}

    def model_info(self, model: str):
        """The registry's facts about a model; a timm model vitprobe does not register is
        a family of its own ("timm") without local attention."""
        arch = self.model_spec(model)["arch"]
        return models.MODELS.get(arch) or models.ModelInfo(arch, "timm", False, None)

    def imported(self, run: "Run | str") -> bool:
        """True if the run's weights come from `models.<alias>.weights`: no training, one
        checkpoint (epoch 0) written by `vitprobe import-weights`."""
        return "weights" in self.model_spec(run if isinstance(run, str) else run.model)

    def token_grid(self, model: str) -> int | None:
        info = self.model_info(model)
        patch = self.model_spec(model)["kwargs"].get("patch_size")
        return 32 // patch if patch else info.token_grid

    def _check_models(self) -> None:
        MODELS = models.MODELS
        known = sorted(MODELS)
        download = self.config["data"].get("download", True)
        for name, alias in self.config.get("models", {}).items():
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
        allowed = known + sorted(self.config.get("models", {}))
        for exp_name, exp in self.config["experiments"].items():
            for model in exp["models"]:
                if not self.imported(model) and self.model_spec(model)["arch"] not in MODELS:
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
                    models.create_any(spec["arch"], num_classes=10, **kwargs)
            except Exception as exc:  # TypeError/ValueError/... from the model's constructor
                call = ", ".join(f"{k}={v!r}" for k, v in spec["kwargs"].items())
                raise ConfigError(f"{where}: {spec['arch']}({call})"
                                  f" cannot be built: {first_line(exc)}; see the keyword arguments of vitprobe.models."
                                  f"{spec['arch']}") from None

    # ---- runs ---------------------------------------------------------------------
    def _expand(self, name: str, exp: dict) -> list[Run]:
        dataset = exp.get("dataset", self.config["data"]["dataset"])
        if dataset in NO_TRAINING_SPLIT:
            trained = [m for m in exp["models"] if not self.imported(m)]
            if trained:
                key = f"experiments.{name}.dataset" if "dataset" in exp else "data.dataset"
                raise ConfigError(f"{key}: {dataset} has no training split, so the models of experiment {name} need "
                                  f"imported weights (models.<alias>.weights); {', '.join(trained)} would be trained")
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
        if run not in set(self.runs) and not self.is_search_run(run):
            raise ValueError(f"run {run_id!r} is not in the configured grid")
        return run

    # ---- epochs -------------------------------------------------------------------
    def run_checkpoint_epochs(self, run: Run) -> list[int]:
        """The checkpoint epochs of one run: `IMPORTED_EPOCH` alone for imported weights."""
        return [IMPORTED_EPOCH] if self.imported(run) else self.checkpoint_epochs

    def run_probe_epochs(self, run: Run, probe: str) -> list[int]:
        """The epochs `probe` analyzes of `run`: none where the run's dataset lacks the data
        the probe reads, epoch 0 for imported weights, else `probe_epochs`."""
        if probe in TRAINING_DATA_PROBES and run.dataset in NO_TRAINING_SPLIT:
            return []
        return [IMPORTED_EPOCH] if self.imported(run) else self.probe_epochs(probe)

    def run_table_epochs(self, run: Run, table: str) -> list[int]:
        return self.run_probe_epochs(run, catalog.probe_of(table))

    @property
    def trained_runs(self) -> list[Run]:
        return [r for r in self.runs if not self.imported(r)]

    @property
    def imported_runs(self) -> list[Run]:
        return [r for r in self.runs if self.imported(r)]

    @property
    def datasets(self) -> list[str]:
        """Every dataset a run uses (each has its own prepare-data job), and data.dataset."""
        return sorted({r.dataset for r in self.runs} | {self.config["data"]["dataset"]})

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

    def _check_augment(self) -> None:
        ra = self.config.get("train", {}).get("augment", {}).get("randaugment")
        if not ra:
            return
        own = {"timm": ("prob", "magnitude_max", "interpolation"), "torchvision": ("group_size",)}
        for impl, keys in own.items():
            for key in keys:
                if key in ra and ra["impl"] != impl:
                    raise ConfigError(f"train.augment.randaugment.{key}: only for impl: {impl} (impl is "
                                      f"{ra['impl']}); remove it or set impl: {impl}")

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
        if run.dataset == "synthetic":
            syn = data.get("synthetic", {})
            per_class["synthetic"] = (syn.get("num_classes"), syn.get("train_per_class"))
        classes, n = per_class.get(run.dataset, (None, None))
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
        data["dataset"] = run.dataset
        if run.dataset != "imagenet":
            data.pop("imagenet_dir", None)  # its path is no part of other datasets' runs
        if self.is_search_run(run):  # candidates never train on the split that scores them
            data["holdout"] = {"fraction": self.search["holdout"], "seed": self.search["seed"]}
        return {"run": run.columns(), "data": data, "model": self.model_spec(run.model),
                "train": self.config["train"]}

    def probe_spec(self, run: Run, probe: str) -> dict:
        probe_cfg = {k: v for k, v in self.config["probes"][probe].items() if k != "download"}  # where, not what
        return {**self.train_spec(run), "probe": probe_cfg}

    # ---- the build-up search (vitprobe.search) --------------------------------------
    def _search_setup(self) -> dict | None:
        """The search's spec (what `vitprobe search-step` needs), checked: the base is a
        pre-activation ResNet, a stage to search exists, the decision epoch is a checkpoint."""
        cfg = self.config.get("search")
        if not cfg:
            return None
        from vitprobe.models.alternet import MSABlock, PreActResNet

        base = cfg["base"]
        spec = self.model_spec(base)
        if spec["arch"] not in models.MODELS:
            raise ConfigError(f"search.base: unknown model {base!r}; allowed: {', '.join(sorted(models.MODELS))} "
                              f"or an alias under models:")
        try:
            with torch.device("meta"):
                net = models.create(spec["arch"], num_classes=10, **model_kwargs(spec, self.config["train"], 0))
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
        if all(start[st - 1] >= search.max_msa(layers[st - 1]) for st in stages):
            raise ConfigError(f"search.stages: no stage to search: stages {stages} of {base!r} (blocks {layers}, "
                              f"MSA {start}) hold no more MSA blocks (at most blocks // 2 per stage)")
        epoch = cfg.get("epoch", self.config["train"]["epochs"])
        if epoch not in self.checkpoint_epochs:
            raise ConfigError(f"search.epoch: {epoch} is not a checkpoint epoch; allowed: {self.checkpoint_epochs}")
        full = [search.max_msa(n) if i + 1 in stages else m for i, (n, m) in enumerate(zip(layers, start))]
        try:
            with torch.device("meta"):
                models.create(spec["arch"], num_classes=10,
                              **model_kwargs({**spec, "kwargs": {**spec["kwargs"], "msa_blocks": full}},
                                             self.config["train"], 0))
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"search.base: {base!r} with MSA blocks {full} cannot be built: "
                              f"{first_line(exc)}") from None
        return {"base": base, "dataset": self.config["data"]["dataset"], "layers": layers, "start": start,
                "stages": stages, "budget": cfg["budget"], "holdout": cfg["holdout"], "seed": cfg["seed"],
                "epoch": epoch}

    def _check_corruption(self) -> None:
        from vitprobe.corruptions import ARCHIVES
        probe, dataset = self.config["probes"].get("corruption"), self.config["data"]["dataset"]
        if probe is not None and not probe.get("folder") and dataset not in ARCHIVES:
            raise ConfigError(f"probes.corruption.folder: required for data.dataset {dataset!r}, which has no "
                              f"published corrupted test set (only {', '.join(ARCHIVES)}: CIFAR-10-C, CIFAR-100-C); "
                              f"give a folder in the CIFAR-C layout or remove probes.corruption")

    def is_search_run(self, run: Run) -> bool:
        """True for a candidate of the configured search (any layout the rule may reach)."""
        s = self.search
        if not s or (run.dataset, run.kernel_size, run.fraction, run.seed) != (s["dataset"], NO_KERNEL, 1.0, s["seed"]):
            return False
        layout = search.parse_candidate(s["base"], run.model)
        return (layout is not None and len(layout) == len(s["layers"])
                and all(m0 <= m <= search.max_msa(n) for m, m0, n in zip(layout, s["start"], s["layers"])))

    def search_run(self, layout) -> Run:
        return Run(self.search["dataset"], search.candidate_model(self.search["base"], layout), NO_KERNEL, 1.0,
                   self.search["seed"])

    # ---- figures ------------------------------------------------------------------
    def _check_figures(self) -> None:
        for fig, spec in self.config.get("figures", {}).items():
            if self.figure_kind(fig) not in catalog.FIGURES:
                where = f"figures.{fig}.figure" if "figure" in spec else f"figures.{fig}"
                raise ConfigError(f"{where}: unknown figure {self.figure_kind(fig)!r}; allowed: "
                                  f"{', '.join(catalog.FIGURES)} (a figure of another name sets figure: to one)")
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
                    imported = [r.id for r in self.figure_runs(fig) if self.imported(r)]
                    if imported:
                        raise ConfigError(f"figures.{fig}: needs training logs, but {', '.join(imported)} has imported "
                                          f"weights (no training)")
                    continue
                if table == catalog.SEARCH_TABLE:
                    if not self.search:
                        raise ConfigError(f"figures.{fig}: draws the build-up search; add a search: block to the "
                                          f"config (search.base: a pre-activation ResNet)")
                    continue
                probe = catalog.probe_of(table)
                if probe not in self.config["probes"]:
                    raise ConfigError(f"figures.{fig}: needs the {probe!r} probe; add probes.{probe} to the config")
                for run in self.figure_runs(fig):
                    allowed = self.run_probe_epochs(run, probe)
                    if not allowed:
                        raise ConfigError(f"figures.{fig}: needs probes.{probe}, which reads training (or CIFAR-C) "
                                          f"images, but run {run.id} is on {run.dataset} (no training split); drop it "
                                          f"from the series")
                    if epoch is not None and epoch not in allowed:
                        why = ("its weights are imported: its one checkpoint is epoch 0" if self.imported(run)
                               else f"probes.{probe}.epochs")
                        raise ConfigError(f"figures.{fig}.epoch: {epoch} is not analyzed by probes.{probe} for run "
                                          f"{run.id}; allowed: {allowed} ({why})")

    def figure_kind(self, figure: str) -> str:
        """The catalogued figure (`catalog.FIGURES`) a configured figure draws: its `figure`
        key, else its own name (so one figure can be drawn twice, e.g. on CIFAR and ImageNet)."""
        return self.config["figures"][figure].get("figure", figure)

    def figure_tables(self, figure: str) -> tuple[str, ...]:
        return catalog.FIGURES[self.figure_kind(figure)].tables

    def figure_runs(self, figure: str) -> list[Run]:
        """Runs of the figure's experiments that one of its series selects."""
        spec = self.config["figures"][figure]
        candidates = {r for exp in spec["experiments"] for r in self.experiments[exp]}
        series = spec.get("series")
        if series:
            candidates = {r for r in candidates if any(series_matches(s, r) for s in series)}
        return sorted(candidates)
