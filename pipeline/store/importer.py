"""Import a user's own embeddings (ImageBind, CLIP, anything) into an embedding table.

Formats: .npy, .npz (name the array), .parquet (name the column), .safetensors (name the tensor),
and, for ids/labels/pair ids/splits only, .txt/.csv with one value per line. Never unpickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from embridge.errors import InputError
from embridge.store import Manifest, TableWriter
from embridge.store.checks import check_matrix

EMBEDDING_FORMATS = (".npy", ".npz", ".parquet", ".safetensors")
VALUE_FORMATS = EMBEDDING_FORMATS + (".txt", ".csv")


def split_key(spec: str) -> tuple[Path, str | None]:
    """'file.npz:labels' -> (Path('file.npz'), 'labels'); a plain existing path has no key."""
    path = Path(spec)
    if path.exists() or ":" not in spec:
        return path, None
    head, _, key = spec.rpartition(":")
    return Path(head), key or None


def _pick(names: list[str], key: str | None, path: Path, what: str) -> str:
    if key is None:
        if len(names) == 1:
            return names[0]
        raise InputError(f"{path}: holds {len(names)} {what}s {names}; name one (e.g. {path}:{names[0] if names else 'NAME'})")
    if key not in names:
        raise InputError(f"{path}: no {what} named {key!r}; available: {names}")
    return key


def load_array(path: str | Path, key: str | None = None) -> np.ndarray:
    """Load one array from a file without unpickling anything. Raises InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return z[_pick(list(z.files), key, path, "array")]
        if suffix == ".safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(path), framework="numpy") as f:
                    return f.get_tensor(_pick(list(f.keys()), key, path, "tensor"))
            except SafetensorError as exc:
                raise InputError(f"{path}: not a readable safetensors file ({exc})") from None
        if suffix == ".parquet":
            return _load_parquet_column(path, key)
        if suffix in (".txt", ".csv"):
            lines = [ln.strip() for ln in path.read_text().splitlines()]
            while lines and not lines[-1]:
                lines.pop()
            return np.array(lines, dtype=object)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(
                f"{path}: holds Python objects (a pickled or ragged array), which are never unpickled; "
                f"save a numeric array of shape (n, d) instead"
            ) from None
        raise InputError(f"{path}: could not be read as {suffix} ({exc})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: could not be read as {suffix} ({exc})") from None
    raise InputError(f"{path}: unsupported format {suffix!r}; expected one of {list(VALUE_FORMATS)}")


def _load_parquet_column(path: Path, key: str | None) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: corrupt or unreadable Parquet file ({exc})") from None
    col = table.column(_pick(table.column_names, key, path, "column")).combine_chunks()
    t = col.type
    if pa.types.is_fixed_size_list(t):
        return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), t.list_size)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pa.compute.list_value_length(col).to_numpy(zero_copy_only=False)
        if col.null_count:
            r = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: column {key!r}, row {r}: null vector")
        if len(lengths) and (lengths != lengths[0]).any():
            r = int(np.flatnonzero(lengths != lengths[0])[0])
            raise InputError(
                f"{path}: column {key!r}, row {r}: vector of length {lengths[r]}, expected {lengths[0]} "
                f"like row 0 (ragged vectors)"
            )
        return col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), int(lengths[0]) if len(col) else 0)
    return col.to_numpy(zero_copy_only=False)


def _per_row(values: np.ndarray, n: int, what: str, path: Path) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        raise InputError(f"{path}: {what} must be 1-D (one value per row), got shape {values.shape}")
    if len(values) != n:
        raise InputError(f"{path}: {len(values)} {what} for {n} embedding rows; expected exactly one per row")
    return values


