"""Parquet tables: every table's schema (its columns come from the probe that writes it,
`vitprobe.columns` has the rest), and the functions that write per-run tables and
aggregate them.

Every row carries the run's grid columns (dataset, model, kernel_size, fraction, seed, epoch)
and provenance (vitprobe version, git commit, config hash), so a user needs nothing but
`pd.read_parquet("results/<table>.parquet")`.
"""

from __future__ import annotations

import functools
import os
import subprocess

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vitprobe import __version__
from vitprobe.atomic import atomic_path
from vitprobe.catalog import PROBES, module_of, probe_of
from vitprobe.columns import (
    GRID_COLUMNS,
    PROVENANCE_COLUMNS,
    SEARCH_COLUMNS,
    SEARCH_TABLE,
    TRAIN_LOG,
    TRAIN_LOG_COLUMNS,
    Column,
)
from vitprobe.config.identity import Run
from vitprobe.errors import VitprobeError, first_line

#: Every table: its own columns (without the grid and provenance columns), by name.
TABLES: dict[str, list[Column]] = {
    TRAIN_LOG: TRAIN_LOG_COLUMNS,
    **{table: columns for probe in PROBES.values() for table, columns in probe.tables.items()},
    SEARCH_TABLE: SEARCH_COLUMNS,
}


#: Summary tables with intervals: table -> (its per-unit table, the interval columns that
#: `results/<table>.parquet` has and its per-run files do not).
INTERVALS: dict[str, tuple[str | None, list[Column]]] = {
    table: spec for probe in PROBES.values() for table, spec in probe.intervals.items()}
LEVEL_COLUMN = Column("interval_level", pa.float64(), "",
                      "the level of every interval column of the row (config key intervals.level)")


def interval_columns(table: str) -> list[Column]:
    """The columns `with_intervals` adds to `table` (none for a table without intervals)."""
    return [*INTERVALS[table][1], LEVEL_COLUMN] if table in INTERVALS else []


def units_table(table: str) -> str | None:
    """The per-unit table the intervals of `table` are computed from (None: none needed)."""
    return INTERVALS[table][0] if table in INTERVALS else None


