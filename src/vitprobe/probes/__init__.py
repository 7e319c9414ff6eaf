"""The probes, one package each: `vitprobe.probes.<name>` is the whole probe.

Its ``__init__`` declares what the probe is, and imports no torch (the catalogue, the config
checks, the workflow and the table verbs read it):
- ``PROBE = Probe(...)``: its name (CLI verb and config key under ``probes:``), its tables
  and their columns, what it reads (``reads``), whether it may be split into shards;
- ``headline(tables)``: the job's result line;
- optionally ``check(settings, config)``: its settings checked before any job;
- with ``shardable``, ``merge(spec, parts)``: one job's tables from its shards' tables;
- with ``intervals``, ``intervals(table, rows, units, ci)``: the interval columns of a
  summary table, computed from its per-unit table (per image, per mini-batch) when tables
  are aggregated or drawn (`vitprobe.results.with_intervals`), never in the probe's job, so
  that another level (`intervals.level`) reruns no probe. numpy and pandas only.

Its ``measure`` module measures (torch):
- ``compute(model, <its data>, **settings)``: the math, on any ``nn.Module`` and tensors,
  returning its tables as DataFrames (in ``PROBE.tables`` order); `vitprobe.api` exposes
  exactly these functions;
- ``run(model, inputs, settings, log)``: what it reads from a pipeline run
  (`vitprobe.analysis.inputs.RunInputs`), handed to ``compute``, with the job's start line.

`vitprobe.catalog` finds every package here that defines ``PROBE``; the generic runner
(`vitprobe.probe_runner`) loads a checkpoint, calls ``measure.run`` and writes the tables.
Adding a probe touches its two modules, its block in `vitprobe/config/schema.yaml` and its
test (docs/guide/extending.md).
Its test settings are its ``PROBE.tiny``: the tests run every probe at that size.
This file imports nothing heavy: the catalogue imports the probes' declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: What a probe may read besides its checkpoint: the run's training split (augmented
#: batches), the test split (or, for imagenet, the class-folder images), CIFAR-C.
READS = ("train", "test", "corruptions")


@dataclass(frozen=True)
class Probe:
    name: str                      # CLI verb and config key under `probes:`
    help: str                      # one line: what it computes
    tables: dict = field(default_factory=dict)  # table name -> [vitprobe.columns.Column], per checkpoint
    reads: tuple[str, ...] = ()    # of READS
    rule: str = ""                 # Snakemake rule name (default: the probe's name)
    shardable: bool = False        # its job may be split (`shards`); the module then has `merge`
    exact: bool = False            # runs in float32 without autocast or channels_last (curvature, losses)
    # summary table -> (the per-unit table its intervals are computed from, the interval columns
    # of the aggregated table, `<column>_low`/`_high`); the module then has `intervals`
    intervals: dict = field(default_factory=dict)
    # its settings (keys of its schema block) at the size of a tiny test run, seconds on a CPU:
    # the tests run every probe with them (tests/conftest.py); a probe without them fails there
    tiny: dict | None = None

    def __post_init__(self):
        unknown = [r for r in self.reads if r not in READS]
        if unknown:
            raise ValueError(f"probe {self.name}: reads {unknown}; allowed: {', '.join(READS)}")
        for table, (units, _) in self.intervals.items():
            if table not in self.tables or (units is not None and units not in self.tables):
                raise ValueError(f"probe {self.name}: intervals of {table!r} from {units!r}; both must be among its "
                                 f"tables ({', '.join(self.tables)})")

    @property
    def rule_name(self) -> str:
        return self.rule or self.name

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(self.tables)

    @property
    def needs_training_split(self) -> bool:
        """Datasets without a training split (imagenet) get no tables of this probe."""
        return "train" in self.reads or "corruptions" in self.reads


def no_progress(iterable):
    """The default ``progress`` of the probes' loops: the iterable itself, no bar. Runners
    pass a wrapper instead (`vitprobe.analysis.progress`); any callable that takes an
    iterable and yields its items will do."""
    return iterable


def no_log(message: str) -> None:
    """The default ``log`` of the probes: say nothing."""
