"""The AlterNet build-up search (paper Fig. 12a), from the `search` table.

x: the steps in the order tried (0 = the base), each labelled with its MSA layout (MSA blocks
per stage c1..cn); y: its accuracy on the held-out split of the training set. The kept
path (the base and every candidate kept as the new best) is a line of filled markers;
candidates not kept are open grey markers joined to the best they were compared with.
Background bands mark the stage each step searched. Bars: the Wilson interval of each
accuracy over the `n_holdout` held-out images (`vitprobe.stats.wilson`, at the spec's
`intervals.level`); the note under the figure says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitprobe.config import load
from vitprobe.figures.bars import WILSON_HOLDOUT, Stat
from vitprobe.figures.panels import empty_panel, errorbar, finish
from vitprobe.figures.style import COLUMN_WIDTH, FULL_WIDTH, color, paper_style, plt, save
from vitprobe.stats import wilson

GREY = "#999999"


def accuracy_stats(df: pd.DataFrame, level: float) -> list[Stat]:
    """Per step: its held-out accuracy (%) with the Wilson interval over its n_holdout images."""
    n = df["n_holdout"].to_numpy(dtype=float)
    acc = df["accuracy"].to_numpy(dtype=float)
    lo, hi = wilson(np.round(acc / 100 * n), n, level)
    return [Stat(a, 100 * low, 100 * high, 1, (WILSON_HOLDOUT[0], int(k)) if k > 0 else None)
            for a, low, high, k in zip(acc, lo, hi, n)]


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    df = tables["search"].sort_values("step")
    level = load.intervals(spec).level
    with paper_style():
        fig, ax = plt.subplots(figsize=(max(COLUMN_WIDTH, min(FULL_WIDTH, 0.45 * len(df) + 1.5)), 2.6))
        ax.set_title("Build-up rule: MSA blocks added from the end", pad=12)
        ax.set_ylabel("Held-out accuracy (%)")
        if not len(df):
            empty_panel(ax, "no results yet")
            save(fig, out)
            return fig
        steps, acc = df["step"].to_numpy(), df["accuracy"].to_numpy()
        for k, (stage, g) in enumerate(df[df["stage"] > 0].groupby("stage", sort=False)):
            ax.axvspan(g["step"].min() - 0.5, g["step"].max() + 0.5, color=color(2) if k % 2 else color(5),
                       alpha=0.08, lw=0)
            ax.text(g["step"].mean(), 1.0, f"c{stage}", transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=7)
        found = accuracy_stats(df, level)
        kept = df[df["kept"]]
        ax.plot(kept["step"], kept["accuracy"], "-o", color=color(0), label="kept (current best)", zorder=3)
        is_kept = df["kept"].to_numpy(dtype=bool)
        for mask, c in [(is_kept, color(0)), (~is_kept, GREY)]:
            errorbar(ax, steps[mask], [s for s, m in zip(found, mask) if m], fmt="none", ecolor=c, zorder=2)
        best_step = 0
        for row in df.itertuples():
            if row.kept:
                best_step = row.step
            else:
                best = df.loc[df["step"] == best_step, "accuracy"].iloc[0]
                ax.plot([best_step, row.step], [best, row.accuracy], ":", color=GREY, lw=0.8)
        rejected = df[~df["kept"]]
        ax.plot(rejected["step"], rejected["accuracy"], "o", mfc="white", mec=GREY, color=GREY,
                label="not kept", zorder=3)
        ax.set_xticks(steps, [m.replace(",", "") for m in df["msa_blocks"]], rotation=45, ha="right")
        ax.set_xlabel("MSA blocks per stage (c1…cn), in the order tried")
        ax.set_xlim(steps.min() - 0.5, steps.max() + 0.5)
        lows, highs = np.array([s.lo for s in found]), np.array([s.hi for s in found])
        low, high = np.nanmin(np.fmin(lows, acc)), np.nanmax(np.fmax(highs, acc))
        pad = max(0.5, 0.1 * (high - low))
        ax.set_ylim(low - pad, high + pad)
        ax.legend(loc="lower right")
        finish(fig, level, {"accuracy": found}, [], out)
    return fig
