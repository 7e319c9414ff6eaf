"""Parquet tables: schema enforced on write and read; aggregation names a bad file."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vitprobe import results

RUN = {"dataset": "synthetic", "model": "vit_demo", "kernel_size": 0, "fraction": 0.5, "seed": 1}


def _hessian_rows(values):
    return pd.DataFrame({"batch": [0] * len(values), "rank": range(1, len(values) + 1), "eigenvalue": values,
                         "batch_size": 16, "method": "lanczos", "n_hvp": 30})


def test_write_adds_grid_and_provenance_columns(tmp_path):
    path = tmp_path / "h.parquet"
    results.write_run_table(_hessian_rows([3.0, -2.0]), "hessian", path, run=RUN, epoch=5, config_hash="abc")
    df = pd.read_parquet(path)
    assert list(df.columns) == results.schema("hessian").names
    assert df["epoch"].tolist() == [5, 5] and df["fraction"].tolist() == [0.5, 0.5]
    assert df["config_hash"].tolist() == ["abc", "abc"]
    assert pq.read_schema(path).field("eigenvalue").type == pa.float64()


def test_write_refuses_missing_columns(tmp_path):
    with pytest.raises(ValueError, match="lack columns.*n_hvp"):
        results.write_run_table(_hessian_rows([1.0]).drop(columns="n_hvp"), "hessian", tmp_path / "x.parquet",
                                run=RUN, epoch=0, config_hash="abc")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_aggregate_concatenates_and_names_a_bad_file(tmp_path):
    a, b, bad = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "bad.parquet"
    results.write_run_table(_hessian_rows([3.0, -2.0]), "hessian", a, run=RUN, epoch=0, config_hash="h")
    results.write_run_table(_hessian_rows([1.0]), "hessian", b, run={**RUN, "seed": 2}, epoch=5, config_hash="h")
    df = results.aggregate([a, b], "hessian")
    assert len(df) == 3 and sorted(df["seed"].unique()) == [1, 2]
    pq.write_table(pa.table({"eigenvalue": [1.0]}), bad)
    with pytest.raises(ValueError, match="bad.parquet: schema does not match table 'hessian'"):
        results.aggregate([a, bad], "hessian")
    (tmp_path / "junk.parquet").write_bytes(b"nope")
    with pytest.raises(ValueError, match="junk.parquet: not a readable Parquet file"):
        results.aggregate([tmp_path / "junk.parquet"], "hessian")


def test_unknown_table():
    with pytest.raises(ValueError, match="unknown table 'nope'; allowed: train_log, eval, hessian"):
        results.schema("nope")
