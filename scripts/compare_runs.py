"""Two runs of a workflow give the same results: every aggregated table equal in every column
but provenance and timing (`vitprobe.results`: PROVENANCE_COLUMNS, units s and 1/s), row
order aside, and every figure's PNG equal pixel for pixel.

    .venv/bin/python scripts/compare_runs.py RESULTS_A FIGURES_A RESULTS_B FIGURES_B

Prints one line per table and figure; exits 1 if any differs or is missing on one side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vitprobe import results

IGNORED = {c.name for c in results.PROVENANCE_COLUMNS} | {
    c.name for cols in results.TABLES.values() for c in cols if c.unit in ("s", "1/s")}


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    df = df.drop(columns=[c for c in df.columns if c in IGNORED])
    return df.sort_values(list(df.columns)).reset_index(drop=True)


def compare_tables(a: Path, b: Path) -> list[str]:
    bad = []
    names = sorted({p.name for p in a.glob("*.parquet")} | {p.name for p in b.glob("*.parquet")})
    for name in names:
        if not (a / name).exists() or not (b / name).exists():
            bad.append(f"{name}: only in {a if (a / name).exists() else b}")
            continue
        try:
            pd.testing.assert_frame_equal(_canonical(pd.read_parquet(a / name)), _canonical(pd.read_parquet(b / name)),
                                          check_exact=True)
            print(f"equal  {name}")
        except AssertionError as exc:
            bad.append(f"{name}: {str(exc).splitlines()[0]}")
    return bad


def compare_figures(a: Path, b: Path) -> list[str]:
    bad = []
    names = sorted({p.name for p in a.glob("*.png")} | {p.name for p in b.glob("*.png")})
    for name in names:
        if not (a / name).exists() or not (b / name).exists():
            bad.append(f"{name}: only in {a if (a / name).exists() else b}")
            continue
        pa, pb = (np.asarray(Image.open(p / name).convert("RGBA")) for p in (a, b))
        if pa.shape != pb.shape or not (pa == pb).all():
            bad.append(f"{name}: pixels differ")
        else:
            print(f"equal  {name}")
    return bad


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    ra, fa, rb, fb = map(Path, sys.argv[1:])
    bad = compare_tables(ra, rb) + compare_figures(fa, fb)
    for line in bad:
        print(f"DIFFERS {line}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
