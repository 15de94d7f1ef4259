"""The embedding store: one folder of Parquet shards (part-00000.parquet, ...) plus manifest.json
per modality; atomic writes, streaming reads by row group, zero-copy views for float32.

Columns (design section 3): id string, split string (train|test), label int32 nullable,
pair_id string nullable, embedding fixed_size_list<float32|float16>[d].
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embridge.errors import InputError

MANIFEST = "manifest.json"
SHARD_RE = re.compile(r"^part-(\d{5})\.parquet$")
META_COLUMNS = ("id", "split", "label", "pair_id")
DTYPES = {"float32": pa.float32(), "float16": pa.float16()}
ROWS_PER_SHARD = 131_072  # design section 7: 64k-128k rows per row group, shards of a few row groups
ROW_GROUP_ROWS = 65_536
FORMAT_VERSION = 1


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def schema(dim: int, dtype: str = "float32") -> pa.Schema:
    """The Arrow schema of an embedding table with vectors of `dim` values of `dtype`."""
    if dtype not in DTYPES:
        raise InputError(f"embedding dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("label", pa.int32(), nullable=True),
            pa.field("pair_id", pa.string(), nullable=True),
            pa.field("embedding", pa.list_(DTYPES[dtype], dim), nullable=False),
        ]
    )


@dataclass
class ShardInfo:
    file: str  # shard file name inside the table folder
    num_rows: int


@dataclass
class Manifest:
    modality: str
    dim: int
    dtype: str
    num_rows: int
    shards: list[ShardInfo]
    encoder: str = ""
    class_names: list[str] | None = None
    versions: dict[str, str] = field(default_factory=dict)  # package -> version of the encoder stack
    extra: dict = field(default_factory=dict)  # anything else a producer wants to record
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, d: dict, source: str = MANIFEST) -> Manifest:
        required = ("modality", "dim", "dtype", "num_rows", "shards")
        missing = [k for k in required if k not in d]
        if missing:
            raise InputError(f"{source}: missing key(s) {missing}; expected {list(required)}")
        try:
            shards = [ShardInfo(file=str(s["file"]), num_rows=int(s["num_rows"])) for s in d["shards"]]
            dim, num_rows = int(d["dim"]), int(d["num_rows"])
        except (TypeError, KeyError, ValueError) as exc:
            raise InputError(f"{source}: malformed 'shards', 'dim' or 'num_rows' ({exc})") from None
        if dim <= 0:
            raise InputError(f"{source}: dim = {dim}, expected a positive integer")
        if d["dtype"] not in DTYPES:
            raise InputError(f"{source}: dtype = {d['dtype']!r}, expected one of {sorted(DTYPES)}")
        known = {f for f in cls.__dataclass_fields__}
        return cls(
            modality=str(d["modality"]),
            dim=dim,
            dtype=str(d["dtype"]),
            num_rows=num_rows,
            shards=shards,
            **{k: d[k] for k in d if k in known and k not in required},
        )


# ----------------------------------------------------------------------------- atomic writes


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it to `path`, on any
    error (or interruption) delete it. A half-written file never carries the final name."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_json(path: str | Path, missing: str) -> dict:
    """A JSON object from `path`; InputError naming the file when it is missing (`missing`
    says what the folder then is not), not JSON, or not an object."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing; {missing}")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object")
    return d


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


def write_manifest(out_dir: str | Path, manifest: Manifest) -> None:
    atomic_write_bytes(Path(out_dir) / MANIFEST, manifest.to_json().encode())


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
        (self.out_dir / MANIFEST).unlink(missing_ok=True)  # the table is incomplete until close()
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
    """Delete shards numbered >= keep and leftover temp files from an earlier, larger run."""
    for p in Path(out_dir).iterdir():
        m = SHARD_RE.match(p.name)
        if (m and int(m.group(1)) >= keep) or (p.name.startswith(".part-") and p.name.endswith(".tmp")):
            p.unlink()


# ----------------------------------------------------------------------------- reading


def read_manifest(table_dir: str | Path) -> Manifest:
    table_dir = Path(table_dir)
    path = table_dir / MANIFEST
    if not table_dir.is_dir():
        raise InputError(f"{table_dir}: not a folder (expected an embedding table: part-*.parquet + {MANIFEST})")
    d = read_json(path, f"{table_dir} is not a complete embedding table")
    return Manifest.from_dict(d, source=str(path))


