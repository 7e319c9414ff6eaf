"""One module per figure; each has `plot(spec, tables, out) -> Figure` where `tables` maps a
table name to its rows (a DataFrame aggregated from per-run Parquet files) and `spec` is
{"figure": <the figure's config>}.

FIGURES maps a figure name to (module, the per-run tables it reads). Modules are imported
only when drawing, so planning a workflow does not import matplotlib.
"""

from __future__ import annotations

import importlib
from pathlib import Path

FIGURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "fig_hessian": ("vitprobe.figures.hessian", ("hessian",)),
    "fig_fourier": ("vitprobe.figures.fourier", ("fourier",)),
    "fig_variance": ("vitprobe.figures.variance", ("variance",)),
    "fig_robustness": ("vitprobe.figures.robustness", ("robustness",)),
    "fig_landscape": ("vitprobe.figures.landscape", ("landscape",)),
    "fig_nll_error": ("vitprobe.figures.nll_error", ("eval",)),
    "fig_gap": ("vitprobe.figures.gap", ("eval", "hessian")),
    "fig_kernel_size": ("vitprobe.figures.kernel_size", ("eval", "hessian")),
    "fig_alternet": ("vitprobe.figures.alternet", ("eval", "robustness", "hessian")),
}


def table_of(path) -> str:
    """The table a per-run file belongs to: train_log.parquet, or <table>_e<epoch>.parquet."""
    stem = Path(path).stem
    return stem if stem == "train_log" else stem.rsplit("_e", 1)[0]


def plot(name: str, spec: dict, inputs: list[str], out) -> None:
    from vitprobe.results import aggregate

    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(FIGURES)}")
    module, needed = FIGURES[name]
    tables = {t: aggregate([p for p in inputs if table_of(p) == t], t) for t in needed}
    importlib.import_module(module).plot(spec, tables, out)
