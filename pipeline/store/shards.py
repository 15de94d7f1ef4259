"""Import sharded embeddings as clip-retrieval and embedding-reader write them, streaming, in shard order.

Layout (clip-retrieval's `clip_inference` output):

    out/img_emb/img_emb_0.npy, img_emb_1.npy, ...        (n_i, d) float16/float32 arrays
    out/text_emb/text_emb_0.npy, ...
    out/metadata/metadata_0.parquet, metadata_1.parquet, ...   one row per embedding row (image_path, caption, ...)

`--embeddings` names a folder of shards (`out/img_emb`) or a glob (`out/img_emb/img_emb_*.npy`); Parquet
shards (`emb_0.parquet` with an `embedding` list column, embedding-reader's format) work the same way.
Shards are taken in the order of the number in their name (img_emb_2 before img_emb_10). Metadata comes
from `--metadata` (a folder or glob) or, when the embeddings sit in clip-retrieval's layout, the sibling
`metadata/` folder; it is matched shard by shard (metadata_<i> with <prefix>_<i>, equal row counts).
Ids, labels, pair ids and splits are metadata columns (`--id-column`, ...). Embeddings are read one
memory-mapped shard (npy) or one record batch (Parquet) at a time and written in bounded chunks: never the
whole matrix in memory. The metadata columns named are small and read whole.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from embridge.errors import InputError
from embridge.store.labels import encode_labels, stratified_split

SHARD_SUFFIXES = (".npy", ".parquet")
CHUNK_ROWS = 65_536  # rows converted to float32 and written at a time
_GLOB_CHARS = re.compile(r"[*?\[]")
_INDEX = re.compile(r"(\d+)(?=\.[A-Za-z]+$)")


def is_sharded(spec: str) -> bool:
    """True when `--embeddings` names a folder or a glob (not one file)."""
    return bool(_GLOB_CHARS.search(spec)) or Path(spec).is_dir()


def shard_index(path: Path) -> int:
    """The number at the end of a shard's name: img_emb_12.npy -> 12 (no number: -1)."""
    m = _INDEX.search(path.name)
    return int(m.group(1)) if m else -1


def list_shards(spec: str, what: str = "embedding", suffixes=SHARD_SUFFIXES) -> list[Path]:
    """Files of a folder or glob with one of `suffixes`, in shard-number order. InputError when none."""
    if Path(spec).is_dir():
        files = [p for p in Path(spec).iterdir() if p.is_file() and p.suffix in suffixes and not p.name.startswith((".", "_"))]
    else:
        files = [Path(p) for p in glob.glob(spec) if Path(p).is_file() and Path(p).suffix in suffixes]
    if not files:
        raise InputError(f"{spec}: no {what} shards ({', '.join(suffixes)}) found")
    kinds = {p.suffix for p in files}
    if len(kinds) > 1:
        raise InputError(f"{spec}: mixes shard formats {sorted(kinds)}; expected one")
    return sorted(files, key=lambda p: (shard_index(p), p.name))


def metadata_shards(emb_files: list[Path], metadata: str | None) -> list[Path] | None:
    """The metadata shard of each embedding shard (same number), from `metadata` or clip-retrieval's
    sibling `metadata/` folder; None when there is none."""
    if metadata is None:
        sibling = emb_files[0].parent.parent / "metadata"
        if not sibling.is_dir():
            return None
        metadata = str(sibling)
    files = list_shards(metadata, "metadata", (".parquet",))
    by_index = {shard_index(p): p for p in files}
    if len(by_index) != len(files) or len(files) != len(emb_files):
        raise InputError(f"{metadata}: {len(files)} metadata shards for {len(emb_files)} embedding shards "
                         f"({emb_files[0].parent}); expected one metadata_<i>.parquet per shard <i>")
    out = []
    for p in emb_files:
        if shard_index(p) not in by_index:
            raise InputError(f"{p}: no metadata shard numbered {shard_index(p)} in {metadata}")
        out.append(by_index[shard_index(p)])
    return out


def shard_rows(path: Path, key: str | None) -> tuple[int, int]:
    """(rows, dim) of one embedding shard without reading its values."""
    if path.suffix == ".npy":
        try:
            a = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"{path}: not a numeric .npy array ({exc})") from None
        if a.ndim != 2 or a.dtype.kind not in "fiu":
            raise InputError(f"{path}: expected a numeric array of shape (n, d), got {a.dtype} {a.shape}")
        return int(a.shape[0]), int(a.shape[1])
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: corrupt or unreadable Parquet file ({exc})") from None
    col = _parquet_column(pf, key, path)
    t = pf.schema_arrow.field(col).type
    if pa.types.is_fixed_size_list(t):
        return pf.metadata.num_rows, t.list_size
    first = next(pf.iter_batches(batch_size=1, columns=[col]), None)
    dim = 0 if first is None or not first.num_rows else len(first.column(0)[0])
    return pf.metadata.num_rows, dim


def _parquet_column(pf, key: str | None, path: Path) -> str:
    names = pf.schema_arrow.names
    key = key or ("embedding" if "embedding" in names else None)
    if key is None or key not in names:
        raise InputError(f"{path}: no embedding column {key!r}; columns: {names} (name one with --embeddings-column)")
    return key