def open_shard(path: Path) -> pq.ParquetFile:
    """Open a shard, turning Arrow's errors into one that names the file."""
    try:
        # a read buffer instead of whole column chunks in memory: streaming stays bounded
        return pq.ParquetFile(path, buffer_size=1 << 20, pre_buffer=False)
    except FileNotFoundError:
        raise InputError(f"{path}: shard listed in {MANIFEST} does not exist") from None
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
                    f"but {MANIFEST} says dim = {manifest.dim}"
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
            raise InputError(f"{path}: holds {pf.metadata.num_rows} rows but {MANIFEST} records {info.num_rows}")
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


@dataclass
class EmbeddingTable:
    """One modality's rows in memory. X: array of shape (n, d); meta: polars frame (id, split, label, pair_id)."""

    modality: str
    X: np.ndarray
    meta: pl.DataFrame
    manifest: Manifest | None = None

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        return self.X.shape[1]

    @property
    def ids(self) -> np.ndarray:
        return self.meta["id"].to_numpy()

    @property
    def labels(self) -> np.ndarray:
        """int64 array of shape (n,), -1 where the row has no label."""
        return self.meta["label"].fill_null(-1).cast(pl.Int64).to_numpy()

    @property
    def pair_ids(self) -> np.ndarray:
        """object array of shape (n,), None where the row has no pair."""
        return self.meta["pair_id"].to_numpy()

    @property
    def split(self) -> np.ndarray:
        return self.meta["split"].to_numpy()

    @property
    def class_names(self) -> list[str] | None:
        return self.manifest.class_names if self.manifest else None

    def subset(self, mask: np.ndarray) -> EmbeddingTable:
        mask = np.asarray(mask)
        return EmbeddingTable(self.modality, self.X[mask], self.meta.filter(pl.Series(mask)) if mask.dtype == bool
                              else self.meta[mask], self.manifest)

    def select_split(self, split: str) -> EmbeddingTable:
        return self.subset(self.split == split)


def read_table(
    table_dir: str | Path, split: str | None = None, dtype: str | None = "float32", validate: bool = True
) -> EmbeddingTable:
    """Read a whole table (or one split) into memory.

    dtype: "float32" (default) converts float16 tables; None keeps the stored dtype. With one
    row group of float32 and no split filter the returned X is a zero-copy view of Arrow memory.
    validate: run the full content checks of `embridge.validate` (NaN/Inf, zero rows, duplicate ids)
    on every row, in the same pass that reads them.
    """
    table_dir = Path(table_dir)
    manifest = read_manifest(table_dir)
    checker = None
    if validate:
        from embridge.validate import TableChecker

        checker = TableChecker(table_dir, manifest)
    meta_parts, X_parts = [], []
    # with validation every row is read (and checked); the split is then filtered here
    for batch in iter_batches(table_dir, split=None if checker else split, manifest=manifest):
        if checker:
            checker.check(batch)
            if split is not None:
                batch = batch.filter(pc.equal(batch.column("split"), split))
        meta_parts.append(pa.Table.from_batches([batch]).select(list(META_COLUMNS)))
        X_parts.append(embeddings_view(batch))
    if checker:
        checker.finish(require_splits=())
    if not X_parts or sum(len(x) for x in X_parts) == 0:
        where = f"split {split!r} of " if split else ""
        raise InputError(f"{table_dir}: {where}table has no rows")
    target = np.dtype(dtype) if dtype else X_parts[0].dtype
    if len(X_parts) == 1 and X_parts[0].dtype == target:
        X = X_parts[0]
    else:
        X = np.empty((sum(len(x) for x in X_parts), manifest.dim), dtype=target)
        i = 0
        for part in X_parts:
            X[i : i + len(part)] = part
            i += len(part)
    meta = pl.from_arrow(pa.concat_tables(meta_parts))
    return EmbeddingTable(manifest.modality, X, meta, manifest)


def list_tables(root: str | Path) -> dict[str, Path]:
    """Modality name -> table folder, for every subfolder of `root` that holds a manifest."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of embedding tables (one subfolder per modality)")
    found = {p.name: p for p in sorted(root.iterdir()) if (p / MANIFEST).is_file()}
    if not found:
        raise InputError(f"{root}: no embedding tables found (expected subfolders holding {MANIFEST})")
    return found


def load_tables(
    root: str | Path, modalities: Sequence[str] | None = None, split: str | None = None, validate: bool = True
) -> dict[str, EmbeddingTable]:
    """Read every table under `root` (one subfolder per modality), or just `modalities`."""
    found = list_tables(root)
    if modalities is not None:
        missing = [m for m in modalities if m not in found]
        if missing:
            raise InputError(f"{root}: no table for modality {missing}; found {sorted(found)}")
        found = {m: found[m] for m in modalities}
    return {m: read_table(p, split=split, validate=validate) for m, p in found.items()}
