"""The one probe runner of the pipeline: a checkpoint and a job spec in, the probe's per-run,
per-checkpoint Parquet tables out (`run_probe`), and the merge of a sharded probe's tables
(`merge_probe`). What a probe computes and reads lives in its module (`vitprobe.probes`).

Every job logs to stderr (a Snakemake job's log file): a start line saying what it computes
(the probe's `run`), progress bars over its unit of work, and a result line with the
headline numbers (the probe's `headline`) and the paths written, the lines prefixed
`[<run id> e<checkpoint epoch>] <probe>: `."""

from __future__ import annotations

import contextlib

import pandas as pd

from vitprobe import catalog, results
from vitprobe.analysis.inputs import RunInputs
from vitprobe.analysis.progress import Log
from vitprobe.config.job import JobSpec
from vitprobe.device import Device, full_precision
from vitprobe.models.recipe import load_run_model


def _write(tables: tuple[pd.DataFrame, ...], probe, job: JobSpec, epoch: int, outs: dict) -> None:
    for table, df in zip(probe.table_names, tables):
        results.write_run_table(df, table, outs[table], run=job.run_columns, epoch=epoch, config_hash=job.hash,
                                weights=job.weights)


def _as_tuple(tables) -> tuple[pd.DataFrame, ...]:
    return tables if isinstance(tables, tuple) else (tables,)


def run_probe(name: str, spec: dict | JobSpec, checkpoint_path, outs: dict, device: Device,
              shard: tuple[int, int] | None = None) -> tuple[pd.DataFrame, ...]:
    """Load the run's checkpoint (checked against the spec's training hash), put it on the
    device (`exact` probes in float32 without the accelerator tricks, TF32 off), run the probe on the
    inputs it reads and write its tables (`outs`: table -> path)."""
    job = JobSpec.of(spec)
    module = catalog.module_of(name)
    probe = module.PROBE
    model, payload = load_run_model(checkpoint_path, job)
    if probe.exact:  # float32 and no tricks, for the model and for everything the probe reads
        device = device.exact()
    model = device.prepare_model(model)
    log = Log(name, job.run.id, payload["epoch"])
    extra = {"shard": shard} if shard else {}
    with full_precision() if probe.exact else contextlib.nullcontext():
        tables = _as_tuple(catalog.measure_of(name).run(model, RunInputs(job, device), job.probe, log, **extra))
    _write(tables, probe, job, payload["epoch"], outs)
    log(f"{module.headline(*tables)}; wrote {', '.join(str(outs[t]) for t in probe.table_names)}")
    return tables


def merge_probe(name: str, spec: dict | JobSpec, shards: dict, outs: dict) -> tuple[pd.DataFrame, ...]:
    """Join the tables of a probe job's shards (`shards`: table -> its shard files) into the
    tables one job writes (the probe's `merge`)."""
    job = JobSpec.of(spec)
    module = catalog.module_of(name)
    parts = {table: [results.read_run_table(f, table).to_pandas() for f in files] for table, files in shards.items()}
    tables = _as_tuple(module.merge(job, parts))
    epoch = int(parts[module.PROBE.table_names[0]][0]["epoch"].iloc[0])
    _write(tables, module.PROBE, job, epoch, outs)
    log = Log(name, job.run.id, epoch)
    log(f"{module.headline(*tables)}; wrote {', '.join(str(outs[t]) for t in module.PROBE.table_names)}")
    return tables
