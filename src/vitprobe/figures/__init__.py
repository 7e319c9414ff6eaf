"""One module per figure; each has `plot(spec, inputs, out)` reading per-run Parquet files.

FIGURES maps a figure name to (module, the per-run tables it reads). Modules are imported
only when drawing, so planning a workflow does not import matplotlib.
"""

from __future__ import annotations

import importlib

FIGURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "fig_hessian": ("vitprobe.figures.hessian", ("hessian",)),
}


def plot(name: str, spec: dict, inputs: list[str], out) -> None:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(FIGURES)}")
    importlib.import_module(FIGURES[name][0]).plot(spec, inputs, out)
