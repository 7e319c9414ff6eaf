# The run table and input functions. All logic lives in the vitprobe package; this file
# only translates its plan into file lists.
import json
import os
import sys

from vitprobe import paths
from vitprobe.config import validate
from vitprobe.grid import RUN_ID_REGEX

# JSON schema (defaults filled in) + semantic checks, before any job is scheduled.
PLAN = validate(config)
# The interpreter running Snakemake has vitprobe installed; no PATH or activation needed.
VITPROBE = f"{sys.executable} -m vitprobe"
TABLES = ["train_log", *PLAN.probes]


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
    epochs = PLAN.probe_epochs(table) if epochs is None else epochs
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


def figure_spec(figure):
    return as_json({"figure": figure_config(figure)})


def all_targets():
    return [paths.AGGREGATE.format(table=t) for t in TABLES] + [
        paths.FIGURE.format(figure=f) for f in config["figures"]
    ]
