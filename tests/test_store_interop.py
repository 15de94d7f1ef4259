"""A table folder reads as a plain Parquet dataset in standard tools (pyarrow.dataset, polars, DuckDB),
without options, and tables written under the old manifest name (manifest.json) stay readable."""

import numpy as np
import pyarrow.dataset as ds
import pytest
from embridge.store import (
    LEGACY_MANIFEST,
    MANIFEST,
    TableWriter,
    load_tables,
    read_manifest,
    read_table,
)
from embridge.store.validate import validate_table


def _write(path, n=700, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    ids = [f"r{i:04d}" for i in range(n)]
    split = np.where(np.arange(n) % 5 == 0, "test", "train")
    labels = np.arange(n) % 3
    with TableWriter(path, "image", d, rows_per_shard=256, row_group_rows=64) as w:
        w.write(ids, split, X, label=labels)
    return ids, X


def test_manifest_name_is_ignored_by_arrow_discovery(tmp_path):
    _write(tmp_path / "image")
    names = sorted(p.name for p in (tmp_path / "image").iterdir())
    assert names == [MANIFEST, "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert MANIFEST[0] in "._"  # pyarrow's default ignore_prefixes, and Spark/Hadoop's hidden-file rule


def test_pyarrow_dataset_reads_the_folder(tmp_path):
    ids, X = _write(tmp_path / "image")
    t = ds.dataset(tmp_path / "image", format="parquet").to_table()
    assert t.num_rows == len(ids)
    order = np.argsort(t.column("id").to_pylist())
    assert t.column("id").to_pylist() and sorted(t.column("id").to_pylist()) == ids
    emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False))[order]
    np.testing.assert_array_equal(emb, X)
    # without options, as the issue asks: `pyarrow.dataset.dataset("features/image")`
    assert ds.dataset(str(tmp_path / "image")).count_rows() == len(ids)


def test_polars_reads_the_folder(tmp_path):
    pl = pytest.importorskip("polars")
    ids, X = _write(tmp_path / "image")
    # polars reads a folder only when every file in it is Parquet, so the shards are named by a glob
    df = pl.read_parquet(tmp_path / "image" / "*.parquet")
    assert df.height == len(ids) and df["id"].to_list() == ids  # shards in order
    np.testing.assert_array_equal(np.asarray(df["embedding"].to_list(), dtype=np.float32), X)
    lazy = pl.scan_parquet(tmp_path / "image" / "*.parquet").filter(pl.col("split") == "test")
    assert lazy.select(pl.len()).collect().item() == sum(i % 5 == 0 for i in range(len(ids)))
    # or through Arrow's dataset, the folder itself
    assert pl.scan_pyarrow_dataset(ds.dataset(tmp_path / "image")).select(pl.len()).collect().item() == len(ids)


def test_duckdb_reads_the_folder(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    ids, _ = _write(tmp_path / "image")
    n = duckdb.sql(f"select count(*) from read_parquet('{tmp_path / 'image'}/*.parquet')").fetchone()[0]
    assert n == len(ids)


def test_old_manifest_name_still_reads(tmp_path):
    ids, X = _write(tmp_path / "image")
    (tmp_path / "image" / MANIFEST).rename(tmp_path / "image" / LEGACY_MANIFEST)  # a table from before the rename
    assert read_manifest(tmp_path / "image").num_rows == len(ids)
    np.testing.assert_array_equal(read_table(tmp_path / "image").X, X)
    assert list(load_tables(tmp_path)) == ["image"]
    validate_table(tmp_path / "image")
    # rewriting an old table leaves one manifest, under the new name
    _write(tmp_path / "image", seed=1)
    assert (tmp_path / "image" / MANIFEST).is_file() and not (tmp_path / "image" / LEGACY_MANIFEST).exists()
