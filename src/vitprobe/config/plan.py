"""The plan: every run, checkpoint, probe job and figure that a validated config implies, and
the spec (the config's slice) each job gets. Built once before any job starts; the checks of
`vitprobe.config.checks` run at construction. Nothing here trains or imports Snakemake."""

from __future__ import annotations

from functools import cached_property

from vitprobe import catalog, models
from vitprobe.config import checks
from vitprobe.config.identity import IMPORTED_EPOCH, NO_KERNEL, Run, parse_fraction, series_matches
from vitprobe.data.registry import DATASETS, train_size
from vitprobe.search import plan as search_plan
from vitprobe.search import walk


class Plan:
    """Everything the pipeline will make, derived from a schema-validated config."""

    def __init__(self, config: dict):
        self.config = config
        checks.check_config(self)
        self.experiments = {name: self._expand(name, exp) for name, exp in config["experiments"].items()}
        self.search = search_plan.setup(config, self.model_spec, self.checkpoint_epochs)
        checks.check_plan(self)

    # ---- models -------------------------------------------------------------------
    def model_spec(self, model: str) -> dict:
        """{'arch': registered timm name, 'kwargs': {...}} (and 'weights' for imported ones)
        for a grid model name."""
        base = self.config.get("search", {}).get("base")
        layout = walk.parse_candidate(base, model) if base else None
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

    # ---- runs ---------------------------------------------------------------------
    def _expand(self, name: str, exp: dict) -> list[Run]:
        dataset = exp.get("dataset", self.config["data"]["dataset"])
        checks.check_experiment(self, name, exp, dataset)
        fractions = [parse_fraction(f, f"experiments.{name}.fractions") for f in exp.get("fractions", [1])]
        runs = []
        for model in exp["models"]:
            kernels = exp["kernel_sizes"] if self.model_info(model).local_attention else [NO_KERNEL]
            runs += [Run(dataset, model, k, f, s) for k in kernels for f in fractions for s in exp.get("seeds", [0])]
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

    def train_size(self, run: Run) -> int | None:
        """Training images of a run (the class-stratified fraction), if known before any data is read."""
        return train_size(run.dataset, run.fraction, self.config["data"].get("synthetic"))

    # ---- epochs -------------------------------------------------------------------
    @property
    def checkpoint_epochs(self) -> list[int]:
        """Configured checkpoint epochs; the last epoch is always one."""
        train = self.config["train"]
        return sorted(set(train["checkpoint_epochs"]) | {train["epochs"]})

    def run_checkpoint_epochs(self, run: Run) -> list[int]:
        """The checkpoint epochs of one run: `IMPORTED_EPOCH` alone for imported weights."""
        return [IMPORTED_EPOCH] if self.imported(run) else self.checkpoint_epochs

    def probe_epochs(self, probe: str) -> list[int]:
        return sorted(set(self.config["probes"][probe].get("epochs", [self.config["train"]["epochs"]])))

    def run_probe_epochs(self, run: Run, probe: str) -> list[int]:
        """The epochs `probe` analyzes of `run`: none where the run's dataset lacks the data
        the probe reads or the probe's `experiments` leave the run out, epoch 0 for imported
        weights, else `probe_epochs`."""
        if catalog.PROBES[probe].needs_training_split and not DATASETS[run.dataset].has_training_split:
            return []
        only = self.config["probes"][probe].get("experiments")
        if only is not None and run not in {r for name in only for r in self.experiments.get(name, [])}:
            return []  # the probe's block names the experiments whose runs it analyses
        return [IMPORTED_EPOCH] if self.imported(run) else self.probe_epochs(probe)

    def run_table_epochs(self, run: Run, table: str) -> list[int]:
        return self.run_probe_epochs(run, catalog.probe_of(table))

    # ---- probes and tables -----------------------------------------------------------
    @property
    def probes(self) -> list[str]:
        """The configured probes."""
        return list(self.config["probes"])

    @property
    def tables(self) -> list[str]:
        """Every table the configured jobs write: train_log, then each probe's tables."""
        return [catalog.TRAIN_LOG, *(t for probe in self.probes for t in catalog.tables_of(probe))]

    def shards(self, probe: str) -> int:
        """Jobs one checkpoint's `probe` job is split into (1: not split)."""
        return int(self.config["probes"][probe].get("shards", 1))

    # ---- cluster resources ------------------------------------------------------------
    def train_runtime(self, run: Run) -> tuple[int, str]:
        """Minutes per submission of a run's training job, and the key that set them:
        `resources.train.runtime_per_model.<model>` (a search candidate's is its base's), else
        `resources.train.runtime`."""
        res = self.config["resources"]["train"]
        model = self.search["base"] if self.is_search_run(run) else run.model
        if model in res["runtime_per_model"]:
            return res["runtime_per_model"][model], f"runtime_per_model.{model}"
        return res["runtime"], "runtime"

    def probe_runtime(self, probe: str) -> int:
        """Minutes of one job of `probe` (or of `search_score`)."""
        res = self.config["resources"]["probes"]
        return res["runtime_per_probe"].get(probe, res["runtime"])

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
    def is_search_run(self, run: Run) -> bool:
        """True for a candidate of the configured search (any layout the rule may reach)."""
        return search_plan.is_candidate(self.search, run)

    def search_run(self, layout) -> Run:
        return search_plan.candidate_run(self.search, layout)

    # ---- figures ------------------------------------------------------------------
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
