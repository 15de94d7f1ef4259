"""A table folder reads as a plain Parquet dataset in standard tools without options: pyarrow.dataset
and polars on the folder itself, DuckDB on its `*.parquet` glob; the manifest (`_manifest.parquet`,
zero rows of the shards' schema) adds no rows. Tables written with the older JSON manifests
(`_manifest.json`, `manifest.json`) stay readable, and a rewrite leaves one manifest."""

import json
import os

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from embridge.errors import InputError
from embridge.store import (
    JSON_MANIFEST,
    LEGACY_MANIFEST,
    MANIFEST,
    MANIFEST_KEY,
    TableWriter,
    list_tables,
    load_tables,
    read_manifest,
    read_table,
    write_manifest,
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


# ----------------------------------------------------------------------------- every column, every writer


def _same_as_store(df, table_dir, dtype="float32"):
    """A polars frame read by another tool holds exactly read_table's rows, in table order, with the
    embedding column as a fixed-size array of the stored dtype."""
    pl = pytest.importorskip("polars")
    t = read_table(table_dir, dtype=None)
    assert df.columns == ["id", "split", "label", "pair_id", "embedding"] and df.height == len(t)
    for c in ("id", "split", "label", "pair_id"):
        assert df[c].to_list() == t.meta[c].to_list(), c
    assert df.schema["embedding"] == pl.Array(pl.Float16 if dtype == "float16" else pl.Float32, t.dim)
    emb = df["embedding"].to_numpy()
    assert emb.dtype == t.X.dtype
    np.testing.assert_array_equal(emb, t.X)


def test_tables_written_by_synth_and_import_read_in_polars_and_pyarrow(tmp_path):
    pl = pytest.importorskip("polars")
    from click.testing import CliRunner
    from embridge.stages.cli import cli

    r = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "s"), "--n", "300", "--dim", "12", "--latent-dim", "3",
                                 "--dtype", "float16"])
    assert r.exit_code == 0, r.output
    np.save(tmp_path / "e.npy", np.random.default_rng(3).standard_normal((90, 6)).astype(np.float32))
    r = CliRunner().invoke(cli, ["import", "--modality", "depth", "--embeddings", str(tmp_path / "e.npy"),
                                 "--out", str(tmp_path / "i" / "depth")])
    assert r.exit_code == 0, r.output
    dirs = {**{m: (p, "float16") for m, p in list_tables(tmp_path / "s").items()}, "depth": (tmp_path / "i" / "depth", "float32")}
    assert sorted(dirs) == ["audio", "depth", "image", "text"]
    for d, dtype in dirs.values():
        assert all(name.endswith(".parquet") for name in os.listdir(d)), os.listdir(d)
        _same_as_store(pl.read_parquet(d), d, dtype)
        _same_as_store(pl.scan_parquet(d).collect(), d, dtype)
        _same_as_store(pl.from_arrow(ds.dataset(d).to_table()), d, dtype)


def test_duckdb_reads_the_bare_folder_and_the_manifest(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    ids, X = _write(tmp_path / "image")
    d = tmp_path / "image"
    assert duckdb.sql(f"select count(*) from read_parquet('{d}')").fetchall() == [(len(ids),)]  # the folder, no glob
    df = duckdb.sql(f"select id, embedding from read_parquet('{d}') order by id").pl()
    assert df["id"].to_list() == ids
    np.testing.assert_array_equal(np.array(df["embedding"].to_list(), dtype=np.float32), X)
    kv = duckdb.sql(f"select decode(value) from parquet_kv_metadata('{d / MANIFEST}') "
                    f"where key = 'embridge.manifest'").fetchall()
    assert json.loads(kv[0][0]) == manifest_dict(d)


# ----------------------------------------------------------------------------- temp files, old formats


def test_a_killed_writes_temp_files_are_gone_after_the_next_commit(tmp_path):
    pl = pytest.importorskip("polars")
    d = tmp_path / "image"
    _write(d)
    leftovers = (".part-00001.parquet.x1.tmp", f".{MANIFEST}.x2.tmp", f".{JSON_MANIFEST}.x3.tmp", f".{LEGACY_MANIFEST}.x4.tmp")
    for name in leftovers:
        (d / name).write_bytes(b"half")  # what a SIGKILL in the middle of a write (or a commit) leaves
    with pytest.raises(Exception, match="different file extensions"):
        pl.read_parquet(d)  # why they must go: polars refuses a folder holding anything but Parquet
    _write(d, seed=1)
    assert sorted(os.listdir(d)) == [MANIFEST, "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    _same_as_store(pl.read_parquet(d), d)


def test_shards_or_temp_files_without_a_manifest_are_an_incomplete_table(tmp_path):
    d = tmp_path / "image"
    _write(d)
    (d / MANIFEST).unlink()
    with pytest.raises(InputError, match=f"{d}: incomplete table"):
        list_tables(tmp_path)
    with pytest.raises(InputError, match=f"{MANIFEST}: missing"):
        read_table(d)
    for p in d.iterdir():
        p.unlink()
    (d / f".{MANIFEST}.x1.tmp").write_bytes(b"half")  # killed while committing
    with pytest.raises(InputError, match=f"{d}: incomplete table"):
        list_tables(tmp_path)


def test_the_parquet_manifest_is_read_before_an_older_one(tmp_path):
    d = tmp_path / "image"
    _write(d)
    old = manifest_dict(d)
    old["encoder"] = "stale"
    (d / JSON_MANIFEST).write_text(json.dumps(old))
    (d / LEGACY_MANIFEST).write_text(json.dumps({**old, "encoder": "older"}))
    assert read_manifest(d).encoder == ""  # _manifest.parquet, then _manifest.json, then manifest.json
    (d / MANIFEST).unlink()
    assert read_manifest(d).encoder == "stale"
    (d / JSON_MANIFEST).unlink()
    assert read_manifest(d).encoder == "older"


@pytest.mark.parametrize("old", [JSON_MANIFEST, LEGACY_MANIFEST])
def test_an_older_table_validates_names_its_manifest_and_converts_in_place(tmp_path, old):
    pl = pytest.importorskip("polars")
    from click.testing import CliRunner
    from embridge.stages.cli import cli

    d = tmp_path / "image"
    _write(d)
    m = manifest_dict(d)
    (d / MANIFEST).unlink()
    (d / old).write_text(json.dumps({**m, "num_rows": m["num_rows"] + 1}))
    with pytest.raises(InputError, match=f"{old}: records 701 rows"):  # the file it has, not _manifest.parquet
        validate_table(d)
    (d / old).write_text(json.dumps(m))
    r = CliRunner().invoke(cli, ["validate", str(d)])
    assert r.exit_code == 0, r.output
    if old == JSON_MANIFEST:
        assert ds.dataset(d).count_rows() == 700  # pyarrow skips "_*" files
    with pytest.raises(Exception, match="different file extensions"):
        pl.read_parquet(d)  # polars needs the Parquet manifest
    before = {p.name: p.read_bytes() for p in d.glob("part-*.parquet")}
    write_manifest(d, read_manifest(d))  # commit the manifest again: converted, the shards untouched
    assert sorted(os.listdir(d)) == [MANIFEST, *sorted(before)]
    assert {p.name: p.read_bytes() for p in d.glob("part-*.parquet")} == before
    _same_as_store(pl.read_parquet(d), d)
