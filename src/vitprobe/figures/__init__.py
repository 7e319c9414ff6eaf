"""One module per figure (listed in `vitprobe.catalog.FIGURES`); each has
`plot(spec, tables, out)`, where `spec` is the figure's config (`figures.<name>` in the
config) and `tables` maps a table name to its rows (a DataFrame aggregated from per-run
Parquet files). Modules are imported only when drawing, so planning a workflow does not
import matplotlib."""

from __future__ import annotations

import importlib

from vitprobe.catalog import FIGURES
from vitprobe.results import aggregate


def plot(name: str, spec: dict, tables: dict, out) -> None:
    """Draw figure `name` from {table: [per-run Parquet paths]} into `out` (one path or several)."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(FIGURES)}")
    figure = FIGURES[name]
    frames = {t: aggregate(tables.get(t, []), t) for t in figure.tables}
    importlib.import_module(figure.module).plot(spec, frames, out)
