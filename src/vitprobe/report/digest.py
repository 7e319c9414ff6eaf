"""The demo's numbers for the README, computed from its result tables, so that no number in
the README is copied by hand: `vitprobe digest --results results/demo --readme README.md`
(`make readme`) rewrites the block between `<!-- digest:begin -->` and `<!-- digest:end -->`
with the demo's scorecard (`vitprobe.report.scorecard`) and copies the figures' PNGs next to it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from vitprobe import stats
from vitprobe.errors import VitprobeError
from vitprobe.report import scorecard

BEGIN, END = "<!-- digest:begin -->", "<!-- digest:end -->"
RUN_KEYS = ["model", "kernel_size", "fraction"]


def _run_label(row) -> str:
    label = row["model"]
    if row["kernel_size"]:
        label += f" (k={row['kernel_size']})"
    if row["fraction"] < 1:
        label += f" on 1/{round(1 / row['fraction'])} of the data"
    return label


def _table(df: pd.DataFrame, columns: dict) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(f(row) for f in columns.values()) + " |")
    return lines


def _interval(row, column: str, scale: float = 1.0, unit: str = "") -> str:
    value, low, high = (scale * row[c] for c in (column, f"{column}_low", f"{column}_high"))
    if np.isnan(value):
        return "–"
    shown = f"{value:.3g}{unit}"
    return shown if np.isnan(low) else f"{shown} [{low:.3g}, {high:.3g}]"


def digest(results) -> str:
    """Markdown: the results folder's scorecard (`vitprobe.report.scorecard`: the claims with their
    verdicts, the runs with their intervals) and the Hessian summary per run and epoch with
    its intervals, each table named with the file it comes from."""
    results = Path(results)
    needed = ["scorecard", "scorecard_runs", "hessian_summary"]
    missing = [t for t in needed if not (results / f"{t}.parquet").is_file()]
    if missing:
        raise VitprobeError(f"{results}: no {', '.join(f'{t}.parquet' for t in missing)}; run the pipeline first "
                            f"(make demo)")
    claims, runs, hs = (pd.read_parquet(results / f"{t}.parquet") for t in needed)
    lines = [scorecard.markdown(claims, runs, str(results)), ""]
    level = f"{100 * hs['interval_level'].iloc[0]:g} %" if len(hs) else ""
    lines += [f"Hessian spectra (`{results}/hessian_summary.parquet`): NEP (share of negative top eigenvalues), APE "
              f"(their mean positive value) with their {level} intervals (bootstrap over the mini-batches; none below "
              f"{stats.MIN_UNITS}), and the trace of the NLL Hessian ± z·standard error:", ""]
    lines += _table(hs.sort_values(RUN_KEYS + ["epoch", "seed"]),
                    {"run": _run_label, "seed": lambda r: str(int(r["seed"])), "epoch": lambda r: str(int(r["epoch"])),
                     "mini-batches": lambda r: str(int(r["n_batches"])),
                     "NEP": lambda r: _interval(r, "nep", 100, " %"), "APE": lambda r: _interval(r, "ape"),
                     "tr(H_NLL)": lambda r: _interval(r, "trace_nll")})
    return "\n".join(lines)


def update_readme(readme, block: str) -> None:
    path = Path(readme)
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise VitprobeError(f"{path}: no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{block}\n{END}{rest.split(END, 1)[1]}")


def copy_images(figures, to) -> list[Path]:
    """The figures' PNGs (as the report shows them) into the documentation's image folder
    (docs/img, shown by docs/guide/figures.md)."""
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    pngs = sorted(Path(figures).glob("*.png"))
    if not pngs:
        raise VitprobeError(f"{figures}: no figure PNGs; run the pipeline first (make demo)")
    return [Path(shutil.copyfile(p, to / p.name)) for p in pngs]
