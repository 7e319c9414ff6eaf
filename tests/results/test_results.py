"""Parquet tables: schema enforced on write and read; aggregation names a bad file."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vitprobe import results
from vitprobe.errors import VitprobeError

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
    assert df["run"].tolist() == ["synthetic-vit_demo-k0-f1of2-s1"] * 2  # the id of its results/runs/ folder
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


def _one_line_naming(err, path):
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_missing_columns_are_named_in_one_line(tmp_path):
    path = tmp_path / "h.parquet"
    results.write_run_table(_hessian_rows([3.0]), "hessian", path, run=RUN, epoch=0, config_hash="h")
    pq.write_table(pq.read_table(path).drop(["n_hvp", "seed"]), path)
    with pytest.raises(results.TableError) as err:
        results.read_run_table(path, "hessian")
    msg = _one_line_naming(err, path)
    assert "table 'hessian'" in msg and "missing columns: seed, n_hvp;" in msg
    assert isinstance(err.value, VitprobeError)


def test_wrong_type_and_unexpected_column_are_named(tmp_path):
    path = tmp_path / "h.parquet"
    results.write_run_table(_hessian_rows([3.0]), "hessian", path, run=RUN, epoch=0, config_hash="h")
    t = pq.read_table(path)
    t = t.set_column(t.schema.get_field_index("rank"), "rank", t["rank"].cast(pa.int32()))
    pq.write_table(t.append_column("extra", pa.array([1.0])), path)
    with pytest.raises(results.TableError) as err:
        results.read_run_table(path, "hessian")
    msg = _one_line_naming(err, path)
    assert "unexpected columns: extra;" in msg and "wrong types: rank is int32, not int64" in msg
    assert "missing" not in msg


def test_empty_table_file_says_killed_writer(tmp_path):
    path = tmp_path / "h.parquet"
    path.write_bytes(b"")
    with pytest.raises(results.TableError) as err:
        results.aggregate([path], "hessian")
    msg = _one_line_naming(err, path)
    assert "empty (0 bytes)" in msg and "killed writer" in msg and "delete it and rerun" in msg


def test_truncated_and_missing_table_files(tmp_path):
    good, cut = tmp_path / "good.parquet", tmp_path / "cut.parquet"
    results.write_run_table(_hessian_rows([3.0]), "hessian", good, run=RUN, epoch=0, config_hash="h")
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(results.TableError) as err:
        results.read_run_table(cut, "hessian")
    assert "not a readable Parquet file of table 'hessian'" in _one_line_naming(err, cut)
    with pytest.raises(results.TableError) as err:
        results.read_run_table(tmp_path / "gone.parquet", "hessian")
    assert "does not exist" in _one_line_naming(err, tmp_path / "gone.parquet")


def test_unknown_table():
    with pytest.raises(ValueError, match="unknown table 'nope'; allowed: train_log, hessian, hessian_summary, "
                                         "hessian_blocks"):
        results.schema("nope")


def test_tables_written_before_the_weights_column_read_as_trained(tmp_path):
    path = tmp_path / "h.parquet"
    results.write_run_table(_hessian_rows([3.0, -2.0]), "hessian", path, run=RUN, epoch=5, config_hash="abc")
    assert pd.read_parquet(path)["weights"].tolist() == ["trained", "trained"]
    pq.write_table(pq.read_table(path).drop(["weights"]), path)  # a file of the previous schema
    table = results.read_run_table(path, "hessian")
    assert table.schema.names == results.schema("hessian").names
    assert table.column("weights").to_pylist() == ["trained", "trained"]
    assert results.aggregate([path], "hessian")["eigenvalue"].tolist() == [3.0, -2.0]


def test_tables_written_before_the_run_column_get_it_from_the_grid_columns(tmp_path):
    path = tmp_path / "h.parquet"
    results.write_run_table(_hessian_rows([3.0]), "hessian", path, run=RUN, epoch=5, config_hash="abc")
    pq.write_table(pq.read_table(path).drop(["run", "weights"]), path)  # a file of two schemas ago
    table = results.read_run_table(path, "hessian")
    assert table.schema.names == results.schema("hessian").names
    assert table.column("run").to_pylist() == ["synthetic-vit_demo-k0-f1of2-s1"]
