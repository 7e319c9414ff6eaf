"""The lesion study (paper Fig. 10b): the trained model with one unit removed at a time, its
test error and NLL against the intact model's, paired over the same test images.

A *unit* is a residual branch, as the paper removes them: in a transformer block its MSA and
its MLP sub-block each (ViT, PiT, Swin; a Mixer's token and channel MLPs), in a ResNet or
AlterNet each residual block, an AlterNet MSA block included. Removing a unit sets its
branch's output to zero, so that the block passes on its shortcut (x + 0 in a transformer and
a pre-activation block; act(shortcut) in a ResNet block, after the block's final activation).
A block whose shortcut subsamples (the first block of a ResNet stage: a strided projection)
keeps that projection: only the residual branch goes, so the shape is kept; it is marked
``subsampling``. Pooling and patch-merging layers (PiT, Swin) have no shortcut and cannot be
removed: they get no row, but their position starts a stage. The units are found from the
feature maps of `vitprobe.analysis.featuremaps` (one unit per map of kind conv, msa, mlp,
mixer_token or mixer_channel), with their depth and stage (`vitprobe.probes.cka.stages`).

Table ``lesion``: per unit, error (%) and NLL of the lesioned model, the intact model's, and
the change (lesioned − intact: a positive ``delta_error`` is accuracy lost). Table
``lesion_images``: per unit and test image, correct and NLL with and without the unit, from
which the changes' intervals are the paired bootstrap over the images.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from vitprobe import stats
from vitprobe.columns import Column, bounds
from vitprobe.errors import ConfigError
from vitprobe.probes import Probe

PROBE = Probe(
    "lesion", "test error and NLL with one residual unit removed at a time (Fig. 10b)",
    tables={
        "lesion": [
            Column("unit", pa.int64(), "", "unit position in forward order (0 = the first removable unit)"),
            Column("unit_name", pa.string(), "", "the feature map after the unit (its block, with .msa/.mlp for a "
                   "transformer's sub-blocks)"),
            Column("removed", pa.string(), "", "the module whose output was set to zero (the branch's last layer)"),
            Column("kind", pa.string(), "", "conv, msa, mlp, mixer_token or mixer_channel"),
            Column("subsampling", pa.bool_(), "", "the unit's block subsamples (its shortcut is a strided projection, "
                   "kept) or is the first after a pooling layer"),
            Column("depth", pa.float64(), "", "normalized depth of the unit's feature map, in [0, 1]"),
            Column("stage", pa.int64(), "", "stage of the unit's feature map (cka_maps.stage: a new stage where the "
                   "side changes)"),
            Column("error", pa.float64(), "%", "test error of the model without the unit"),
            Column("nll", pa.float64(), "nats", "test NLL of the model without the unit"),
            Column("intact_error", pa.float64(), "%", "test error of the intact model on the same images"),
            Column("intact_nll", pa.float64(), "nats", "test NLL of the intact model on the same images"),
            Column("delta_error", pa.float64(), "pp", "error − intact_error: accuracy lost by removing the unit"),
            Column("delta_nll", pa.float64(), "nats", "nll − intact_nll"),
            Column("n_images", pa.int64(), "images", "test images"),
        ],
        "lesion_images": [
            Column("unit", pa.int64(), "", "unit (lesion.unit)"),
            Column("image", pa.int64(), "", "position of the image in the probe's sample (a seeded permutation of "
                   "the test split)"),
            Column("correct", pa.bool_(), "", "top-1 correct without the unit"),
            Column("nll", pa.float64(), "nats", "NLL without the unit"),
            Column("intact_correct", pa.bool_(), "", "top-1 correct with every unit"),
            Column("intact_nll", pa.float64(), "nats", "NLL with every unit"),
        ],
    },
    reads=("test",), exact=True, tiny={"n_images": 32, "batch_size": 16},
    intervals={"lesion": ("lesion_images", [
        *bounds("delta_error", "expanded percentile bootstrap over the test images of the paired differences (one "
                "resample for all of the checkpoint's units)"),
        *bounds("delta_nll", "the same bootstrap"),
    ])})


def check(settings: dict, config: dict) -> None:
    """Before any job: a batch size no larger than the images."""
    if settings["batch_size"] > settings["n_images"]:
        raise ConfigError(f"probes.lesion.batch_size: {settings['batch_size']} exceeds probes.lesion.n_images "
                          f"({settings['n_images']}); allowed: batch_size <= n_images")


def summarize(images: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """Table lesion from table lesion_images and the units' description (unit, unit_name,
    removed, kind, subsampling, depth, stage): the means per unit."""
    g = images.groupby("unit", sort=True)
    means = pd.DataFrame({
        "error": 100.0 * (1.0 - g["correct"].mean()), "nll": g["nll"].mean(),
        "intact_error": 100.0 * (1.0 - g["intact_correct"].mean()), "intact_nll": g["intact_nll"].mean(),
        "n_images": g.size()}).reset_index()
    out = units.merge(means, on="unit", how="left")
    return out.assign(delta_error=out["error"] - out["intact_error"], delta_nll=out["nll"] - out["intact_nll"])[
        [c.name for c in PROBE.tables["lesion"]]]


def headline(lesion: pd.DataFrame, images: pd.DataFrame | None = None) -> str:
    top = lesion.loc[lesion["delta_error"].idxmax()]
    return (f"{len(lesion)} units; intact error {lesion['intact_error'].iloc[0]:.2f} %; removing one costs "
            f"{lesion['delta_error'].min():+.2f} to {lesion['delta_error'].max():+.2f} pp (most: {top['unit_name']})")


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """lesion with its interval columns: the paired bootstrap over images of each unit's
    change in error (pp) and NLL."""
    diffs = None if units is None else units.assign(
        d_error=100.0 * (units["intact_correct"].astype(float) - units["correct"].astype(float)),
        d_nll=units["nll"] - units["intact_nll"])
    e_low, e_high = stats.mean_intervals(rows, diffs, ["unit"], "d_error", ci)
    n_low, n_high = stats.mean_intervals(rows, diffs, ["unit"], "d_nll", ci)
    return rows.assign(delta_error_low=e_low, delta_error_high=e_high, delta_nll_low=n_low, delta_nll_high=n_high)
