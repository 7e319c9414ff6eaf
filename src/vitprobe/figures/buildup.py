"""The AlterNet build-up search (paper Fig. 12a), from the `search` table.

x: the steps in the order tried (0 = the base), each labelled with its MSA layout (MSA blocks
per stage c1..cn); y: its accuracy on the held-out split of the training set. The kept
path (the base and every candidate kept as the new best) is a line of filled markers;
candidates not kept are open grey markers joined to the best they were compared with.
Background bands mark the stage each step searched.
"""

from __future__ import annotations

import pandas as pd

from vitprobe.figures.panels import empty_panel
from vitprobe.figures.style import COLUMN_WIDTH, FULL_WIDTH, color, paper_style, plt, save

GREY = "#999999"


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    df = tables["search"].sort_values("step")
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
        kept = df[df["kept"]]
        ax.plot(kept["step"], kept["accuracy"], "-o", color=color(0), label="kept (current best)", zorder=3)
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
        pad = max(0.5, 0.1 * (acc.max() - acc.min()))
        ax.set_ylim(acc.min() - pad, acc.max() + pad)
        ax.legend(loc="lower right")
        save(fig, out)
    return fig
