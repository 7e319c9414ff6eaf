"""One module per figure (listed in `vitprobe.catalog.FIGURES`); each has
`plot(spec, tables, out)`, where `spec` is the figure's config (`figures.<name>` in the
config) and `tables` maps a table name to its rows (a DataFrame aggregated from per-run
Parquet files). Modules are imported only when drawing, so planning a workflow does not
import matplotlib.

`plot` draws from per-run Parquet paths (the pipeline), `draw` from DataFrames with the grid
columns, `plot_tables` (`vitprobe.plot`) from the tables `vitprobe.api` returns, filling the
grid columns and the figure's spec."""

from __future__ import annotations

import importlib

import pandas as pd

from vitprobe.catalog import FIGURES
from vitprobe.columns import GRID_COLUMNS
from vitprobe.config import load
from vitprobe.config.identity import Run, parse_fraction
from vitprobe.results import INTERVALS, TABLES, aggregate, schema, units_table
from vitprobe.results import with_intervals as table_with_intervals

#: The grid values `plot_tables` gives rows without them: an imported model's one checkpoint.
GRID_DEFAULTS = {"dataset": "custom", "model": "model", "kernel_size": 0, "fraction": 1.0, "seed": 0, "epoch": 0}


def _figure(name: str):
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(FIGURES)}")
    return FIGURES[name]


def plot(name: str, spec: dict, tables: dict, out):
    """Draw figure `name` from {table: [per-run Parquet paths]} into `out` (one path or several);
    returns the matplotlib Figure (`draw`)."""
    figure = _figure(name)
    return draw(name, spec, {t: aggregate(tables.get(t, []), t) for t in figure.tables}, out)


def draw(name: str, spec: dict, frames: dict[str, pd.DataFrame], out):
    """Draw figure `name` from {table: DataFrame with the grid columns} (a table not given: no
    rows) into `out`, with the figure module the pipeline uses; returns the matplotlib Figure
    (closed once saved; its artists hold the plotted data)."""
    figure = _figure(name)
    frames = {t: frames[t] if t in frames else schema(t).empty_table().to_pandas() for t in figure.tables}
    return importlib.import_module(figure.module).plot(spec, with_intervals(frames, spec), out)


def with_intervals(frames: dict[str, pd.DataFrame], spec: dict) -> dict[str, pd.DataFrame]:
    """Every table of `frames` that has intervals (`vitprobe.results.INTERVALS`) with its
    interval columns, computed from its per-unit table in `frames`, at the spec's `intervals`
    (the pipeline passes the config's; default: the schema's): the figure modules draw
    `<column>_low`/`_high` as they find them in `results/<table>.parquet`."""
    ci = load.intervals(spec)
    out = dict(frames)
    for t, df in frames.items():
        units = units_table(t)
        if t in INTERVALS and (units is None or units in frames):
            out[t] = table_with_intervals(t, df, frames.get(units), ci)
    return out


def _table_of(df: pd.DataFrame) -> str:
    """The table a DataFrame holds: the one with the most own columns, all of them in `df`."""
    fits = [t for t, cols in TABLES.items() if {c.name for c in cols} <= set(df.columns)]
    if not fits:
        raise ValueError(f"a DataFrame with columns {', '.join(map(str, df.columns))} is none of the tables "
                         f"(vitprobe.results.TABLES: {', '.join(TABLES)}); pass what vitprobe.api returns")
    return max(fits, key=lambda t: len(TABLES[t]))


def _frames(tables) -> dict[str, pd.DataFrame]:
    """{table: DataFrame} from a DataFrame, a tuple or list of them (what `api.hessian` returns),
    or a dict {table name: DataFrame}."""
    if isinstance(tables, pd.DataFrame):
        tables = [tables]
    if isinstance(tables, dict):
        for t, df in tables.items():
            if not isinstance(df, pd.DataFrame):
                raise ValueError(f"tables[{t!r}] is a {type(df).__name__}; allowed: a DataFrame")
        return dict(tables)
    if isinstance(tables, (tuple, list)) and tables and all(isinstance(df, pd.DataFrame) for df in tables):
        return {_table_of(df): df for df in tables}
    raise ValueError(f"tables is a {type(tables).__name__}; allowed: a DataFrame, a tuple or list of DataFrames, "
                     "{table: DataFrame}, or {label: any of these} for several models")


def _entries(tables, label) -> list[tuple[str | None, dict[str, pd.DataFrame]]]:
    """(label, {table: DataFrame}) per model: one entry, or one per key of {label: tables}."""
    if isinstance(tables, dict) and tables and not all(isinstance(k, str) and k in TABLES for k in tables):
        if label is not None:
            raise ValueError("label names the one model of `tables`; with {label: tables} the keys are the labels")
        return [(str(k), _frames(v)) for k, v in tables.items()]
    return [(label, _frames(tables))]


