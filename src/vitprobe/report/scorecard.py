"""The reproduction scorecard of a results folder: every claim of `vitprobe.claims` with its
effect, interval and verdict (`<results>/scorecard.parquet`), every evaluated run group's
test error, NLL_train (and CIFAR-C accuracy) with intervals next to the paper's value where
the run is of the paper's grid (`<results>/scorecard_runs.parquet`), and both as Markdown
(`<figures>/scorecard.md`, the report's first page, the README's demo section).

A run group is a (model, kernel size, fraction) at its last evaluated epoch, over its seeds:
one seed gives the run's own interval (Wilson over the test images for error and accuracy;
± z·standard error over the augmented training images for NLL_train; the bootstrap over
images for CIFAR-C accuracy); two or more give the mean, the standard deviation and the
t-interval over seeds. A run is of the paper's grid when its architecture is the paper's
model at default kwargs, on the paper's data set, fraction and kernel size
(`vitprobe.paper.numbers`); `paper_inside` says whether the paper's value lies in our
interval.
"""

from __future__ import annotations

import html as h
import re

import numpy as np
import pandas as pd

from vitprobe import claims, paper, stats
from vitprobe.config import load

RUN_COLUMN_DOCS = {
    "model": "model name as in the config", "arch": "its architecture", "kernel_size": "local-attention window",
    "fraction": "share of the training set", "epoch": "the last evaluated epoch", "n_seeds": "seeds of the group",
    "metric": "error (%), accuracy (%, where the paper gives it), nll_train, corrupted_accuracy (%)",
    "value": "ours: the run's, or the mean over seeds", "low": "lower end of our interval",
    "high": "upper end of our interval", "sd": "standard deviation over seeds (NaN for one seed)",
    "method": "how the interval was computed (one seed: the run's own; several: the t-interval over seeds)",
    "paper_figure": "the paper's figure of the matching number ('' if the run is not of the paper's grid)",
    "paper_model": "the paper's name for the model", "paper_value": "the paper's number",
    "difference": "value − paper_value", "paper_inside": "the paper's number lies in our interval",
    "level": "the intervals' level",
}
RUN_COLUMNS = list(RUN_COLUMN_DOCS)
METRICS = {"error": "test error (%)", "nll_train": "NLL_train", "accuracy": "test accuracy (%)",
           "corrupted_accuracy": "CIFAR-C mean accuracy (%)"}


def _over_seeds(values, lows, highs, ci, single: str) -> tuple[float, float, float, float, str]:
    """(mean, low, high, sd, how) by `stats.over_seeds`, the figures' rule too."""
    mean, sd, low, high, n = stats.over_seeds(values, lows, highs, ci.level)
    how = single if n == 1 else f"t-interval over {n} seeds" if n else "no seed has a value"
    return mean, low, high, sd, how


