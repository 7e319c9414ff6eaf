"""One figure style for every plot: paper-like, readable at column width, colour-blind safe.
Also the notes under a figure (what its bars are; the series without data), and saving a
figure in the formats asked for."""

from __future__ import annotations

import contextlib
import textwrap

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


NOTE_GID = "bars-note"  # the text under a figure that says what its bars are
NOTE_SIZE = 6.5


def _note_lines(text: str, width_in: float) -> str:
    """`text` broken into lines that fit a figure `width_in` inches wide, at its "; " where
    it can, else between words."""
    per_line = max(40, int(width_in * 72 / (0.55 * NOTE_SIZE)))
    lines = [""]
    for part in text.split("; "):
        if lines[-1] and len(lines[-1]) + 2 + len(part) > per_line:
            lines[-1] += ";"
            lines.append(part)
        else:
            lines[-1] = f"{lines[-1]}; {part}" if lines[-1] else part
    return "\n".join(w for line in lines for w in textwrap.wrap(line, per_line, break_on_hyphens=False))


def _below(fig, gap_pt: float = 3.0) -> float:
    """The figure-fraction y just below everything drawn so far (axes with their labels,
    legends, texts), `gap_pt` points lower; at most -0.02 (under the figure's own area)."""
    if fig.get_layout_engine() is not None:
        fig.draw_without_rendering()  # place the axes first
    renderer = fig.canvas.get_renderer()
    boxes = [a.get_tightbbox(renderer) for a in fig.axes if a.get_visible()]
    boxes += [t.get_window_extent(renderer) for t in fig.texts if t.get_text()]
    boxes += [leg.get_window_extent(renderer) for leg in fig.legends]
    bottom = min([b.y0 for b in boxes if b is not None and b.height > 0], default=0.0)
    return min(-0.02, (bottom - gap_pt * fig.dpi / 72) / fig.bbox.height)


def note_bars(fig, text: str) -> None:
    """Say under the figure what its error bars or bands are (`vitprobe.figures.bars.bars_note`);
    call before `note_missing`, which goes below it."""
    if text:
        fig.text(0.5, _below(fig), _note_lines(text, fig.get_size_inches()[0]), ha="center", va="top",
                 fontsize=NOTE_SIZE, color="0.3", gid=NOTE_GID)


def note_missing(fig, missing: list[str]) -> None:
    """Say on the figure which series have no data (a partial grid), instead of failing;
    below everything else (the bars note included)."""
    if missing:
        fig.text(0.5, _below(fig), "no results yet for: " + "; ".join(missing), ha="center", va="top",
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
