"""A table folder reads as a plain Parquet dataset in standard tools without options: pyarrow.dataset
and polars on the folder itself, DuckDB on its `*.parquet` glob; the manifest (`_manifest.parquet`,
zero rows of the shards' schema) adds no rows. Tables written with the older JSON manifests
(`_manifest.json`, `manifest.json`) stay readable, and a rewrite leaves one manifest."""

import json

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from embridge.store import (
    JSON_MANIFEST,
    LEGACY_MANIFEST,
    MANIFEST,
    MANIFEST_KEY,
    TableWriter,
    load_tables,
    read_manifest,
    read_table,
)
from embridge.store.validate import validate_table

from tests.manifests import manifest_dict


def _write(path, n=700, d=8, seed=0, dtype="float32"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    ids = [f"r{i:04d}" for i in range(n)]
    split = np.where(np.arange(n) % 5 == 0, "test", "train")
    labels = np.arange(n) % 3
    with TableWriter(path, "image", d, dtype=dtype, rows_per_shard=256, row_group_rows=64) as w:
        w.write(ids, split, X, label=labels)
    return ids, X.astype(dtype)


def test_the_folder_holds_only_parquet_and_the_manifest_is_a_zero_row_footer(tmp_path):
    _write(tmp_path / "image")
    names = sorted(p.name for p in (tmp_path / "image").iterdir())
    assert names == [MANIFEST, "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert MANIFEST[0] in "._"  # pyarrow's default ignore_prefixes, and Spark/Hadoop's hidden-file rule
    man = pq.read_table(tmp_path / "image" / MANIFEST)
    assert man.num_rows == 0 and man.schema.remove_metadata() == pq.read_schema(tmp_path / "image" / "part-00000.parquet").remove_metadata()
    stored = json.loads(man.schema.metadata[MANIFEST_KEY])
    assert stored == manifest_dict(tmp_path / "image") and stored["num_rows"] == 700
    assert read_manifest(tmp_path / "image").num_rows == 700


def test_pyarrow_dataset_reads_the_folder(tmp_path):
    ids, X = _write(tmp_path / "image")
    t = ds.dataset(tmp_path / "image", format="parquet").to_table()
    assert t.num_rows == len(ids)
    order = np.argsort(t.column("id").to_pylist())
    assert sorted(t.column("id").to_pylist()) == ids
    emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False))[order]
    np.testing.assert_array_equal(emb, X)
    # without options, as the issue asks: `pyarrow.dataset.dataset("features/image")`
    assert ds.dataset(str(tmp_path / "image")).count_rows() == len(ids)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_polars_reads_the_folder_itself(tmp_path, dtype):
    pl = pytest.importorskip("polars")
    ids, X = _write(tmp_path / "image", dtype=dtype)
    df = pl.read_parquet(tmp_path / "image")  # the folder, no glob: every file in it is Parquet
    assert df.height == len(ids) and df["id"].to_list() == ids  # the manifest adds no row; shards in order
    np.testing.assert_array_equal(np.asarray(df["embedding"].to_list(), dtype=dtype), X)
    ref = read_table(tmp_path / "image")
    assert df["label"].to_list() == ref.labels.tolist() and df["split"].to_list() == ref.split.tolist()
    lazy = pl.scan_parquet(tmp_path / "image").filter(pl.col("split") == "test")
    assert lazy.select(pl.len()).collect().item() == sum(i % 5 == 0 for i in range(len(ids)))


def test_polars_reads_a_table_written_by_embridge_synth(tmp_path):
    pl = pytest.importorskip("polars")
    from click.testing import CliRunner
    from embridge.stages.cli import cli

    r = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "s"), "--n", "300", "--dim", "8", "--latent-dim", "4"])
    assert r.exit_code == 0, r.output
    for m, t in load_tables(tmp_path / "s").items():
        df = pl.read_parquet(tmp_path / "s" / m)
        assert df["id"].to_list() == t.ids.tolist()
        np.testing.assert_array_equal(np.asarray(df["embedding"].to_list(), dtype=np.float32), t.X)


def test_duckdb_reads_the_folder(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    ids, X = _write(tmp_path / "image")
    glob, con = f"{tmp_path / 'image'}/*.parquet", duckdb.connect()
    n, tests = con.execute(f"select count(*), count(*) filter (where split = 'test') from read_parquet('{glob}')").fetchone()
    assert (n, tests) == (len(ids), sum(i % 5 == 0 for i in range(len(ids))))
    row = con.execute(f"select embedding from read_parquet('{glob}') where id = 'r0003'").fetchone()[0]
    np.testing.assert_array_equal(np.asarray(row, dtype=np.float32), X[3])


@pytest.mark.parametrize("old", [JSON_MANIFEST, LEGACY_MANIFEST])
def test_tables_with_an_older_manifest_still_read(tmp_path, old):
    ids, X = _write(tmp_path / "image")
    d = manifest_dict(tmp_path / "image")
    (tmp_path / "image" / MANIFEST).unlink()  # a table as an older embridge wrote it
    (tmp_path / "image" / old).write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    assert read_manifest(tmp_path / "image").num_rows == len(ids)
    np.testing.assert_array_equal(read_table(tmp_path / "image").X, X)
    assert list(load_tables(tmp_path)) == ["image"]
    validate_table(tmp_path / "image")
    # rewriting an old table leaves one manifest, the new one
    _write(tmp_path / "image", seed=1)
    assert sorted(p.name for p in (tmp_path / "image").iterdir() if not p.name.startswith("part-")) == [MANIFEST]
