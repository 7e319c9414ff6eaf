"""One figure style for every plot: paper-like, readable at column width, colour-blind safe.
Also the note naming series without data, and saving a figure in the formats asked for."""

from __future__ import annotations

import contextlib

import matplotlib

matplotlib.use("Agg")
from pathlib import Path

import matplotlib.pyplot as plt  # noqa: E402

from vitprobe.atomic import atomic_path

# Okabe & Ito (2008), safe for the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
COLUMN_WIDTH = 3.3   # inches, a two-column paper's column
FULL_WIDTH = 6.8

RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False, "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE), "lines.linewidth": 1.3,
    "legend.frameon": False, "pdf.fonttype": 42, "savefig.bbox": "tight", "savefig.pad_inches": 0.02,
}


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@contextlib.contextmanager
def paper_style():
    with matplotlib.rc_context(RC):
        yield


def note_missing(fig, missing: list[str]) -> None:
    """Say on the figure which series have no data (a partial grid), instead of failing."""
    if missing:
        fig.text(0.5, -0.02, "no results yet for: " + "; ".join(missing), ha="center", va="top",
                 fontsize=7, color="#B00000")


PNG_DPI = 150  # the report's and the README's inline rendering


def save(fig, out) -> None:
    """Write the figure to one path or several; the format follows each suffix (.pdf, .png, .svg)."""
    for path in [out] if isinstance(out, (str, Path)) else out:
        fmt = Path(path).suffix.lstrip(".").lower()
        if fmt not in ("pdf", "png", "svg"):
            raise ValueError(f"{path}: figures are written as .pdf, .png or .svg")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, **({"dpi": PNG_DPI} if fmt == "png" else {}))
    plt.close(fig)
