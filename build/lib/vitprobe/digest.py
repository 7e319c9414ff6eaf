"""The demo's numbers for the README, computed from its result tables, so that no number in
the README is copied by hand: `vitprobe digest --results results/demo --readme README.md`
(`make readme`) rewrites the block between `<!-- digest:begin -->` and `<!-- digest:end -->`
and copies the figures' PNGs next to it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from vitprobe.errors import VitprobeError

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


def digest(results) -> str:
    """Markdown: test error and NLL per run at the last evaluated epoch; NEP, APE and the
    NLL Hessian's trace per run and Hessian epoch (means over seeds)."""
    results = Path(results)
    missing = [t for t in ("eval", "hessian_summary") if not (results / f"{t}.parquet").is_file()]
    if missing:
        raise VitprobeError(f"{results}: no {', '.join(f'{t}.parquet' for t in missing)}; run the pipeline first "
                            f"(make demo)")
    ev = pd.read_parquet(results / "eval.parquet")
    ev = ev[ev["epoch"] == ev["epoch"].max()].groupby(RUN_KEYS, as_index=False)[["error", "nll_test"]].mean()
    ev = ev.sort_values("error")
    hs = pd.read_parquet(results / "hessian_summary.parquet")
    hs = hs.groupby(RUN_KEYS + ["epoch"], as_index=False)[["nep", "ape", "trace_nll"]].mean()
    lines = [f"Test error after {int(pd.read_parquet(results / 'eval.parquet')['epoch'].max())} epochs "
             f"(`{results}/eval.parquet`), best first:", ""]
    lines += _table(ev, {"run": _run_label, "test error": lambda r: f"{r['error']:.1f} %",
                         "test NLL": lambda r: f"{r['nll_test']:.3f}"})
    lines += ["", f"Hessian spectra (`{results}/hessian_summary.parquet`): NEP (share of negative top "
              "eigenvalues), APE (their mean positive value) and the trace of the NLL Hessian:", ""]
    lines += _table(hs.sort_values(RUN_KEYS + ["epoch"]),
                    {"run": _run_label, "epoch": lambda r: str(int(r["epoch"])),
                     "NEP": lambda r: f"{100 * r['nep']:.0f} %", "APE": lambda r: f"{r['ape']:.3g}",
                     "tr(H_NLL)": lambda r: f"{r['trace_nll']:.3g}"})
    return "\n".join(lines)


def update_readme(readme, block: str) -> None:
    path = Path(readme)
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise VitprobeError(f"{path}: no {BEGIN} ... {END} block to replace")
    head, rest = text.split(BEGIN, 1)
    path.write_text(f"{head}{BEGIN}\n{block}\n{END}{rest.split(END, 1)[1]}")


def copy_images(figures, to) -> list[Path]:
    """The figures' PNGs (as the report shows them) into the README's image folder."""
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    pngs = sorted(Path(figures).glob("*.png"))
    if not pngs:
        raise VitprobeError(f"{figures}: no figure PNGs; run the pipeline first (make demo)")
    return [Path(shutil.copyfile(p, to / p.name)) for p in pngs]
