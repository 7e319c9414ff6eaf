"""Mini-batch CKA between every pair of a model's feature maps (paper Fig. 10a; Nguyen, Raghu
and Kornblith 2021, "Do wide and deep networks learn the same things?").

The maps are those the Fourier and variance probes read (`vitprobe.analysis.featuremaps`: the
embedding or stem, then the residual stream after every sub-block), each flattened per image:
X_m, (n, C·H·W) on a mini-batch of n test images, centred over the mini-batch. With the
linear kernel K = X_a X_a', L = X_b X_b' and K~, L~ their diagonals set to zero, the unbiased
HSIC of Song et al. (2012) is

    HSIC_1(K, L) = [tr(K~ L~) + (1'K~1)(1'L~1) / ((n-1)(n-2)) - 2/(n-2) · 1'K~L~1] / (n(n-3))

(unchanged by the centring: it is a U-statistic of differences). Over the mini-batches
i = 1..B (the first B·n images of a seeded permutation of the test split, whole batches only)

    CKA(a, b) = mean_i HSIC_1(K_ai, K_bi) / sqrt(mean_i HSIC_1(K_ai, K_ai) · mean_i HSIC_1(K_bi, K_bi)),

so no feature is kept beyond one mini-batch. With one batch of all images it is the unbiased
linear CKA; as n grows it tends to Kornblith et al.'s (2019) linear CKA,
||X_b'X_a||_F² / (||X_a'X_a||_F ||X_b'X_b||_F) on centred features.

**Stages** (the blocks of Fig. 10a): map 0 is the stem or embedding, marked "E", stage 0;
the next map starts stage 1; a map whose spatial side differs from the previous map's starts
the next stage and is marked "P" (a pooling or patch-merging map, kind "pool", or the first
block of a ResNet stage, whose strided convolution subsamples). A network without
subsampling (ViT) is one stage.

Tables: ``cka_maps`` (one row per map: name, kind, depth, side, stage, marker), ``cka`` (one
row per pair a <= b: the CKA, the diagonal 1), ``cka_batches`` (one row per mini-batch and pair
a <= b: HSIC_1, from which the interval of every CKA is bootstrapped over the mini-batches).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from vitprobe import stats
from vitprobe.columns import Column, bounds
from vitprobe.errors import ConfigError
from vitprobe.probes import Probe

PROBE = Probe(
    "cka", "mini-batch CKA between every pair of feature maps (Fig. 10a)",
    tables={
        "cka_maps": [
            Column("map_index", pa.int64(), "", "feature map position in forward order (0 = embedding/stem)"),
            Column("map_name", pa.string(), "", "module path of the map"),
            Column("kind", pa.string(), "", "embed, stem, msa, mlp, conv, pool, mixer_token, mixer_channel, module"),
            Column("depth", pa.float64(), "", "normalized depth of the map, in [0, 1]"),
            Column("side", pa.int64(), "", "spatial side of the map (H)"),
            Column("stage", pa.int64(), "", "0 for the stem/embedding, then 1, 2, ...: a new stage where the side "
                   "changes"),
            Column("marker", pa.string(), "", "E (stem/embedding), P (the first map of a stage after the first: "
                   "pooling or subsampling), or empty"),
        ],
        "cka": [
            Column("map_a", pa.int64(), "", "first map (cka_maps.map_index)"),
            Column("map_b", pa.int64(), "", "second map, map_b >= map_a"),
            Column("cka", pa.float64(), "", "mini-batch CKA: mean HSIC_1(a, b) / sqrt(mean HSIC_1(a, a) · mean "
                   "HSIC_1(b, b)) over the mini-batches (NaN if a self-term is not positive)"),
            Column("n_batches", pa.int64(), "", "mini-batches"),
            Column("batch_size", pa.int64(), "images", "images per mini-batch"),
        ],
        "cka_batches": [
            Column("batch", pa.int64(), "", "mini-batch index"),
            Column("map_a", pa.int64(), "", "first map"),
            Column("map_b", pa.int64(), "", "second map, map_b >= map_a"),
            Column("hsic", pa.float64(), "", "unbiased HSIC_1 of the two maps' linear kernels on that mini-batch"),
        ],
    },
    reads=("test",), exact=True, tiny={"n_images": 24, "batch_size": 8},
    intervals={"cka": ("cka_batches", [
        *bounds("cka", "expanded percentile bootstrap over the mini-batches (one resample for all pairs of the "
                "checkpoint), the ratio recomputed per resample; NaN below 5 mini-batches"),
    ])})


def stages(kinds: list[str], sides: list[int]) -> tuple[list[int], list[str]]:
    """(stage, marker) of each map, in forward order (module docstring: E, then a new stage,
    marked P, wherever the spatial side changes)."""
    stage, out_stage, out_marker = 0, [], []
    for i, (kind, side) in enumerate(zip(kinds, sides)):
        if i == 0:
            out_stage.append(0)
            out_marker.append("E")
            continue
        new = i > 1 and side != sides[i - 1]
        stage = 1 if i == 1 else stage + new
        out_stage.append(stage)
        out_marker.append("P" if new or kind == "pool" else "")
    return out_stage, out_marker


def check(settings: dict, config: dict) -> None:
    """Before any job: at least one whole mini-batch."""
    if settings["n_images"] < settings["batch_size"]:
        raise ConfigError(f"probes.cka.n_images: {settings['n_images']} is less than probes.cka.batch_size "
                          f"({settings['batch_size']}), so no whole mini-batch; allowed: n_images >= batch_size")


def cka_from_hsic(hsic: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """CKA of each pair from mean HSIC_1 values: `hsic` (..., P) the means of every pair (a, b)
    of `pairs` (P, 2), the self-pairs (a, a) among them; NaN where a self-term is not positive."""
    self_at = {int(a): p for p, (a, b) in enumerate(pairs) if a == b}
    ia = np.array([self_at[int(a)] for a in pairs[:, 0]])
    ib = np.array([self_at[int(b)] for b in pairs[:, 1]])
    den = hsic[..., ia] * hsic[..., ib]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, hsic / np.sqrt(np.where(den > 0, den, 1.0)), np.nan)


#: Maps "far apart in depth" (Raghu et al. 2021's uniformity): normalized depths at least this far.
FAR_APART = 0.5


def pair_mean(batches: pd.DataFrame, maps: pd.DataFrame, select) -> tuple[callable, np.ndarray]:
    """(statistic, batch ids) of one checkpoint's cka_batches and cka_maps rows: statistic(w),
    for mini-batch weights w (resamples, batches), is the mean CKA over the pairs a < b that
    `select(a_rows, b_rows)` (the two maps' cka_maps rows, aligned) keeps, each CKA recomputed
    from the weighted mean HSIC; with w all ones, the mean of table cka's values."""
    wide = batches.pivot_table(index="batch", columns=["map_a", "map_b"], values="hsic", aggfunc="first")
    pairs = np.array(list(wide.columns), dtype=np.int64)
    info = maps.drop_duplicates("map_index").set_index("map_index")
    a, b = info.loc[pairs[:, 0]].reset_index(), info.loc[pairs[:, 1]].reset_index()
    keep = (pairs[:, 0] != pairs[:, 1]) & np.asarray(select(a, b), dtype=bool)
    if not keep.any():
        raise ValueError("no pair of feature maps is selected")
    H = wide.to_numpy()

    def statistic(w):
        w = np.atleast_2d(w)
        return cka_from_hsic(w @ H / w.sum(1, keepdims=True), pairs)[:, keep].mean(1)
    return statistic, wide.index.to_numpy()


def stage_contrast(batches: pd.DataFrame, maps: pd.DataFrame) -> tuple[callable, np.ndarray]:
    """(statistic, batch ids): mean CKA of the pairs of maps within one stage minus that of
    pairs in different stages, the stem's pairs left out (the block structure of Fig. 10a)."""
    inside, _ = pair_mean(batches, maps, lambda a, b: (a["stage"].to_numpy() > 0) & (a["stage"] == b["stage"]))
    across, ids = pair_mean(batches, maps, lambda a, b: (a["stage"].to_numpy() > 0) & (a["stage"] != b["stage"]))
    return (lambda w: inside(w) - across(w)), ids


def far_similarity(batches: pd.DataFrame, maps: pd.DataFrame) -> tuple[callable, np.ndarray]:
    """(statistic, batch ids): mean CKA of the pairs of maps at least FAR_APART apart in
    normalized depth (how uniform the representations are across depth; Raghu et al. 2021)."""
    return pair_mean(batches, maps, lambda a, b: (a["depth"] - b["depth"]).abs().to_numpy() >= FAR_APART - 1e-9)


def headline(maps: pd.DataFrame, cka: pd.DataFrame, batches: pd.DataFrame | None = None) -> str:
    """The job's result line: maps, stages, mean CKA within and across stages (the stem's
    pairs left out)."""
    stage = maps.set_index("map_index")["stage"]
    off = cka[(cka["map_a"] != cka["map_b"]) & (stage.reindex(cka["map_a"]).to_numpy() > 0)]
    same = stage.reindex(off["map_a"]).to_numpy() == stage.reindex(off["map_b"]).to_numpy()
    within = off["cka"][same].mean() if same.any() else float("nan")
    across = off["cka"][~same].mean() if (~same).any() else float("nan")
    return (f"{len(maps)} maps in {maps['stage'].max()} stage(s) after the stem; mean CKA within a stage "
            f"{within:.3f}, across stages {across:.3f}, over {int(cka['n_batches'].iloc[0])} mini-batches of "
            f"{int(cka['batch_size'].iloc[0])}")


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """cka with its interval columns: per checkpoint, the mini-batches resampled (one resample
    for all pairs), the mean HSIC_1 of every pair reweighted and the CKA recomputed."""
    low, high = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    groups = dict(tuple(units.groupby(["run", "epoch"], sort=False))) if units is not None and len(units) else {}
    for (run, epoch), idx in rows.groupby(["run", "epoch"], sort=False).groups.items():
        sub = groups.get((run, epoch))
        if sub is None:
            continue
        wide = sub.pivot_table(index="batch", columns=["map_a", "map_b"], values="hsic", aggfunc="first")
        n = len(wide)
        if n < stats.MIN_UNITS or wide.isna().any().any():
            continue
        pairs = np.array(list(wide.columns), dtype=np.int64)
        w = stats.weights(n, ci.resamples, ci.rng(run, epoch, "cka"))
        reps = cka_from_hsic(w @ wide.to_numpy() / n, pairs)  # (resamples, pairs)
        lo, hi = stats.percentile_columns(reps, n, ci.level)
        where = {(int(a), int(b)): p for p, (a, b) in enumerate(pairs)}
        for i in idx:
            p = where.get((int(rows.loc[i, "map_a"]), int(rows.loc[i, "map_b"])))
            if p is not None:
                low[rows.index.get_loc(i)], high[rows.index.get_loc(i)] = lo[p], hi[p]
    return rows.assign(cka_low=low, cka_high=high)
