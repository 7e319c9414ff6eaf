"""A Hessian job split into shards gives the table of one job, through the CLI.

A tiny ViT is trained one epoch by `vitprobe train` on synthetic data (240 images, so
`n_batches: all` with batches of 16 is 15 mini-batches). The same checkpoint's Hessian job
runs once unsplit and as 3 shard jobs (`--shard I/3`) merged by `vitprobe merge`.
Truth: the unsplit job's tables. The mini-batches must be the very same images and
augmentation in both (the trace, whose Rademacher vectors are seeded by the batch index,
agrees to rounding); the eigenvalues agree to the solver's tolerance (a shard's first group
starts cold where the unsplit job continues warm), every other column exactly.
"""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_vit_config, train_tiny_run

from vitprobe.cli import main
from vitprobe.config.load import validate
from vitprobe.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")

EPOCH = 1
HESSIAN = {"n_batches": "all", "batch_size": 16, "k": 3, "trace_samples": 3, "method": "block", "batches_at_once": 2,
           "tol": 1e-3, "epochs": [EPOCH]}
TABLES = ("hessian", "hessian_summary")


def _config(tmp, **hessian):
    return tiny_vit_config(tmp, {"hessian": {**HESSIAN, **hessian}}, epochs=EPOCH)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hessian_shards")
    return train_tiny_run(_config(tmp, shards=3), tmp)


def _outs(prefix):
    return [a for t in TABLES for a in ("--out", f"{t}={prefix}{t}.parquet")]


def test_sharded_equals_unsharded(trained, tmp_path):
    plan, run, ckpt = trained
    spec = plan.probe_spec(run, "hessian")
    assert spec["probe"]["shards"] == 3
    one = {**spec, "probe": {**spec["probe"], "shards": 1}}
    assert main(["hessian", "--spec", json.dumps(one), "--device", "cpu", "--checkpoint", str(ckpt),
                 *_outs(tmp_path / "one_")]) == 0
    for i in range(3):
        assert main(["hessian", "--spec", json.dumps(spec), "--device", "cpu", "--checkpoint", str(ckpt),
                     "--shard", f"{i}/3", *_outs(tmp_path / f"s{i}_")]) == 0
    shard_args = [a for i in range(3) for t in TABLES for a in ("--shard", f"{t}={tmp_path}/s{i}_{t}.parquet")]
    assert main(["merge", "--probe", "hessian", "--spec", json.dumps(spec), *shard_args,
                 *_outs(tmp_path / "merged_")]) == 0

    # each shard holds its own disjoint range of the 15 mini-batches
    ranges = [sorted(pd.read_parquet(tmp_path / f"s{i}_hessian.parquet")["batch"].unique()) for i in range(3)]
    assert ranges == [list(range(0, 5)), list(range(5, 10)), list(range(10, 15))]

    one_eig = pd.read_parquet(tmp_path / "one_hessian.parquet")
    merged = pd.read_parquet(tmp_path / "merged_hessian.parquet")
    assert list(merged.columns) == list(one_eig.columns) and len(merged) == 15 * 3
    same = [c for c in one_eig.columns if c not in ("eigenvalue", "n_hvp")]
    pd.testing.assert_frame_equal(merged[same], one_eig[same])
    np.testing.assert_allclose(merged["eigenvalue"], one_eig["eigenvalue"], rtol=1e-3)

    one_sum = pd.read_parquet(tmp_path / "one_hessian_summary.parquet").iloc[0]
    merged_sum = pd.read_parquet(tmp_path / "merged_hessian_summary.parquet").iloc[0]
    for col in ("n_batches", "n_eigenvalues", "trace_samples", "n_params", "batch_size", "method", "epoch",
                "config_hash", "model"):
        assert merged_sum[col] == one_sum[col], col
    assert merged_sum["n_batches"] == 15
    for col in ("trace", "trace_nll", "trace_std_error"):  # same batches, same vectors: pooled exactly
        assert merged_sum[col] == pytest.approx(one_sum[col], rel=1e-9), col
    for col in ("ape", "lambda_max"):
        assert merged_sum[col] == pytest.approx(one_sum[col], rel=1e-3), col
    assert merged_sum["nep"] == pytest.approx((merged["eigenvalue"] < 0).mean())


def test_bad_shards_rejected(trained, tmp_path, capsys):
    plan, run, ckpt = trained
    spec = json.dumps(plan.probe_spec(run, "hessian"))
    assert main(["hessian", "--spec", spec, "--device", "cpu", "--checkpoint", str(ckpt), "--shard", "3/3",
                 *_outs(tmp_path / "x_")]) == 2
    assert "I in 0..2" in capsys.readouterr().err
    assert main(["hessian", "--spec", spec, "--device", "cpu", "--checkpoint", str(ckpt), "--shard", "0/2",
                 *_outs(tmp_path / "x_")]) == 2
    assert "shards is 3" in capsys.readouterr().err
    one_shard = [a for t in TABLES for a in ("--shard", f"{t}={tmp_path}/missing_{t}.parquet")]
    assert main(["merge", "--probe", "hessian", "--spec", spec, *one_shard, *_outs(tmp_path / "x_")]) == 2
    assert "shards is 3" in capsys.readouterr().err
    assert not list(tmp_path.glob("x_*"))


@pytest.mark.parametrize("change, words", [
    (dict(shards=16), ["probes.hessian.shards", "16", "15 mini-batches", "allowed: 1..15"]),
    (dict(n_batches=4, shards=5), ["probes.hessian.shards", "5", "allowed: 1..4"]),
    (dict(batches_at_once=0), ["probes.hessian.batches_at_once", "0", "auto", "integer >= 1"]),
    (dict(method="arnoldi"), ["probes.hessian.method", "'arnoldi'", "'block'", "'lanczos'"]),
    (dict(hvp="reverse"), ["probes.hessian.hvp", "'double_backward'", "'forward_over_reverse'"]),
    (dict(n_batches="most"), ["probes.hessian.n_batches", "'most'", "all"]),
])
def test_bad_config_rejected_before_any_job(tmp_path, change, words):
    with pytest.raises(ConfigError) as exc:
        validate(_config(tmp_path, **change))
    message = str(exc.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)