def encode_labels(raw: np.ndarray, path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels pass through (class names '0'..); strings map to sorted class names."""
    if raw.dtype.kind in "iu":
        if (raw < 0).any():
            r = int(np.flatnonzero(raw < 0)[0])
            raise InputError(f"{path}: label at row {r} is {raw[r]}; expected a non-negative class index")
        return raw.astype(np.int64), [str(c) for c in range(int(raw.max()) + 1)]
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            r = int(np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)))[0])
            raise InputError(f"{path}: label at row {r} is {raw[r]}; expected an integer class index or a class name")
        return encode_labels(raw.astype(np.int64), path)
    names = sorted({str(v) for v in raw})
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[str(v)] for v in raw], dtype=np.int64), names


def stratified_split(labels: np.ndarray | None, n: int, test_fraction: float, seed: int,
                     val_fraction: float = 0.0) -> np.ndarray:
    """'train'/'val'/'test' per row; per class round(test_fraction * n_c) rows go to test and, of a
    seeded order, the next round(val_fraction * n_c) to val (seeded)."""
    if not 0 < test_fraction < 1:
        raise InputError(f"--test-fraction {test_fraction}: expected a number strictly between 0 and 1")
    if not 0 <= val_fraction < 1 - test_fraction:
        raise InputError(f"--val-fraction {val_fraction}: expected 0 <= val_fraction < 1 - test_fraction ({1 - test_fraction})")
    rng = np.random.default_rng(seed)
    split = np.full(n, "train", dtype=object)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for rows in groups:
        n_test = int(round(test_fraction * len(rows)))
        if len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)
        order = rng.permutation(rows)
        n_val = min(int(round(val_fraction * len(rows))), max(len(rows) - n_test - 1, 0))
        split[order[:n_test]] = "test"
        split[order[n_test : n_test + n_val]] = "val"
    return split


@dataclass
class ImportSpec:
    modality: str
    embeddings: str  # FILE or FILE:KEY
    out: str
    labels: str | None = None
    ids: str | None = None
    pair_ids: str | None = None
    split: str | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.0  # share (per class) held out as val when the file has no split column
    seed: int = 0
    dtype: str = "float32"
    encoder: str = "imported"
    class_names: str | None = None  # text file, one class name per line, for integer labels


def import_embeddings(spec: ImportSpec) -> Manifest:
    """Read, check and write one modality's embedding table to spec.out. Returns its manifest."""
    emb_path, emb_key = split_key(spec.embeddings)
    X = load_array(emb_path, emb_key)
    if X.dtype == object:
        raise InputError(f"{emb_path}: expected a numeric array of shape (n, d), got text/objects")
    if X.ndim != 2:
        raise InputError(f"{emb_path}: expected a 2-D array of shape (n, d), got shape {X.shape}")
    n = X.shape[0]

    def values(spec_value: str | None, what: str):
        if spec_value is None:
            return None, None
        p, k = split_key(spec_value)
        return _per_row(load_array(p, k), n, what, p), p

    ids, ids_path = values(spec.ids, "ids")
    if ids is None:
        ids = np.array([f"{spec.modality}-{i:08d}" for i in range(n)], dtype=object)
    else:
        ids = np.array([str(v) for v in ids], dtype=object)
        seen: dict[str, int] = {}
        for r, v in enumerate(ids):
            if v in seen:
                raise InputError(f"{ids_path}: duplicate id {v!r} at rows {seen[v]} and {r}; ids must be unique")
            seen[v] = r
    check_matrix(X, str(emb_path), ids=ids)

    raw_labels, labels_path = values(spec.labels, "labels")
    labels, class_names = (None, None) if raw_labels is None else encode_labels(raw_labels, labels_path)
    if spec.class_names:
        names = [ln.strip() for ln in Path(spec.class_names).read_text().splitlines() if ln.strip()]
        if labels is not None and labels.max() >= len(names):
            raise InputError(f"{spec.class_names}: {len(names)} class names, but labels go up to {labels.max()}")
        class_names = names

    pair_ids, _ = values(spec.pair_ids, "pair ids")
    if pair_ids is not None:
        pair_ids = [None if (v is None or str(v) == "") else str(v) for v in pair_ids]

    split, split_path = values(spec.split, "split values")
    if split is None:
        split = stratified_split(labels, n, spec.test_fraction, spec.seed, spec.val_fraction)
    else:
        split = np.array([str(v) for v in split], dtype=object)
        bad = np.flatnonzero(~np.isin(split, ["train", "val", "test"]))
        if len(bad):
            raise InputError(f"{split_path}: row {bad[0]} has split {split[bad[0]]!r}; expected 'train', 'val' or 'test'")

    writer = TableWriter(
        spec.out, spec.modality, X.shape[1], spec.dtype, encoder=spec.encoder, class_names=class_names,
        extra={"source": str(emb_path)},
    )
    writer.write(ids, split, X.astype(np.float32, copy=False), label=labels, pair_id=pair_ids)
    return writer.close()