def _run_metrics(ev: pd.DataFrame, corr: pd.DataFrame | None, ci) -> list[dict]:
    """Per run group at its last evaluated epoch: error, accuracy, nll_train (and CIFAR-C accuracy)."""
    out = []
    keys = ["model", "kernel_size", "fraction"]
    for (model, k, f), g in ev.groupby(keys, sort=True):
        g = g[g["epoch"] == g["epoch"].max()].sort_values("seed")
        epoch = int(g["epoch"].iloc[0])
        base = {"model": model, "kernel_size": int(k), "fraction": float(f), "epoch": epoch, "n_seeds": len(g)}
        n = int(g["n_test"].iloc[0])
        err = _over_seeds(g["error"], g["error_low"], g["error_high"], ci, f"Wilson over {n} test images")
        out.append({**base, "metric": "error", **dict(zip(("value", "low", "high", "sd", "method"), err))})
        out.append({**base, "metric": "accuracy", "value": 100 - err[0], "low": 100 - err[2], "high": 100 - err[1],
                    "sd": err[3], "method": err[4]})
        ntr = int(g["n_train"].iloc[0])
        nll = _over_seeds(g["nll_train"], g["nll_train_low"], g["nll_train_high"], ci,
                          f"± z·standard error over {ntr} augmented training images")
        out.append({**base, "metric": "nll_train", **dict(zip(("value", "low", "high", "sd", "method"), nll))})
        if corr is not None and not corr.empty:
            rows = corr[(corr["model"] == model) & (corr["kernel_size"] == k) & ((corr["fraction"] - f).abs() < 1e-9)]
            if not rows.empty:
                from vitprobe.data.cifar_c import CORRUPTIONS  # torchvision: only when CIFAR-C was probed
                rows = rows[(rows["epoch"] == rows["epoch"].max()) & rows["corruption"].isin(CORRUPTIONS)]
                per_seed = [(100 * s.groupby("image")["correct"].mean()).to_numpy() for _, s in rows.groupby("seed")]
                vals = [v.mean() for v in per_seed]
                ints = [stats.bootstrap_mean(v, ci.level, ci.resamples, ci.seed) for v in per_seed]
                acc = _over_seeds(vals, [i[0] for i in ints], [i[1] for i in ints], ci,
                                  f"bootstrap over {len(per_seed[0])} test images")
                out.append({**base, "epoch": int(rows["epoch"].iloc[0]), "metric": "corrupted_accuracy",
                            **dict(zip(("value", "low", "high", "sd", "method"), acc))})
    return out


def runs_vs_paper(tables: dict[str, pd.DataFrame], spec: dict, ci: stats.Intervals) -> pd.DataFrame:
    """Scorecard rows per run group and metric (RUN_COLUMNS), the paper's value beside those
    of the paper's grid. `tables`: the aggregated eval table (with its intervals) and, if
    configured, corruption_images; `ci`: how intervals are computed."""
    ev = tables.get("eval")
    if ev is None or ev.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    rows = _run_metrics(ev, tables.get("corruption_images"), ci)
    numbers = paper.numbers()
    numbers = numbers[numbers["dataset"] == spec["dataset"]]
    out = []
    for r in rows:
        model = spec["models"].get(r["model"], {"arch": r["model"], "kwargs": {}})
        r = {**r, "arch": model["arch"], "level": ci.level}
        match = numbers[(numbers["arch"] == model["arch"]) & (numbers["metric"] == r["metric"]) &
                        ((numbers["fraction"] - r["fraction"]).abs() < 1e-9) &
                        (numbers["kernel_size"] == r["kernel_size"])] if not model.get("kwargs") else numbers[:0]
        if match.empty:
            if r["metric"] != "accuracy":  # accuracy is error's complement: shown only where the paper gives it
                out.append(r)
            continue
        for _, p in match.iterrows():
            out.append({**r, "paper_figure": p["figure"], "paper_model": p["paper_model"], "paper_value": p["value"],
                        "difference": r["value"] - p["value"],
                        "paper_inside": bool(r["low"] <= p["value"] <= r["high"])})
    df = pd.DataFrame(out)
    for col in RUN_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan if col not in ("paper_figure", "paper_model") else ""
    df["paper_figure"] = df["paper_figure"].fillna("")
    df["paper_model"] = df["paper_model"].fillna("")
    return df[RUN_COLUMNS]


