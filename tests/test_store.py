"""Embedding store: round trips, row order, zero-copy, streaming, atomic writes."""


import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from embridge.errors import InputError
from embridge.store import (
    MANIFEST,
    TableWriter,
    embeddings_view,
    iter_batches,
    load_tables,
    read_manifest,
    read_table,
    shard_name,
)

from tests.manifests import manifest_dict


def _rows(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    ids = [f"r{i:05d}" for i in range(n)]
    split = np.where(np.arange(n) % 4 == 0, "test", "train")
    labels = np.arange(n) % 7
    labels[5] = -1  # one row without a label
    pair = [None if i % 3 == 0 else f"p{i}" for i in range(n)]
    return ids, split, X, labels, pair


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_keeps_values_and_row_order(tmp_path, dtype):
    ids, split, X, labels, pair = _rows(1000, 16)
    with TableWriter(tmp_path / "t", "audio", 16, dtype, rows_per_shard=300, row_group_rows=128) as w:
        w.write(ids[:400], split[:400], X[:400], label=labels[:400], pair_id=pair[:400])
        w.write(ids[400:], split[400:], X[400:], label=labels[400:], pair_id=pair[400:])
    m = read_manifest(tmp_path / "t")
    assert [s.file for s in m.shards] == [shard_name(i) for i in range(4)]
    assert [s.num_rows for s in m.shards] == [300, 300, 300, 100]
    t = read_table(tmp_path / "t", dtype=None)
    assert t.X.dtype == (np.float16 if dtype == "float16" else np.float32)
    expected = X.astype(np.float16) if dtype == "float16" else X
    np.testing.assert_array_equal(t.X, expected)
    assert list(t.ids) == ids
    assert list(t.split) == list(split)
    np.testing.assert_array_equal(t.labels, labels)
    assert list(t.pair_ids) == pair
    # float16 tables read as float32 by default
    assert read_table(tmp_path / "t").X.dtype == np.float32


def test_split_filter_returns_only_that_split_in_order(tmp_path):
    ids, split, X, labels, pair = _rows(500, 8)
    with TableWriter(tmp_path / "t", "text", 8, rows_per_shard=200) as w:
        w.write(ids, split, X, label=labels, pair_id=pair)
    t = read_table(tmp_path / "t", split="test")
    mask = split == "test"
    np.testing.assert_array_equal(t.X, X[mask])
    assert list(t.ids) == [i for i, m in zip(ids, mask, strict=True) if m]
    assert set(t.split) == {"test"}


def test_float32_read_is_zero_copy(tmp_path):
    ids, split, X, labels, pair = _rows(256, 8)
    with TableWriter(tmp_path / "t", "image", 8) as w:
        w.write(ids, split, X, label=labels)
    batch = next(iter_batches(tmp_path / "t"))
    view = embeddings_view(batch)
    buf = batch.column("embedding").flatten().buffers()[1]
    assert view.ctypes.data == buf.address  # same memory, no copy
    t = read_table(tmp_path / "t", validate=False)  # one row group: the table's X is the Arrow buffer
    assert not t.X.flags.owndata


def test_streaming_reads_bounded_batches_in_order(tmp_path):
    ids, split, X, labels, pair = _rows(1000, 4)
    with TableWriter(tmp_path / "t", "image", 4, rows_per_shard=500, row_group_rows=100) as w:
        w.write(ids, split, X)
    batches = list(iter_batches(tmp_path / "t", columns=["embedding"], batch_rows=64, prefetch=2))
    assert max(b.num_rows for b in batches) <= 64
    np.testing.assert_array_equal(np.concatenate([embeddings_view(b) for b in batches]), X)
    # a consumer that stops early does not hang or leak the reader thread
    it = iter_batches(tmp_path / "t", batch_rows=10, prefetch=1)
    next(it)
    it.close()


def test_parquet_schema_is_the_design_contract(tmp_path):
    ids, split, X, labels, pair = _rows(10, 5)
    with TableWriter(tmp_path / "t", "image", 5, "float16") as w:
        w.write(ids, split, X, label=labels, pair_id=pair)
    sch = pq.read_schema(tmp_path / "t" / "part-00000.parquet")
    assert sch.field("id").type == pa.string()
    assert sch.field("label").type == pa.int32()
    assert sch.field("embedding").type == pa.list_(pa.float16(), 5)
    manifest = manifest_dict(tmp_path / "t")
    assert manifest["dim"] == 5 and manifest["dtype"] == "float16" and manifest["num_rows"] == 10


def test_rewrite_with_fewer_shards_removes_stale_ones(tmp_path):
    ids, split, X, labels, pair = _rows(600, 4)
    with TableWriter(tmp_path / "t", "image", 4, rows_per_shard=100) as w:
        w.write(ids, split, X)
    with TableWriter(tmp_path / "t", "image", 4, rows_per_shard=100) as w:
        w.write(ids[:150], split[:150], X[:150])
    assert sorted(p.name for p in (tmp_path / "t").glob("part-*")) == [shard_name(0), shard_name(1)]
    assert len(read_table(tmp_path / "t")) == 150


def test_interrupted_writer_leaves_no_manifest(tmp_path):
    ids, split, X, labels, pair = _rows(300, 4)
    with pytest.raises(RuntimeError):
        with TableWriter(tmp_path / "t", "image", 4, rows_per_shard=100) as w:
            w.write(ids, split, X)
            raise RuntimeError("killed")
    assert not (tmp_path / "t" / MANIFEST).exists()  # a half-written table is never trusted
    with pytest.raises(InputError, match=f"{MANIFEST}: missing"):
        read_table(tmp_path / "t")
    assert not list((tmp_path / "t").glob(".*tmp"))


def test_empty_table_is_refused(tmp_path):
    w = TableWriter(tmp_path / "t", "image", 4)
    with pytest.raises(InputError, match="empty table"):
        w.close()


def test_load_tables_reads_every_modality(synth_dir):
    tables = load_tables(synth_dir)
    assert sorted(tables) == ["audio", "image", "text"]
    assert all(len(t) == 300 and t.dim == 32 for t in tables.values())
    with pytest.raises(InputError, match="no table for modality \\['depth'\\]"):
        load_tables(synth_dir, modalities=["depth"])
