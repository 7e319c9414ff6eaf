# The run table and input functions. All logic lives in the vitprobe package; this file
# only translates its plan into file lists.
import json
import os
import sys

from vitprobe import paths
from vitprobe.config import validate
from vitprobe.grid import RUN_ID_REGEX, train_hash

# JSON schema (defaults filled in) + semantic checks, before any job is scheduled.
PLAN = validate(config)
# The interpreter running Snakemake has vitprobe installed; no PATH or activation needed.
VITPROBE = f"{sys.executable} -m vitprobe"
TABLES = PLAN.tables


wildcard_constraints:
    run=RUN_ID_REGEX,
    epoch=r"\d+",


def as_json(spec):
    return json.dumps(spec, sort_keys=True)


def data_ready():
    return paths.DATA_READY.format(root=config["data"]["root"], dataset=config["data"]["dataset"])


def probe_pattern(table):
    return paths.PROBE_TABLE.format(run="{run}", epoch="{epoch}", table=table)


def train_spec(wildcards):
    return as_json(PLAN.train_spec(PLAN.run(wildcards.run)))


def train_state_dir(wildcards):
    spec = PLAN.train_spec(PLAN.run(wildcards.run))
    return paths.TRAIN_STATE_DIR.format(run=wildcards.run, train_hash=train_hash(spec))


def probe_params(probe):
    """Params of a probe rule. A probe missing from the config gets a spec that fails
    loudly; its rule is never scheduled, because nothing requests its files."""
    return {
        "vitprobe": VITPROBE,
        "device": config["device"],
        "probe": probe,
        "spec": lambda wildcards: as_json(PLAN.probe_spec(PLAN.run(wildcards.run), probe)),
    }


def run_tables(table, runs=None, epochs=None):
    """Per-run files of one table for the given runs (default: the whole grid)."""
    runs = PLAN.runs if runs is None else runs
    if table == "train_log":
        return [paths.TRAIN_LOG.format(run=r.id) for r in runs]
    epochs = PLAN.table_epochs(table) if epochs is None else epochs
    return [paths.PROBE_TABLE.format(run=r.id, table=table, epoch=e) for r in runs for e in epochs]


def figure_config(figure):
    if figure not in config["figures"]:
        raise ValueError(f"figure {figure!r} is not configured: add figures.{figure} to the config")
    return config["figures"][figure]


def figure_inputs(figure):
    spec = figure_config(figure)
    epochs = [spec["epoch"]] if "epoch" in spec else None
    runs = PLAN.figure_runs(figure)
    return [f for t in PLAN.figure_tables(figure) for f in run_tables(t, runs, epochs)]


def figure_params(figure):
    return {
        "vitprobe": VITPROBE,
        "figure": figure,
        "spec": lambda wildcards: as_json({"figure": figure_config(figure)}),
    }


def all_targets():
    return [paths.AGGREGATE.format(table=t) for t in TABLES] + [
        paths.FIGURE.format(figure=f) for f in config["figures"]
    ]


# ---- Cluster execution (profiles/slurm) -----------------------------------------------
# Rules that never go to the cluster: cheap, CPU-only, or needing the network (CIFAR
# download). Figure rules are named after their figure, so every configured figure's rule
# is local too. Everything else (train, the probes) is submitted as one Slurm job per job.
LOCAL_RULES = ["all", "prepare_data", "aggregate", *config["figures"]]
workflow.localrules(*LOCAL_RULES)  # the `localrules:` directive, for a computed list


def job_threads(wildcards):
    """CPU threads of a train/probe job (also its OMP_NUM_THREADS): `resources.cpus` per GPU
    on a cluster (when submitting, and inside the job, where Snakemake runs in remote mode);
    1 locally, where jobs run side by side on the cores (`--cores`)."""
    r = config["resources"]
    on_cluster = workflow.non_local_exec or workflow.remote_exec
    return r["cpus"] * max(r["gpus"], 1) if on_cluster else 1


def _cluster_resources(mem_mb, runtime):
    """Keys the Slurm executor turns into sbatch flags: gpu (+gpu_model) -> --gpus,
    cpus_per_gpu / cpus_per_task, mem_mb -> --mem, runtime (minutes) -> -t."""
    r = config["resources"]
    res = {"mem_mb": mem_mb, "runtime": runtime}
    if r["gpus"] > 0:
        res.update(gpu=r["gpus"], cpus_per_gpu=r["cpus"])
        if r["gpu_model"]:
            res["gpu_model"] = r["gpu_model"]
    else:
        res["cpus_per_task"] = r["cpus"]
    return res


def train_resources():
    """Per-model runtime (resources.train.runtime_per_model, else .runtime)."""
    r = config["resources"]["train"]
    return _cluster_resources(
        r["mem_mb"],
        lambda wildcards: r["runtime_per_model"].get(PLAN.run(wildcards.run).model, r["runtime"]),
    )


def probe_resources(probe):
    r = config["resources"]["probes"]
    return _cluster_resources(r["mem_mb"], r["runtime_per_probe"].get(probe, r["runtime"]))
