"""Robustness to frequency-band noise.

Noise: delta = eps · sign(N(0, 1)) per pixel and channel; its 2-D spectrum is cut to a square
ring around frequency f — the frequencies whose Chebyshev radius max(|fy|, |fx|) (units of
pi) lies in [f - width, f + width] — and the real part of the inverse FFT is the noise. The
ring is symmetric under (ky, kx) -> (-ky, -kx), so the filtered noise is real up to rounding.

Accuracy: images in [0, 1] pixel units (uint8 / 255) plus the noise, clipped back to [0, 1]
(``clip=True``, default), then normalized with the dataset mean/std as for clean images.

Table robustness_images keeps, per frequency and image, whether the image is classified
correctly with and without the noise, so that intervals over images (Wilson, paired
bootstrap) need no rerun; table robustness holds their means (`summarize`).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from vitprobe import stats
from vitprobe.columns import Column, bounds
from vitprobe.probes import Probe

PROBE = Probe(
    "robustness", "accuracy under frequency-band noise",
    tables={
        "robustness": [
            Column("freq", pa.float64(), "π rad", "centre f of the noise's frequency band (Chebyshev radius in [f-w, f+w])"),
            Column("accuracy", pa.float64(), "%", "test accuracy with the band-limited noise added: 100 · mean of "
                   "robustness_images.correct at freq"),
            Column("clean_accuracy", pa.float64(), "%", "test accuracy without noise: 100 · mean of "
                   "robustness_images.clean_correct"),
            Column("delta_accuracy", pa.float64(), "pp", "accuracy - clean_accuracy"),
            Column("eps", pa.float64(), "", "noise amplitude before band filtering, in [0, 1] pixel units"),
            Column("width", pa.float64(), "π rad", "half width w of the frequency band"),
            Column("n_images", pa.int64(), "images", "test images evaluated"),
        ],
        "robustness_images": [
            Column("image", pa.int64(), "", "position of the image in the probe's sample (0..n_images-1): the same "
                   "position is the same test image in every run of one data set with the same n_images and seed"),
            Column("freq", pa.float64(), "π rad", "centre f of the noise's frequency band, as in table robustness"),
            Column("correct", pa.bool_(), "", "argmax logit == label under the noise at that frequency"),
            Column("clean_correct", pa.bool_(), "", "argmax logit == label for the same image without noise"),
        ],
    },
    reads=("test",), tiny={"n_images": 24, "batch_size": 16, "freqs": [0.3, 0.7]},
    intervals={"robustness": ("robustness_images", [
        *bounds("accuracy", "Wilson score interval over the n_images images", "%"),
        *bounds("clean_accuracy", "Wilson score interval over the n_images images", "%"),
        *bounds("delta_accuracy", "paired bootstrap over the images (each image clean and noisy; expanded "
                "percentile)", "pp"),
    ])})


def headline(df: pd.DataFrame, images: pd.DataFrame | None = None) -> str:
    worst = df.loc[df["delta_accuracy"].idxmin()]
    return (f"clean accuracy {worst['clean_accuracy']:.2f} %, worst delta {worst['delta_accuracy']:+.2f} pp "
            f"at frequency {worst['freq']:g}")


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """robustness with its interval columns (`vitprobe.stats`): accuracies by Wilson over
    the images, delta_accuracy by the paired bootstrap of correct − clean_correct per image."""
    acc_low, acc_high = stats.wilson_columns(rows, "accuracy", "n_images", ci)
    clean_low, clean_high = stats.wilson_columns(rows, "clean_accuracy", "n_images", ci)
    change = units.assign(change=100.0 * (units["correct"].astype(float) - units["clean_correct"].astype(float)))
    d_low, d_high = stats.mean_intervals(rows, change, ["freq"], "change", ci)
    return rows.assign(accuracy_low=acc_low, accuracy_high=acc_high, clean_accuracy_low=clean_low,
                       clean_accuracy_high=clean_high, delta_accuracy_low=d_low, delta_accuracy_high=d_high)

