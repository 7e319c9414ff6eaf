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
    last = int(pd.read_parquet(results / "eval.parquet")["epoch"].max())
    lines = [paper_effects(results), "", f"Test error after {last} epochs "
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


# The paper's qualitative claims, checked on the demo's runs (the model names of
# profiles/demo/demo.yaml). Each: what the paper says, where, and a test on the tables that
# returns (holds, the numbers).
DEMO = {"cnn": "resnet_demo", "vit": "vit_demo", "lmsa": "lmsa_demo", "preact": "preact_demo",
        "alternet": "alternet_demo"}


def _value(df: pd.DataFrame, column: str, model: str, kernel: int = 0, fraction: float = 1.0, epoch=None) -> float:
    """Mean over seeds (and rows) of one run's column, at `epoch` (default: the latest)."""
    same = (df["model"] == DEMO[model]) & (df["kernel_size"] == kernel)
    rows = df[same & ((df["fraction"] - fraction).abs() < 1e-9)]
    if rows.empty:
        return float("nan")
    rows = rows[rows["epoch"] == (rows["epoch"].max() if epoch is None else epoch)]
    return float(rows[column].mean())


def _depth_change(maps: pd.DataFrame, model: str) -> float:
    """Change of the high-frequency Δ log amplitude from the first feature map to the last
    (of those that have one: maps of side <= 2 are NaN, see `vitprobe.probes.fourier`)."""
    rows = maps[maps["model"] == DEMO[model]]
    rows = rows[(rows["kernel_size"] == 0) & (rows["fraction"] == 1.0)]
    if rows.empty:
        return float("nan")
    rows = rows[rows["epoch"] == rows["epoch"].max()].groupby("map_index")["high_freq_delta"].mean().dropna()
    return float(rows.iloc[-1] - rows.iloc[0]) if len(rows) else float("nan")


def _claims(t: dict) -> list[tuple[str, str, bool, str]]:
    ev, hs, fo, ro = t["eval"], t["hessian_summary"], t["fourier"], t["robustness"]
    err = lambda m, k=0, f=1.0: _value(ev, "error", m, k, f)  # noqa: E731
    warmup = int(hs["epoch"][hs["epoch"] > 0].min()) if (hs["epoch"] > 0).any() else 0
    nep = lambda m, f=1.0, e=None: 100 * _value(hs, "nep", m, 0, f, e)  # noqa: E731
    high = ro[ro["freq"] >= 0.5]
    maps = fo.drop_duplicates(RUN_KEYS + ["seed", "epoch", "map_index"])  # high_freq_delta: one value per map
    out = []

    def claim(effect, paper, holds, numbers):
        out.append((effect, paper, bool(holds), numbers))

    claim("CNN beats ViT on small data sets", "Fig. 5", err("cnn") < err("vit"),
          f"test error ResNet {err('cnn'):.1f} %, ViT {err('vit'):.1f} %")
    claim("local MSA beats global MSA", "Fig. 7", err("lmsa", 3) < err("lmsa", 8),
          f"3×3 {err('lmsa', 3):.1f} %, 8×8 (global) {err('lmsa', 8):.1f} %")
    claim("global average pooling beats the class token", "Fig. 6", err("lmsa", 8) < err("vit"),
          f"GAP {err('lmsa', 8):.1f} %, class token {err('vit'):.1f} %")
    claim("less data hurts ViT", "Fig. 5b", err("vit", 0, 1 / 16) > err("vit"),
          f"ViT on 1/16 of the data {err('vit', 0, 1 / 16):.1f} %, on all {err('vit'):.1f} %")
    claim("AlterNet beats its pre-activation ResNet", "Fig. 12", err("alternet") < err("preact"),
          f"AlterNet {err('alternet'):.1f} %, pre-act ResNet {err('preact'):.1f} %")
    claim("ViT's Hessian has more negative eigenvalues than the CNN's at the end of warmup", "Fig. 1c, 4",
          nep("vit", e=warmup) > nep("cnn", e=warmup),
          f"NEP at epoch {warmup}: ViT {nep('vit', e=warmup):.0f} %, ResNet {nep('cnn', e=warmup):.0f} %")
    claim("less data gives ViT more negative eigenvalues", "Fig. 4", nep("vit", 1 / 16) > nep("vit"),
          f"NEP at the end: 1/16 of the data {nep('vit', 1 / 16):.0f} %, all {nep('vit'):.0f} %")
    rise = {m: _depth_change(maps, m) for m in ("cnn", "vit")}
    claim("MSAs reduce high-frequency signals, convs amplify them", "Fig. 2a, 8", rise["vit"] < 0 < rise["cnn"],
          f"Δ log amplitude at the highest frequency, last feature map minus first: ViT {rise['vit']:+.2f}, "
          f"ResNet {rise['cnn']:+.2f}")
    claim("ViT is more robust to high-frequency noise than the CNN", "Fig. 2b",
          _value(high, "delta_accuracy", "vit") > _value(high, "delta_accuracy", "cnn"),
          f"mean accuracy change under noise at frequencies ≥ 0.5π: ViT "
          f"{_value(high, 'delta_accuracy', 'vit'):+.1f} pp, ResNet {_value(high, 'delta_accuracy', 'cnn'):+.1f} pp "
          f"(one of the {int(ro['n_images'].max())} test images is {100 / ro['n_images'].max():.1f} pp)")
    return out


def paper_effects(results) -> str:
    """Markdown: each of the paper's qualitative claims, whether the demo's runs show it, with
    the numbers (a NaN, and "no", where a run it needs is missing)."""
    results = Path(results)
    tables = {}
    for name in ("eval", "hessian_summary", "fourier", "robustness"):
        if not (results / f"{name}.parquet").is_file():
            raise VitprobeError(f"{results}: no {name}.parquet; run the pipeline first (make demo)")
        tables[name] = pd.read_parquet(results / f"{name}.parquet")
    rows = _claims(tables)
    lines = [f"The paper's effects at this scale ({sum(r[2] for r in rows)} of {len(rows)} show):", "",
             "| effect | paper | shows | numbers |", "|---|---|---|---|"]
    lines += [f"| {effect} | {paper} | {'yes' if ok else 'no'} | {numbers} |" for effect, paper, ok, numbers in rows]
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
