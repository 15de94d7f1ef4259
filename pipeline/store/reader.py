"""Reading a table: shards opened and checked against the manifest, streamed in bounded record
batches decoded in a background thread, and zero-copy views of the embedding column."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from embridge.errors import InputError
from embridge.store.manifest import META_COLUMNS, Manifest, manifest_path, read_manifest, schema


def open_shard(path: Path) -> pq.ParquetFile:
    """Open a shard, turning Arrow's errors into one that names the file."""
    try:
        # a read buffer instead of whole column chunks in memory: streaming stays bounded
        return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    except FileNotFoundError:
        raise InputError(f"{path}: shard listed in {manifest_path(path.parent).name} does not exist") from None
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: corrupt or truncated Parquet file ({exc})") from None


def check_shard_schema(path: Path, pf: pq.ParquetFile, manifest: Manifest) -> None:
    """Columns present, types as the store writes them, dim equal to the manifest's."""
    sch = pf.schema_arrow
    for name in (*META_COLUMNS, "embedding"):
        if name not in sch.names:
            raise InputError(f"{path}: missing column {name!r}; expected columns {[*META_COLUMNS, 'embedding']}")
    want = schema(manifest.dim, manifest.dtype)
    for name in (*META_COLUMNS, "embedding"):
        got_t, want_t = sch.field(name).type, want.field(name).type
        if name == "embedding" and pa.types.is_fixed_size_list(got_t) and got_t.value_type == want_t.value_type:
            if got_t.list_size != manifest.dim:
                raise InputError(
                    f"{path}: column 'embedding' has dimension {got_t.list_size}, "
                    f"but {manifest_path(path.parent).name} says dim = {manifest.dim}"
                )
            continue
        if got_t != want_t:
            raise InputError(f"{path}: column {name!r} has type {got_t}, expected {want_t}")


def shard_paths(table_dir: str | Path, manifest: Manifest) -> list[Path]:
    return [Path(table_dir) / s.file for s in manifest.shards]


def _open_checked(table_dir: str | Path, manifest: Manifest) -> Iterator[tuple[Path, pq.ParquetFile]]:
    """Open every shard in order, checking its schema and its row count against the manifest."""
    for info, path in zip(manifest.shards, shard_paths(table_dir, manifest), strict=True):
        pf = open_shard(path)
        check_shard_schema(path, pf, manifest)
        if pf.metadata.num_rows != info.num_rows:
            raise InputError(f"{path}: holds {pf.metadata.num_rows} rows but {manifest_path(path.parent).name} records {info.num_rows}")
        yield path, pf


def _decode(table_dir, manifest, read_cols, batch_rows) -> Iterator[pa.RecordBatch]:
    for path, pf in _open_checked(table_dir, manifest):
        try:
            yield from pf.iter_batches(batch_size=batch_rows, columns=read_cols, use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: corrupt or truncated Parquet file ({exc})") from None


def iter_batches(
    table_dir: str | Path,
    columns: Sequence[str] | None = None,
    split: str | None = None,
    manifest: Manifest | None = None,
    batch_rows: int = 8192,
    prefetch: int = 4,
) -> Iterator[pa.RecordBatch]:
    """Stream a table in order, in record batches of at most `batch_rows` rows.

    Decoding runs in one background thread (Arrow releases the GIL) that stays at most
    `prefetch` batches ahead, so memory is bounded by about (prefetch + 2) x batch_rows rows,
    whatever the table's size, and the caller's work overlaps the decoding. Small batches also
    keep Parquet's repetition/definition level buffers small (a 64k-row row group of 1024-d
    vectors would need hundreds of MB of them). Structural checks happen on the way: each shard
    opens, has the expected schema and the row count the manifest records. With `split`, rows
    of other splits are dropped.
    """
    import queue
    import threading

    manifest = manifest or read_manifest(table_dir)
    cols = list(columns) if columns is not None else [*META_COLUMNS, "embedding"]
    read_cols = cols + (["split"] if split is not None and "split" not in cols else [])
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for batch in _decode(table_dir, manifest, read_cols, batch_rows):
                while not stop.is_set():
                    try:
                        q.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # re-raised in the consumer's thread
            q.put(exc)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            if split is not None:
                item = item.filter(pc.equal(item.column("split"), split)).select(cols)
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # drain so a blocked producer can see the stop flag
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def embeddings_view(batch: pa.RecordBatch | pa.Table) -> np.ndarray:
    """The embedding column as a numpy array of shape (n, d), without a copy where Arrow allows."""
    col = batch.column("embedding")
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    d = col.type.list_size
    values = col.flatten()  # respects slicing, unlike .values
    return values.to_numpy(zero_copy_only=False).reshape(-1, d)