def iter_chunks(path: Path, key: str | None, chunk_rows: int | None = None) -> Iterator[np.ndarray]:
    """One shard's rows as float32 chunks of at most `chunk_rows` (default CHUNK_ROWS) rows (a memory map /
    record batches)."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    if path.suffix == ".npy":
        a = np.load(path, mmap_mode="r", allow_pickle=False)
        for i in range(0, a.shape[0], chunk_rows):
            yield np.asarray(a[i : i + chunk_rows], dtype=np.float32)
        return
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    col = _parquet_column(pf, key, path)
    start = 0
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=[col]):
        arr = batch.column(0)
        if arr.null_count:
            r = start + int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: column {col!r}, row {r}: null vector")
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        if len(arr) and flat.size % len(arr):
            raise InputError(f"{path}: column {col!r} near row {start}: vectors of different lengths (ragged)")
        yield np.asarray(flat, dtype=np.float32).reshape(len(arr), -1)
        start += len(arr)


def read_metadata_columns(files: list[Path], columns: dict[str, str | None],
                          rows: list[int]) -> dict[str, np.ndarray | None]:
    """{what: values over all shards} for each metadata column named in `columns` (None: not asked).
    `rows`: each shard's embedding row count, which its metadata must match."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    asked = {w: c for w, c in columns.items() if c}
    out: dict[str, list] = {w: [] for w in asked}
    for path, n in zip(files, rows, strict=True):
        try:
            pf = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: corrupt or unreadable Parquet file ({exc})") from None
        if pf.metadata.num_rows != n:
            raise InputError(f"{path}: {pf.metadata.num_rows} metadata rows for {n} embedding rows in its shard")
        missing = [c for c in asked.values() if c not in pf.schema_arrow.names]
        if missing:
            raise InputError(f"{path}: no column {missing[0]!r}; columns: {pf.schema_arrow.names}")
        t = pf.read(columns=sorted(set(asked.values())))
        for w, c in asked.items():
            out[w].append(t.column(c).to_numpy(zero_copy_only=False))
    return {w: (np.concatenate(out[w]) if w in out else None) for w in columns}


def import_shards(spec):
    """Stream a folder/glob of embedding shards (and their metadata) into spec.out, in shard order.
    spec: an embridge.store.importer.ImportSpec whose `embeddings` is a folder or glob."""
    from embridge.store import TableWriter
    from embridge.store.checks import check_matrix

    files = list_shards(spec.embeddings)
    key = spec.embeddings_column
    if files[0].suffix == ".npy" and key:
        raise InputError(f"--embeddings-column {key!r}: .npy shards hold one array; it applies to Parquet shards")
    sizes = [shard_rows(p, key) for p in files]
    dims = {d for _, d in sizes}
    if len(dims) > 1:
        bad = next(p for p, (_, d) in zip(files, sizes, strict=True) if d != sizes[0][1])
        raise InputError(f"{bad}: vectors of dimension {shard_rows(bad, key)[1]}, but {files[0]} has {sizes[0][1]}")
    rows = [n for n, _ in sizes]
    n, dim = sum(rows), sizes[0][1]
    if n == 0 or dim == 0:
        raise InputError(f"{spec.embeddings}: the shards hold no vectors ({n} rows x {dim})")
    columns = {"ids": spec.id_column, "labels": spec.label_column, "pair_ids": spec.pair_id_column,
               "split": spec.split_column}
    meta_files = metadata_shards(files, spec.metadata)
    if meta_files is None and files[0].suffix == ".parquet":
        meta_files = files  # embedding-reader's Parquet shards carry their metadata columns
    if meta_files is None and any(columns.values()):
        raise InputError(f"{spec.embeddings}: metadata columns {[c for c in columns.values() if c]} named, but no "
                         f"metadata shards found (pass --metadata FOLDER or GLOB)")
    if any(v is not None for v in (spec.ids, spec.labels, spec.pair_ids, spec.split)):
        raise InputError("with a folder or glob of shards, name metadata columns (--id-column, --label-column, "
                         "--pair-id-column, --split-column) instead of --ids/--labels/--pair-ids/--split files")
    meta = read_metadata_columns(meta_files, columns, rows) if meta_files else dict.fromkeys(columns)
    src = meta_files[0] if meta_files else Path(spec.embeddings)

    ids = meta["ids"]
    ids = (np.array([f"{spec.modality}-{i:08d}" for i in range(n)], dtype=object) if ids is None
           else np.array([str(v) for v in ids], dtype=object))
    if len(np.unique(ids)) != n:
        seen: dict[str, int] = {}
        for r, v in enumerate(ids):
            if v in seen:
                raise InputError(f"{src}: column {spec.id_column!r}: duplicate id {v!r} at rows {seen[v]} and {r}")
            seen[v] = r
    labels, class_names = (None, None) if meta["labels"] is None else encode_labels(meta["labels"], src)
    pair_ids = meta["pair_ids"]
    if pair_ids is not None:
        pair_ids = np.array([None if (v is None or str(v) == "") else str(v) for v in pair_ids], dtype=object)
    split = meta["split"]
    if split is None:
        split = stratified_split(labels, n, spec.test_fraction, spec.seed)
    else:
        split = np.array([str(v) for v in split], dtype=object)
        bad = np.flatnonzero(~np.isin(split, ["train", "test", "val"]))
        if len(bad):
            raise InputError(f"{src}: column {spec.split_column!r}, row {bad[0]}: split {split[bad[0]]!r}; "
                             "expected train, val or test")

    writer = TableWriter(spec.out, spec.modality, dim, spec.dtype, encoder=spec.encoder, class_names=class_names,
                         extra={"source": str(spec.embeddings), "shards": [str(p) for p in files]})
    start = 0
    for path in files:
        for X in iter_chunks(path, key):
            stop = start + len(X)
            check_matrix(X, str(path), ids=ids[start:stop])
            writer.write(ids[start:stop], split[start:stop], X,
                         label=None if labels is None else labels[start:stop],
                         pair_id=None if pair_ids is None else pair_ids[start:stop])
            start = stop
    return writer.close()
