"""Error, NLL and calibration.

- error: top-1 error (%) on the clean test set.
- nll_test: mean negative log-likelihood on the clean test set.
- nll_train: mean NLL with soft targets on the *augmented* training set (the training
  augmentation, Mixup/CutMix and label smoothing included), model in eval mode, as the
  paper's NLL_train; nll_train_std_error its standard error over those images.
- ece: expected calibration error, 10 equal-width confidence bins:
  sum_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)|.

Table eval_images keeps each clean test image's label, correctness, NLL and confidence, so
that intervals over test images (Wilson, bootstrap) need no rerun: error = 100·(1 − mean
correct), nll_test = mean nll and ece = `calibration_error(confidence, correct)` of it.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from vitprobe import stats
from vitprobe.columns import Column, bounds
from vitprobe.probes import Probe

PROBE = Probe(
    "eval", "test error, NLL, ECE and NLL_train of a checkpoint",
    tables={
        "eval": [
            Column("error", pa.float64(), "%", "top-1 error on the clean test set: 100·(1 − mean of eval_images.correct)"),
            Column("nll_test", pa.float64(), "nats", "mean NLL on the clean test set (mean of eval_images.nll)"),
            Column("nll_train", pa.float64(), "nats", "mean NLL (soft targets) on the augmented training set, eval mode"),
            Column("nll_train_std_error", pa.float64(), "nats", "standard error of nll_train over the augmented training "
                   "images: sd (ddof 1) of their NLLs / √n_train (NaN without training images or below 2)"),
            Column("ece", pa.float64(), "", "expected calibration error on the test set, 10 equal-width bins "
                   "(from eval_images.confidence and .correct)"),
            Column("n_test", pa.int64(), "images", "test images evaluated"),
            Column("n_train", pa.int64(), "images", "augmented training images evaluated"),
        ],
        "eval_images": [
            Column("image", pa.int64(), "", "index of the image in the test split"),
            Column("label", pa.int64(), "", "its class label"),
            Column("correct", pa.bool_(), "", "argmax logit == label"),
            Column("nll", pa.float64(), "nats", "its cross-entropy, −log softmax(logits)[label]"),
            Column("confidence", pa.float64(), "", "its max softmax probability"),
        ],
    },
    reads=("train", "test"), rule="evaluate", exact=True,  # NLL and ECE are defined on float32 logits
    tiny={"batch_size": 64},
    intervals={"eval": ("eval_images", [
        *bounds("error", "Wilson score interval over the n_test test images", "%"),
        *bounds("nll_test", "expanded percentile bootstrap over the test images of eval_images", "nats"),
        *bounds("ece", "the same bootstrap over the test images (binning redone per resample)"),
        *bounds("nll_train", "normal interval, nll_train ± z·nll_train_std_error", "nats"),
    ])})
N_BINS = 10


def headline(df: pd.DataFrame, images: pd.DataFrame | None = None) -> str:
    row = df.iloc[0]
    return (f"error {row['error']:.2f} %, NLL test {row['nll_test']:.4f}, NLL train {row['nll_train']:.4f}, "
            f"ECE {row['ece']:.4f}")


def intervals(table: str, rows: pd.DataFrame, units: pd.DataFrame, ci) -> pd.DataFrame:
    """eval with its interval columns (`vitprobe.stats`): error by Wilson over n_test images,
    nll_test and ece by the bootstrap over the test images of eval_images, nll_train by
    ± z·nll_train_std_error."""
    err_low, err_high = stats.wilson_columns(rows, "error", "n_test", ci)
    nll_low, nll_high = stats.mean_intervals(rows, units, [], "nll", ci)
    ece_low, ece_high = stats.checkpoint_intervals(
        rows, units, lambda u, w: stats.ece_replicates(u["confidence"], u["correct"], w, N_BINS), ci, "ece")
    z, se = stats.z_value(ci.level), rows["nll_train_std_error"].to_numpy(float)
    return rows.assign(error_low=err_low, error_high=err_high, nll_test_low=nll_low, nll_test_high=nll_high,
                       ece_low=ece_low, ece_high=ece_high, nll_train_low=rows["nll_train"] - z * se,
                       nll_train_high=rows["nll_train"] + z * se)

