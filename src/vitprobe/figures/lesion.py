"""The lesion study (paper Fig. 10b), from the ``lesion`` table.

One panel per series: the change in test error (pp, lesioned − intact: accuracy lost) when
one residual unit is removed, against the unit's position in forward order. Bars: Conv and
MLP units in one colour, MSA units in another; units whose block subsamples (or that come
first after a pooling layer) get a grey band behind them, as the paper shades its subsampling
units; thin lines mark where a stage begins. Error bars: with one seed the paired bootstrap
over the test images (``delta_error_low``/``_high``), with several the t-interval over seeds;
the note under the figure says which. The paper reads a period of one stage in it.

Rows are taken at the figure's ``epoch`` (default: each series' latest epoch); several seeds
are averaged. A series without rows is named on the figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitprobe.figures.bars import level_of, seed_profile
from vitprobe.figures.panels import BAND_COLOR, epoch_title, finish, panel_grid, series_rows
from vitprobe.figures.style import FULL_WIDTH, color, paper_style, plt

PER_ROW = 2
MSA_KINDS = ("msa", "mixer_token")
PAIRED = ("paired bootstrap over {n} test images (with and without the unit)", "n_images")


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    level = level_of(spec, tables["lesion"])
    data, found = {}, []
    for s in series:
        rows = series_rows(tables["lesion"], s, spec.get("epoch"), one_run=True)
        if len(rows):
            profile, stats_ = seed_profile(rows, ["unit"], "delta_error", level, PAIRED,
                                           first=("unit_name", "kind", "subsampling", "stage"))
            data[s["label"]] = (profile, int(rows["epoch"].iloc[0]))
            found += stats_
    with paper_style():
        per_row = min(max(len(data), 1), PER_ROW)
        rows_n = -(-max(len(data), 1) // per_row)
        fig = plt.figure(figsize=(FULL_WIDTH if per_row > 1 else FULL_WIDTH / 2, 2.2 * rows_n + 0.6),
                         layout="constrained")
        axes = panel_grid(fig, len(data), per_row)
        for ax, (label, (p, _)) in zip(axes, data.items()):
            x = p["unit"].to_numpy()
            msa = p["kind"].isin(MSA_KINDS).to_numpy()
            for i in x[p["subsampling"].to_numpy(bool)]:
                ax.axvspan(i - 0.5, i + 0.5, color=BAND_COLOR, lw=0, zorder=0)
            stage = p["stage"].to_numpy()
            for i in x[1:][stage[1:] != stage[:-1]]:
                ax.axvline(i - 0.5, color="0.6", lw=0.5, ls=":", zorder=0)
            y = p["delta_error"].to_numpy()
            err = np.abs(np.stack([y - p["delta_error_low"].to_numpy(), p["delta_error_high"].to_numpy() - y]))
            for mask, c, name in ((~msa, color(0), "Conv / MLP"), (msa, color(1), "MSA")):
                if mask.any():
                    ax.bar(x[mask], y[mask], width=0.8, color=c, label=name, zorder=2)
                    ax.errorbar(x[mask], y[mask], yerr=err[:, mask], fmt="none", ecolor="0.2", elinewidth=0.7,
                                capsize=1.5, zorder=3)
            ax.axhline(0, color="0.3", lw=0.6)
            ax.set_xticks(x)
            ax.set_title(label)
        if not data:
            axes[0].text(0.5, 0.5, "no data", transform=axes[0].transAxes, ha="center", va="center", color="0.5")
        for i, ax in enumerate(axes):  # each panel its own units: tick labels on every panel
            ax.set_xlabel("unit removed (forward order)" if i + per_row >= len(axes) else "")
            ax.set_ylabel("Δ error (pp)" if i % per_row == 0 else "")
        handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
        if handles:
            axes[0].legend(handles=list(handles.values()), loc="upper right", fontsize=6)
        fig.suptitle(epoch_title("Error increase when one unit is removed", {k: v[1] for k, v in data.items()}),
                     fontsize=8)
        finish(fig, level, {"Δ error": found}, [s["label"] for s in series if s["label"] not in data], out)
    return fig
