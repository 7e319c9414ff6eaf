"""What a config asks a cluster for: the GPU-hours (CPU-core-hours with `resources.gpus: 0`)
that its `resources` block requests, per rule and in total (`vitprobe check-config --cost`).

An upper bound: each job counts its time *limit* (`resources.train.runtime`, `.runtime_per_model`,
`resources.probes.runtime`, `.runtime_per_probe`, minutes per submission), not a measured
runtime; a training job preempted or stopped at its limit is resubmitted and resumes, and then
uses more than one limit. Job counts come from the plan, as Snakemake's: one train job per
trained run, one probe job per (run, epoch it analyzes) and shard, one import job per run with
imported weights (local: no request); the merge of a sharded probe runs locally too. The
build-up search counts the most candidates it can try (the base layout and at most
`search.budget` more), each trained, scored (`search_score`) and probed like a run.
Needs no torch: the plan is all it reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from vitprobe.search import walk


@dataclass(frozen=True)
class Row:
    rule: str                  # the Snakemake rule (a sharded probe: <rule>_shard)
    jobs: int
    minutes: int | None        # time limit per job; None: a local job, nothing requested
    hours: float               # jobs x minutes / 60 x GPUs (or CPU cores) per job
    note: str = ""
    at_most: bool = False      # a count the run decides (the search): an upper bound


@dataclass(frozen=True)
class Cost:
    rows: list[Row] = field(default_factory=list)
    unit: str = "GPU"          # "GPU", or "CPU-core" with resources.gpus 0
    per_job: int = 1           # GPUs (CPU cores) per job

    @property
    def total(self) -> float:
        return sum(r.hours for r in self.rows)


def estimate(plan, rule_names: dict[str, str] | None = None) -> Cost:
    """The requested hours of every cluster job of `plan` (a `vitprobe.config.plan.Plan`).
    `rule_names`: probe -> Snakemake rule name (`vitprobe.catalog.PROBES[p].rule_name`;
    default: the probe's name)."""
    res = plan.config["resources"]
    gpus = res["gpus"]
    per_job = gpus if gpus > 0 else res["cpus"]
    names = rule_names or {}

    def row(rule, jobs, minutes, note="", at_most=False):
        return Row(rule, jobs, minutes, 0.0 if minutes is None else jobs * minutes / 60 * per_job, note, at_most)

    probe_limit = plan.probe_runtime

    def probe_rule(probe):
        return names.get(probe, probe) + ("_shard" if plan.shards(probe) > 1 else "")

    def shard_note(probe):
        s = plan.shards(probe)
        return f"{s} shards per checkpoint; the merge runs locally" if s > 1 else ""

    rows = []
    by_limit: dict[tuple[int, bool], list] = {}
    for run in plan.trained_runs:
        limit, key = plan.train_runtime(run)
        by_limit.setdefault((limit, key != "runtime"), []).append(run)
    for (limit, own), runs in sorted(by_limit.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        note = "runtime_per_model: " + ", ".join(sorted({r.model for r in runs})) if own else "train.runtime"
        rows.append(row("train", len(runs), limit, note))
    if plan.imported_runs:
        rows.append(row("import_weights", len(plan.imported_runs), None, "local: imported weights, no training"))
    for probe in plan.probes:
        jobs = sum(len(plan.run_probe_epochs(run, probe)) for run in plan.runs) * plan.shards(probe)
        rows.append(row(probe_rule(probe), jobs, probe_limit(probe), shard_note(probe)))

    s = plan.search
    if s:
        n = 1 + search_steps(s)
        first = plan.search_run(s["start"])
        why = (f"the base layout and at most {n - 1} more (search.budget {s['budget']}"
               + (f"; its stages allow only {n - 1}" if n - 1 < s["budget"] else "") + ")")
        limit, key = plan.train_runtime(first)  # every candidate has its base's
        rows.append(row("search: train", n, limit, f"{n} candidates at most: {why}; train.{key}", True))
        rows.append(row("search: search_score", n, probe_limit("search_score"), "one per candidate", True))
        for probe in plan.probes:
            jobs = n * len(plan.run_probe_epochs(first, probe)) * plan.shards(probe)
            rows.append(row(f"search: {probe_rule(probe)}", jobs, probe_limit(probe), shard_note(probe), True))
    return Cost(rows, "GPU" if gpus > 0 else "CPU-core", per_job)


def search_steps(search: dict) -> int:
    """The most candidates the search tries after the base: its budget, or fewer where its
    stages hold fewer MSA blocks to add (a stage is left at its first rejected candidate)."""
    room = sum(max(walk.max_msa(search["layers"][st - 1]) - search["start"][st - 1], 0) for st in search["stages"])
    return min(search["budget"], room)