def schema(table: str, aggregated: bool = False) -> pa.Schema:
    """The full Arrow schema of a table: grid columns, its own columns, provenance; with
    `aggregated`, that of `results/<table>.parquet`: its interval columns after its own."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; allowed: {', '.join(TABLES)}")
    cols = GRID_COLUMNS + TABLES[table] + (interval_columns(table) if aggregated else []) + PROVENANCE_COLUMNS
    return pa.schema([pa.field(c.name, c.dtype) for c in cols])


def with_intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame | None, ci) -> pd.DataFrame:
    """`rows` of `table` with its interval columns (`interval_columns`), computed by its
    probe's `intervals` from `units` (rows of `units_table(table)` of the same runs and
    epochs) at `ci` (a `vitprobe.stats.Intervals`: `vitprobe.config.load.intervals`). A
    table without intervals comes back unchanged."""
    if table not in INTERVALS:
        return rows
    need = units_table(table)
    if need is not None and units is None:
        raise ValueError(f"the intervals of table {table!r} need its per-unit table {need!r}")
    out = module_of(probe_of(table)).intervals(table, rows.reset_index(drop=True), units, ci)
    out["interval_level"] = ci.level
    missing = [c.name for c in interval_columns(table) if c.name not in out.columns]
    if missing:
        raise RuntimeError(f"the intervals of table {table!r} lack columns {missing}")
    return out


@functools.cache
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def write_run_table(rows: pd.DataFrame, table: str, path, *, run: dict, config_hash: str,
                    epoch: int | None = None, weights: str = "trained") -> None:
    """Write one run's rows atomically, adding grid and provenance columns.

    `epoch` is the checkpoint epoch of probe tables; train_log rows carry their own epoch.
    """
    df = rows.copy()
    df["run"] = Run(**run).id
    for key, value in run.items():
        df[key] = value
    if epoch is not None:
        df["epoch"] = epoch
    df["vitprobe_version"] = __version__
    df["git_commit"] = git_commit()
    df["config_hash"] = config_hash
    df["weights"] = weights
    target = schema(table)
    missing = [n for n in target.names if n not in df.columns]
    if missing:
        raise ValueError(f"table {table!r}: rows lack columns {missing}")
    arrow = pa.Table.from_pandas(df[target.names], schema=target, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


class TableError(VitprobeError, ValueError):
    """A per-run table file is missing, empty, unreadable or has another schema than its table."""


def read_run_table(path, table: str) -> pa.Table:
    """Read a per-run file and check it has exactly the table's schema; if not, a one-line
    TableError names the file, the table and what is wrong (e.g. the missing columns)."""
    expected, fix = schema(table), "delete it and rerun the job that writes it"
    if not os.path.isfile(path):
        raise TableError(f"{path}: file of table {table!r} does not exist; rerun the job that writes it")
    if os.path.getsize(path) == 0:
        raise TableError(f"{path}: file of table {table!r} is empty (0 bytes), probably left by a killed "
                         f"writer; {fix}")
    try:
        got = pq.read_table(path)
    except Exception as exc:
        raise TableError(f"{path}: not a readable Parquet file of table {table!r} ({first_line(exc)}); {fix}") from exc
    found = got.schema.remove_metadata()
    if "run" not in found.names and {"dataset", "model", "kernel_size", "fraction", "seed"} <= set(found.names):
        # written before the run column existed: the run id follows from the grid columns
        grid = got.select(["dataset", "model", "kernel_size", "fraction", "seed"]).to_pylist()
        got = got.add_column(0, expected.field("run"), pa.array([Run(**g).id for g in grid], pa.string()))
        found = got.schema.remove_metadata()
    if found.names == expected.names[:-1] and expected.names[-1] == "weights":
        # written before the weights column existed: every such run was trained by vitprobe
        got = got.append_column(expected.field("weights"), pa.array(["trained"] * got.num_rows, pa.string()))
        found = got.schema.remove_metadata()
    if not found.equals(expected):
        missing = [n for n in expected.names if n not in found.names]
        extra = [n for n in found.names if n not in expected.names]
        types = [f"{f.name} is {f.type}, not {expected.field(f.name).type}" for f in found
                 if f.name in expected.names and f.type != expected.field(f.name).type]
        problems = [f"{what}: {', '.join(items)}" for what, items in
                    [("missing columns", missing), ("unexpected columns", extra), ("wrong types", types)] if items]
        raise TableError(f"{path}: schema does not match table {table!r}: "
                         f"{'; '.join(problems) or 'columns in another order or with other attributes'}; "
                         f"it was written by another vitprobe version or other code: {fix}")
    return got


def aggregate(paths, table: str) -> pd.DataFrame:
    """Concatenate per-run files of one table (validated) into one DataFrame."""
    parts = [read_run_table(p, table) for p in paths]
    if not parts:
        return schema(table).empty_table().to_pandas()
    return pa.concat_tables(parts).to_pandas()


def write_aggregate(paths, table: str, out, units_paths=(), ci=None) -> int:
    """`results/<table>.parquet` from its per-run files, with its interval columns computed
    from the per-run files of its per-unit table (`units_paths`) at `ci`."""
    df = aggregate(paths, table)
    if table in INTERVALS:
        need = units_table(table)
        df = with_intervals(table, df, aggregate(units_paths, need) if need else None, ci)
    target = schema(table, aggregated=True)
    arrow = pa.Table.from_pandas(df[target.names], schema=target, preserve_index=False)
    with atomic_path(out) as tmp:
        pq.write_table(arrow, tmp)
    return len(df)


def markdown_docs() -> str:
    """The table reference (docs/reference/tables.md), generated from the definitions: a
    section per table, headed by its name."""
    lines = []
    shared = [("grid", "Every table, first: the run and the checkpoint.", GRID_COLUMNS),
              ("provenance", "Every table, last: who wrote the row.", PROVENANCE_COLUMNS)]
    for title, intro, cols in [*shared, *((t, f"`results/<table>.parquet` with <table> = `{t}`, and its per-run files.",
                                           c) for t, c in TABLES.items())]:
        lines += [f"## {title}", "", intro, "", "| column | dtype | unit | meaning |", "|---|---|---|---|"]
        lines += [f"| {c.name} | {c.dtype} | {c.unit} | {c.doc.replace('|', chr(92) + '|')} |" for c in cols]
        if title in INTERVALS:
            units = units_table(title)
            source = f" from the per-run table `{units}`" if units else ""
            lines += ["", f"Intervals, in `results/{title}.parquet` only (not in the per-run files): computed when the "
                      f"table is aggregated (and when a figure is drawn){source}, at the config's `intervals` (level, "
                      "bootstrap resamples, seed; `vitprobe.stats`).", "",
                      "| column | dtype | unit | meaning |", "|---|---|---|---|"]
            lines += [f"| {c.name} | {c.dtype} | {c.unit} | {c.doc.replace('|', chr(92) + '|')} |"
                      for c in interval_columns(title)]
        lines.append("")
    return "\n".join(lines)