# ---- Markdown -------------------------------------------------------------------------
def _num(v, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    text = f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return text + (f" {unit}" if unit in ("%",) else "")


def counts(claim_rows: pd.DataFrame) -> str:
    """'3 show, 5 lean, 1 leans against, 0 contradict, 5 n/a (of 14 claims)'."""
    c = claim_rows["verdict"].value_counts()
    return (f"{c.get('shows', 0)} show, {c.get('leans', 0)} lean, {c.get('leans against', 0)} lean against, "
            f"{c.get('contradicts', 0)} contradict, {c.get('n/a', 0)} n/a (of {len(claim_rows)} claims)")


def markdown(claim_rows: pd.DataFrame, run_rows: pd.DataFrame, results: str = "results") -> str:
    level = f"{100 * claim_rows['level'].iloc[0]:g} %" if len(claim_rows) else "95 %"
    lines = [f"The paper's claims on these runs: {counts(claim_rows)}. An effect is positive in the paper's "
             f"direction; *shows* means its {level} interval excludes 0, *leans* that the point estimate is in the "
             f"paper's direction but the interval includes 0 (`{results}/scorecard.parquet`).", "",
             "| claim | paper | verdict | effect [interval] | numbers | runs |", "|---|---|---|---|---|---|"]
    for _, r in claim_rows.iterrows():
        if r["verdict"] == "n/a":
            effect, numbers = "–", r["missing"]
        else:
            interval = "" if np.isnan(r["low"]) else f" [{_num(r['low'])}, {_num(r['high'])}]"
            effect = f"{_num(r['value'])}{interval} {r['unit']}"
            numbers = f"{r['numbers']}; {r['method']}"
        lines.append(f"| {r['says']} | {r['figure']} | **{r['verdict']}** | {effect} | {numbers} | {r['runs']} |")
    shown = run_rows[run_rows["metric"].isin(["error", "nll_train", "corrupted_accuracy"]) |
                     (run_rows["paper_figure"] != "")]
    if len(shown):
        lines += ["", f"Runs at their last evaluated epoch (`{results}/scorecard_runs.parquet`), with the paper's "
                  "value where the run is of the paper's grid (its architecture at default settings, data set, "
                  "fraction and kernel size):", "",
                  "| run | epoch | seeds | metric | ours [interval] | paper | difference | paper inside |",
                  "|---|---|---|---|---|---|---|---|"]
        for _, r in shown.iterrows():
            run = r["model"] + (f" (k={r['kernel_size']})" if r["kernel_size"] else "") + \
                (f" on 1/{round(1 / r['fraction'])} of the data" if r["fraction"] < 1 else "")
            ours = f"{_num(r['value'])} [{_num(r['low'])}, {_num(r['high'])}]"
            paper_value = f"{_num(r['paper_value'])} ({r['paper_figure']}, {r['paper_model']})" if r["paper_figure"] \
                else "–"
            inside = "–" if not r["paper_figure"] else ("yes" if r["paper_inside"] else "no")
            lines.append(f"| {run} | {r['epoch']} | {r['n_seeds']} | {METRICS[r['metric']]} | {ours} | {paper_value} "
                         f"| {_num(r['difference'])} | {inside} |")
    return "\n".join(lines)


def read(path) -> pd.DataFrame:
    """An aggregated table, for `build`."""
    return pd.read_parquet(path)


def build(tables: dict[str, pd.DataFrame], spec: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(claim rows, run rows) of the scorecard from the aggregated tables, at the spec's
    `intervals` (the schema's defaults where it lacks them)."""
    ci = load.intervals(spec)
    return claims.score(tables, spec, ci), runs_vs_paper(tables, spec, ci)


def html(md: str) -> str:
    """The Markdown page as a standalone HTML page (the report's Scorecard entry): its
    paragraphs and pipe tables, nothing else of Markdown."""
    def inline(text: str) -> str:
        text = h.escape(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
        text = re.sub(r"\*(.+?)\*", r"<i>\1</i>", text)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", text)

    out, table = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        if table:
            head, *body = [r for r in table if not all(set(c) <= set("-") for c in r)]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>" +
                       "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body) +
                       "</table>")
            table = []
        if line.strip():
            out.append(f"<p>{inline(line)}</p>")
    style = ("body{font-family:sans-serif;font-size:14px;margin:1.5em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}th{background:#eee}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>vitprobe scorecard</title><style>{style}"
            f"</style></head><body><h1>Scorecard</h1>{''.join(out)}</body></html>\n")
