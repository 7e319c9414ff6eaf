"""The paper's numbers (`numbers.csv`, read off the figures of "How Do Vision Transformers
Work?", December 2021 version, about ±0.1 in each axis's unit), each with the figure it comes
from, as `numbers()`: the targets a full reproduction's runs are compared with in the
scorecard (`vitprobe.report.scorecard`). Columns: figure, dataset, paper_model (the paper's name),
arch (vitprobe's architecture for it), fraction, kernel_size (0: not local attention),
epochs (the paper's training epochs after warmup), metric (error %, nll_train, accuracy %,
corrupted_accuracy %: mean over CIFAR-C's 15 corruptions x 5 severities), value."""

from __future__ import annotations

import functools
from importlib import resources

import pandas as pd


@functools.cache
def _numbers() -> pd.DataFrame:
    with resources.files(__name__).joinpath("numbers.csv").open() as f:
        return pd.read_csv(f, comment="#")


def numbers() -> pd.DataFrame:
    return _numbers().copy()
