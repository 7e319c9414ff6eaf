"""The eval probe: table eval_images (one row per clean test image) against logits computed
by hand (numpy), and table eval's error, nll_test and ece recomputed from it exactly;
nll_train's standard error against numpy's std of hand-computed per-image NLLs."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from torch import nn

from vitprobe.device import resolve
from vitprobe.probes.evaluate import PROBE, headline
from vitprobe.probes.evaluate import measure as evaluate
from vitprobe.probes.evaluate.measure import augmented_nll, calibration_error, clean_metrics, compute

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
K = 4


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, K))


def _data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8), torch.randint(0, K, (n,), generator=g)


def _normalized(images):
    m, s = np.asarray(MEAN)[None, :, None, None], np.asarray(STD)[None, :, None, None]
    return (images.numpy() / 255.0 - m) / s


def _logits(model, images) -> np.ndarray:
    """The model's logits in numpy (float64), from its (float32) weights."""
    w, b = (p.detach().double().numpy() for p in model[1].parameters())
    return _normalized(images).reshape(len(images), -1) @ w.T + b


def _log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _ece_by_hand(conf, correct, n_bins=10):
    total = 0.0
    for b in range(n_bins):
        inside = (conf > b / n_bins) & (conf <= (b + 1) / n_bins)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


class OneHot:
    """An 'augmentation' without randomness: normalised images, label-smoothed soft targets."""

    def __call__(self, x, y, generator=None):
        soft = nn.functional.one_hot(y, K).float() * 0.9 + 0.1 / K
        return torch.from_numpy(_normalized(x.cpu())).float(), soft


def test_eval_images_reproduce_the_eval_table():
    model = _model()
    images, labels = _data(30)
    ev, per = compute(model, images, labels, MEAN, STD, batch_size=7)
    assert list(ev.columns) == [c.name for c in PROBE.tables["eval"]]
    assert list(per.columns) == [c.name for c in PROBE.tables["eval_images"]]
    schema = pa.schema([(c.name, c.dtype) for c in PROBE.tables["eval_images"]])
    assert pa.Table.from_pandas(per, preserve_index=False).schema.equals(schema)  # the dtypes as declared
    assert len(per) == 30 and ev["n_test"].iloc[0] == 30
    np.testing.assert_array_equal(per["image"], np.arange(30))
    np.testing.assert_array_equal(per["label"], labels.numpy())
    # each image by hand
    z = _logits(model, images)
    logp = _log_softmax(z)
    np.testing.assert_array_equal(per["correct"], z.argmax(1) == labels.numpy())
    np.testing.assert_allclose(per["nll"], -logp[np.arange(30), labels.numpy()], rtol=1e-5)
    np.testing.assert_allclose(per["confidence"], np.exp(logp).max(1), rtol=1e-5)
    assert 0 < per["correct"].sum() < 30  # neither all right nor all wrong: the checks below are not vacuous
    # the eval table, exactly from the per-image one
    correct, nll, conf = (per[c].to_numpy() for c in ("correct", "nll", "confidence"))
    row = ev.iloc[0]
    assert row["error"] == 100.0 * (1.0 - np.mean(correct))
    assert row["nll_test"] == np.mean(nll)
    assert row["ece"] == calibration_error(conf, correct)
    assert row["ece"] == pytest.approx(_ece_by_hand(conf, correct.astype(float)), rel=1e-12, abs=1e-15)
    # the same after a Parquet round trip, as the aggregated tables are read
    back = pa.Table.from_pandas(per, schema=schema, preserve_index=False).to_pandas()
    assert calibration_error(back["confidence"], back["correct"]) == row["ece"]
    assert 100.0 * (1.0 - back["correct"].mean()) == row["error"]
    # without training images: NaN NLL_train and standard error
    assert np.isnan(row["nll_train"]) and np.isnan(row["nll_train_std_error"]) and row["n_train"] == 0
    assert "error " in headline(ev, per) and "ECE " in headline(ev, per)


def test_nll_train_std_error_against_numpy_on_a_tiny_case():
    model = _model()
    test_images, test_labels = _data(6, seed=1)
    train_images, train_labels = _data(5, seed=2)
    ev, _ = compute(model, test_images, test_labels, MEAN, STD, train=(train_images, train_labels), augment=OneHot(),
                    batch_size=2)
    cols = list(ev.columns)
    assert cols.index("nll_train_std_error") == cols.index("nll_train") + 1
    soft = np.eye(K)[train_labels.numpy()] * np.float32(0.9) + np.float32(0.1 / K)
    nlls = -(soft * _log_softmax(_logits(model, train_images))).sum(1)  # per image, by hand
    row = ev.iloc[0]
    assert row["n_train"] == 5
    assert row["nll_train"] == pytest.approx(nlls.mean(), rel=1e-5)
    assert row["nll_train_std_error"] == pytest.approx(np.std(nlls, ddof=1) / np.sqrt(5), rel=1e-5)
    assert row["nll_train_std_error"] > 0
    # augmented_nll gives the same pair; one image has no standard error
    cpu = resolve("cpu")
    mean, se = augmented_nll(model, train_images, train_labels, OneHot(), cpu, 2, with_std_error=True)
    assert (mean, se) == (row["nll_train"], row["nll_train_std_error"])
    assert augmented_nll(model, train_images, train_labels, OneHot(), cpu, 2) == mean
    one, se_one = augmented_nll(model, train_images[:1], train_labels[:1], OneHot(), cpu, with_std_error=True)
    assert one == pytest.approx(nlls[0], rel=1e-5) and np.isnan(se_one)


def test_clean_metrics_keeps_its_dict_and_gives_the_per_image_arrays_on_request():
    model = _model()
    images, labels = _data(12)
    cpu = resolve("cpu")
    row = clean_metrics(model, images, labels, MEAN, STD, cpu, 5)
    assert isinstance(row, dict) and set(row) == {"error", "nll_test", "ece", "n_test"}
    same, arrays = clean_metrics(model, images, labels, MEAN, STD, cpu, 5, per_image=True)
    assert same == row and set(arrays) == {"correct", "nll", "confidence"}
    assert row == evaluate.summary(arrays)
    assert all(len(a) == 12 for a in arrays.values())
    ev, per = compute(model, images, labels, MEAN, STD, batch_size=5)
    pd.testing.assert_series_equal(ev[["error", "nll_test", "ece"]].iloc[0],
                                   pd.Series({k: row[k] for k in ("error", "nll_test", "ece")}), check_names=False)
