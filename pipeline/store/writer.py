"""Writing a table: rows streamed into numbered Parquet shards (part-00000.parquet, ...), each written
atomically, and the manifest last, so an interrupted run never leaves a table a later run trusts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from embridge.errors import InputError
from embridge.files import atomic_path
from embridge.store.manifest import (
    DTYPES,
    ROW_GROUP_ROWS,
    ROWS_PER_SHARD,
    SHARD_RE,
    Manifest,
    ShardInfo,
    is_temp_file,
    remove_manifest,
    schema,
    shard_name,
    write_manifest,
)


def write_shard(
    out_dir: str | Path, index: int, table: pa.Table, row_group_rows: int = ROW_GROUP_ROWS
) -> ShardInfo:
    """Write one shard atomically: a half-written shard never carries a final name."""
    path = Path(out_dir) / shard_name(index)
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            row_group_size=row_group_rows,
            compression={"id": "zstd", "split": "zstd", "label": "zstd", "pair_id": "zstd", "embedding": "none"},
            use_dictionary=["split"],
            write_statistics=["split", "label"],
        )
    return ShardInfo(file=path.name, num_rows=table.num_rows)



def to_arrow(
    ids: Sequence[str] | np.ndarray,
    split: Sequence[str] | np.ndarray,
    X: np.ndarray,
    label: Sequence | np.ndarray | None = None,
    pair_id: Sequence | np.ndarray | None = None,
    dtype: str = "float32",
) -> pa.Table:
    """Build an Arrow table in the store's schema. X: array of shape (n, d).

    `label` may hold None or negative values for "no label"; `pair_id` None for "no pair".
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"embeddings: expected a 2-D array (n, d), got shape {X.shape}")
    n, d = X.shape
    np_dtype = np.float16 if dtype == "float16" else np.float32
    flat = np.ascontiguousarray(X, dtype=np_dtype).reshape(-1)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=DTYPES[dtype]), d)
    if label is None:
        label_arr = pa.nulls(n, pa.int32())
    else:
        lab = np.asarray(label, dtype=object) if not isinstance(label, np.ndarray) else label
        if lab.dtype.kind in "iu":
            label_arr = pa.array(lab.astype(np.int32), mask=lab < 0, type=pa.int32())
        else:
            label_arr = pa.array([None if v is None or int(v) < 0 else int(v) for v in lab], type=pa.int32())
    pair_arr = pa.nulls(n, pa.string()) if pair_id is None else pa.array(list(pair_id), type=pa.string())
    cols = [pa.array(list(ids), type=pa.string()), pa.array(list(split), type=pa.string()), label_arr, pair_arr, emb]
    for name, col in zip(("id", "split", "label", "pair_id"), cols[:4], strict=True):
        if len(col) != n:
            raise InputError(f"column {name!r} has {len(col)} rows but the embeddings have {n}")
    return pa.Table.from_arrays(cols, schema=schema(d, dtype))


class TableWriter:
    """Streams rows into numbered shards of one modality's table; the manifest is written last.

    >>> with TableWriter("features/text", "text", dim=384) as w:
    ...     w.write(ids, split, X, label=y)
    """

    def __init__(
        self,
        out_dir: str | Path,
        modality: str,
        dim: int,
        dtype: str = "float32",
        encoder: str = "",
        class_names: list[str] | None = None,
        versions: dict[str, str] | None = None,
        extra: dict | None = None,
        rows_per_shard: int = ROWS_PER_SHARD,
        row_group_rows: int = ROW_GROUP_ROWS,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_manifest(self.out_dir)  # the table is incomplete until close()
        self.manifest = Manifest(
            modality=modality, dim=dim, dtype=dtype, num_rows=0, shards=[], encoder=encoder,
            class_names=class_names, versions=dict(versions or {}), extra=dict(extra or {}),
        )
        self.rows_per_shard = rows_per_shard
        self.row_group_rows = min(row_group_rows, rows_per_shard)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, ids, split, X, label=None, pair_id=None) -> None:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.manifest.dim:
            raise InputError(f"{self.out_dir}: expected embeddings of shape (n, {self.manifest.dim}), got {X.shape}")
        self.write_arrow(to_arrow(ids, split, X, label, pair_id, self.manifest.dtype))

    def write_arrow(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.rows_per_shard:
            self._flush(self.rows_per_shard)

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self._pending)
        head, tail = table.slice(0, rows), table.slice(rows)
        info = write_shard(self.out_dir, len(self.manifest.shards), head, self.row_group_rows)
        self.manifest.shards.append(info)
        self.manifest.num_rows += info.num_rows
        self._pending = [tail] if tail.num_rows else []
        self._pending_rows = tail.num_rows

    def close(self) -> Manifest:
        if self._pending_rows:
            self._flush(self._pending_rows)
        if self.manifest.num_rows == 0:
            raise InputError(f"{self.out_dir}: refusing to write an empty table (0 rows)")
        remove_stale_shards(self.out_dir, keep=len(self.manifest.shards))
        write_manifest(self.out_dir, self.manifest)
        return self.manifest

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def remove_stale_shards(out_dir: Path, keep: int) -> None:
    """Delete shards numbered >= keep (an earlier, larger run's) and the temp files, shards' and
    manifests', that a killed write left: after the commit the folder holds only Parquet files, as
    polars requires of a folder it reads."""
    for p in Path(out_dir).iterdir():
        m = SHARD_RE.match(p.name)
        if (m and int(m.group(1)) >= keep) or is_temp_file(p.name):
            p.unlink()


# ----------------------------------------------------------------------------- reading
