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


def _compare(a: Path, b: Path, pattern: str, equal) -> list[str]:
    """`equal(path_a, path_b)` for every file matching `pattern` in a or b: the lines that differ."""
    bad = []
    for name in sorted({p.name for p in a.glob(pattern)} | {p.name for p in b.glob(pattern)}):
        if not (a / name).exists() or not (b / name).exists():
            bad.append(f"{name}: only in {a if (a / name).exists() else b}")
        elif (why := equal(a / name, b / name)) is not None:
            bad.append(f"{name}: {why}")
        else:
            print(f"equal  {name}")
    return bad


def _tables_equal(pa_: Path, pb: Path) -> str | None:
    try:
        pd.testing.assert_frame_equal(_canonical(pd.read_parquet(pa_)), _canonical(pd.read_parquet(pb)),
                                      check_exact=True)
    except AssertionError as exc:
        return str(exc).splitlines()[0]
    return None


def _pixels_equal(pa_: Path, pb: Path) -> str | None:
    ia, ib = (np.asarray(Image.open(p).convert("RGBA")) for p in (pa_, pb))
    return None if ia.shape == ib.shape and (ia == ib).all() else "pixels differ"


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    ra, fa, rb, fb = map(Path, sys.argv[1:])
    bad = _compare(ra, rb, "*.parquet", _tables_equal) + _compare(fa, fb, "*.png", _pixels_equal)
    for line in bad:
        print(f"DIFFERS {line}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
