"""Hessian spectra per parameter block (vitprobe's extension of the paper's Fig. 1c and 4, after
Zhang et al. 2024), from the tables ``hessian_blocks_summary`` and
``hessian_blocks_heterogeneity``.

Three panels. Left and middle: each block's NEP (%) and λ_max against
its position in the network (the blocks in depth order, normalized to [0, 1]), one line per
series; filled markers for MSA blocks (kinds qkv, attn_proj, attn_other), open for the
others; the positions of the MSA blocks of the first series that has them shaded grey, as in
the variance figure; λ_max on a log axis, symmetric-log where one is negative. Right: each
series' heterogeneity, the mean Jensen-Shannon distance
between its blocks' densities. Bars: with one seed the run's bootstrap over its mini-batches
(``<column>_low``/``_high``), with several the t-interval over seeds; the note under the
figure says which. The figure block's ``kinds`` (default all) selects the blocks drawn.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from vitprobe.figures.bars import MINIBATCHES, level_of, stat
from vitprobe.figures.panels import epoch_title, errorbar, finish, series_rows
from vitprobe.figures.style import FULL_WIDTH, color, paper_style, plt
from vitprobe.probes.hessian.partition import MSA_KINDS

BAND_COLOR = "0.9"


def series_blocks(summary: pd.DataFrame, series: dict, epoch, level: float, kinds) -> tuple[pd.DataFrame, list, int]:
    """One row per block of the series (seed means of nep in % and λ_max with intervals),
    in depth order with its normalized position; the Stats drawn; the epoch."""
    rows = series_rows(summary, series, epoch, one_run=True)
    if kinds:
        rows = rows[rows["kind"].isin(kinds)]
    if not len(rows):
        return pd.DataFrame(), [], None
    rows = rows.assign(nep=100 * rows["nep"], nep_low=100 * rows["nep_low"], nep_high=100 * rows["nep_high"])
    order = rows.drop_duplicates("block").sort_values(["depth"], kind="stable")["block"].tolist()
    out, found = [], []
    for i, block in enumerate(order):
        g = rows[rows["block"] == block]
        nep, lam = stat(g, "nep", level, MINIBATCHES), stat(g, "lambda_max", level, MINIBATCHES)
        found += [nep, lam]
        out.append({"block": block, "kind": g["kind"].iloc[0], "x": i / max(len(order) - 1, 1), "nep": nep,
                    "lambda_max": lam})
    return pd.DataFrame(out), found, int(rows["epoch"].iloc[0])


def _profile(ax, prof: pd.DataFrame, value: str, c: str, label: str) -> None:
    msa = prof["kind"].isin(MSA_KINDS).to_numpy()
    x = prof["x"].to_numpy()
    ax.plot(x, [s.mean for s in prof[value]], color=c, lw=0.8, zorder=2, label=label)
    for mask, face in ((msa, c), (~msa, "white")):
        if mask.any():
            errorbar(ax, list(x[mask]), list(prof[value][mask]), color=c, mfc=face, mew=0.9, ms=3.5, zorder=3)


def plot(spec: dict, tables: dict[str, pd.DataFrame], out) -> plt.Figure:
    series = spec["series"]
    summary, het = tables["hessian_blocks_summary"], tables["hessian_blocks_heterogeneity"]
    level = level_of(spec, summary, het)
    kinds = spec.get("kinds")
    data, found, epochs = {}, {"NEP and λ_max": [], "heterogeneity": []}, {}
    for s in series:
        prof, stats_, epoch = series_blocks(summary, s, spec.get("epoch"), level, kinds)
        if len(prof):
            data[s["label"]], epochs[s["label"]] = prof, epoch
            found["NEP and λ_max"] += stats_
    colors = {s["label"]: color(i) for i, s in enumerate(series)}
    with paper_style():
        fig, (ax_nep, ax_lam, ax_het) = plt.subplots(1, 3, figsize=(FULL_WIDTH, 2.6), layout="constrained",
                                                     width_ratios=[1.4, 1.4, 0.8])
        shaded = None
        for label, prof in data.items():
            for ax, value in ((ax_nep, "nep"), (ax_lam, "lambda_max")):
                _profile(ax, prof, value, colors[label], label)
            msa = prof["kind"].isin(MSA_KINDS).to_numpy()
            if shaded is None and msa.any():
                shaded = label
                half = 0.5 / max(len(prof) - 1, 1)
                for ax in (ax_nep, ax_lam):
                    for x in prof["x"].to_numpy()[msa]:
                        ax.axvspan(x - half, x + half, color=BAND_COLOR, lw=0, zorder=0)
        for ax, ylabel in ((ax_nep, "NEP of the block (%)"), (ax_lam, "λ_max of the block")):
            ax.set_xlim(-0.03, 1.03)
            ax.set_xlabel("Block position (depth order)")
            ax.set_ylabel(ylabel)
        lows = [s.lo if s.lo == s.lo else s.mean for prof in data.values() for s in prof["lambda_max"]]
        if lows and min(lows) > 0:
            ax_lam.set_yscale("log")
        elif lows:  # negative λ_max (a block whose largest |eigenvalue| is negative): symmetric log
            ax_lam.set_yscale("symlog", linthresh=1e-2)
        labels, points = [], []
        for s in series:
            rows = series_rows(het, s, spec.get("epoch"), one_run=True) if len(het) else het
            st = stat(rows, "mean_js", level, MINIBATCHES) if len(rows) else None
            if st is not None:
                labels.append(s["label"])
                points.append(st)
                found["heterogeneity"].append(st)
        for i, (label, st) in enumerate(zip(labels, points)):
            errorbar(ax_het, [st], [float(i)], color=colors[label], ms=4)
        ax_het.set_yticks(range(len(labels)), labels)
        ax_het.set_ylim(-0.6, len(labels) - 0.4)
        ax_het.invert_yaxis()
        ax_het.set_xlabel("Mean JS distance")
        ax_het.set_title("Heterogeneity")
        if not data:
            ax_nep.text(0.5, 0.5, "no data", transform=ax_nep.transAxes, ha="center", va="center", color="0.5")
        handles = [Line2D([], [], color=colors[k], label=k) for k in data]
        handles += [Line2D([], [], ls="none", marker="o", ms=3.5, color="0.3", label="MSA block"),
                    Line2D([], [], ls="none", marker="o", ms=3.5, color="0.3", mfc="white", mew=0.9,
                               label="other block")]
        if shaded:
            handles.append(Patch(color=BAND_COLOR, label=f"MSA blocks ({shaded})"))
        fig.legend(handles=handles, loc="outside upper center", ncol=len(handles))
        ax_nep.set_title(epoch_title("Per-block NEP", epochs))
        ax_lam.set_title("Per-block λ_max")
        finish(fig, level, found, [s["label"] for s in series if s["label"] not in data], out)
    return fig