def _with_grid(df: pd.DataFrame, values: dict) -> pd.DataFrame:
    """`df` with every grid column it lacks: `values`, and `run` (if a grid column) from the rest."""
    df = df.copy()
    for col in GRID_COLUMNS:
        if col.name not in df.columns and col.name in values:
            df[col.name] = values[col.name]
    names = [c.name for c in GRID_COLUMNS]
    if "run" in names and "run" not in df.columns:
        keys = ["dataset", "model", "kernel_size", "fraction", "seed"]
        df["run"] = [Run(str(d), str(m), int(k), float(f), int(s)).id for d, m, k, f, s in
                     zip(*(df[k] for k in keys))]
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise ValueError(f"grid column(s) {', '.join(missing)} not filled: give them as keyword arguments")
    return df[names + [c for c in df.columns if c not in names]]


def plot_tables(figure: str, tables, out, spec: dict | None = None, *, label: str | None = None, **grid):
    """Draw `figure` (a name of `vitprobe.catalog.FIGURES`) from the tables `vitprobe.api`
    returns into `out` (a .pdf, .png or .svg path, or several), with the pipeline's figure
    module; returns the matplotlib Figure (closed; its artists hold the plotted data).

    `tables`: a DataFrame, a tuple or list of them (e.g. `api.hessian`'s pair: each is told by
    its columns) or {table name: DataFrame}: one model; or {label: any of these}: one series
    per label, several models in one figure. A frame may carry the grid columns (e.g. a
    concatenation of several models' tables with a `model` column: one series per model).

    Grid columns a frame lacks are filled from `grid` (keyword arguments dataset, model,
    kernel_size, fraction, seed, epoch; defaults `GRID_DEFAULTS`: dataset "custom", model
    "model", kernel size 0, fraction 1, seed 0, epoch 0, an imported model's one checkpoint),
    `model` with {label: tables} from the label, and `run` from those. `label`: the legend
    name of a single model (default: its model name).

    `spec`: the figure's config block (`figures.<name>` in config.yaml); what it lacks of
    the keys the figure needs (`FIGURES[figure].needs`) is filled: `series`, one per model
    ({"label": ..., "model": ...}), and `epoch`, the latest epoch in the tables."""
    fig = _figure(figure)
    unknown = sorted(set(grid) - set(GRID_DEFAULTS))
    if unknown:
        raise TypeError(f"plot_tables: unknown keyword argument(s) {', '.join(unknown)}; allowed: label, "
                        f"{', '.join(GRID_DEFAULTS)}")
    values = {**GRID_DEFAULTS, **grid}
    values["fraction"] = parse_fraction(values["fraction"])
    frames: dict[str, list[pd.DataFrame]] = {}
    series: list[dict] = []
    for name, entry in _entries(tables, label):
        entry = {t: _with_grid(df, values if name is None else {**values, "model": name}) for t, df in entry.items()}
        given = [t for t in fig.tables if t in entry]
        if not given:
            raise ValueError(f"{figure} draws table(s) {', '.join(fig.tables)}; got {', '.join(entry) or 'none'}"
                             f"{f' for {name!r}' if name else ''}")
        models = list(dict.fromkeys(m for t in given for m in entry[t]["model"]))
        if name is not None and len(models) > 1:
            raise ValueError(f"tables of {name!r} hold several models ({', '.join(map(str, models))}); give one "
                             "model per label")
        for m in models:
            taken = [s["label"] for s in series if s["model"] == m]
            if taken:
                raise ValueError(f"model {m!r} is in the tables of {taken[0]!r} and {name or label or m!r}: give "
                                 "each label its own model name (keyword `model`, or drop the model column)")
            series.append({"label": name or (label if label is not None and len(models) == 1 else m), "model": m})
        for t in given:
            frames.setdefault(t, []).append(entry[t])
    if label is not None and len(series) > 1:
        raise ValueError(f"label {label!r} names one model, but the tables hold {len(series)}; use {{label: tables}}")
    joined = {t: pd.concat(parts, ignore_index=True) for t, parts in frames.items()}
    spec = dict(spec or {})
    if "series" in fig.needs and "series" not in spec:
        spec["series"] = series
    if "epoch" in fig.needs and "epoch" not in spec:
        epochs = [df["epoch"].max() for df in joined.values() if len(df)]
        spec["epoch"] = int(max(epochs)) if epochs else int(values["epoch"])
    return draw(figure, spec, joined, out)
