"""Import a user's own embeddings (ImageBind, CLIP, anything) into an embedding table.

Formats: .npy, .npz (name the array), .parquet (name the column), .safetensors (name the tensor),
and, for ids/labels/pair ids/splits only, .txt/.csv with one value per line. Never unpickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from embridge.config.modalities import check_modality_name
from embridge.errors import InputError
from embridge.files import atomic_dir, check_no_input_inside, check_output_dir
from embridge.store import Manifest, TableWriter
from embridge.store.checks import bad_rows, check_matrix
from embridge.store.labels import encode_labels, read_class_names, stratified_split
from embridge.store.manifest import replaceable

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
            if key is not None:
                raise InputError(f"{path}: a .npy file holds one array and has no keys, so ':{key}' names nothing; "
                                 f"pass {path} without ':{key}' (keys select arrays in .npz, .parquet, .safetensors)")
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


def check_cast(X: np.ndarray, dtype: str, path: Path, ids) -> np.ndarray:
    """X cast to the storage dtype, refused when the cast made a value Inf (beyond the dtype's range)
    or a row all zeros (values below its smallest subnormal). X: (n, d) -> (n, d) of `dtype`."""
    np_dtype = np.dtype(dtype)
    with np.errstate(over="ignore", under="ignore"):
        Xc = X.astype(np_dtype)
    nonfinite, zero = bad_rows(Xc)
    if len(nonfinite):
        r = int(nonfinite[0])
        raise InputError(
            f"{path}: row {r} (id {ids[r]!r}) holds a value beyond the range of {dtype} "
            f"(largest {float(np.finfo(np_dtype).max):.6g}), which would be stored as Inf; {len(nonfinite)} such "
            f"row(s); rescale the vectors" + (" or store as float32" if dtype == "float16" else "")
        )
    if len(zero):
        r = int(zero[0])
        raise InputError(
            f"{path}: row {r} (id {ids[r]!r}) would become an all-zero vector in {dtype} (every value below "
            f"{float(np.finfo(np_dtype).smallest_subnormal):.3g}); {len(zero)} such row(s); rescale the vectors"
            + (" or store as float32" if dtype == "float16" else "")
        )
    return Xc


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
    class_names: str | None = None  # text file, one class name per line: label c (or a label equal to a name) is that class
    overwrite: bool = False  # replace an --out folder that holds files embridge did not write there
    # a folder or glob of shards (clip-retrieval / embedding-reader; embridge.store.shards) instead of one file:
    metadata: str | None = None  # folder or glob of metadata_<i>.parquet (default: clip-retrieval's sibling metadata/)
    embeddings_column: str | None = None  # vector column of Parquet shards (default: embedding)
    id_column: str | None = None  # metadata columns: ids, labels, pair ids, split
    label_column: str | None = None
    pair_id_column: str | None = None
    split_column: str | None = None


def import_embeddings(spec: ImportSpec) -> Manifest:
    """Read, check and write one modality's embedding table to spec.out. Returns its manifest.

    The output path is checked before anything is read: it is never one of the inputs (nor holds
    one), and a folder holding files embridge did not write there needs `overwrite`. The table is
    written into a temp folder that replaces spec.out only once it is complete, so a failed or
    interrupted import leaves the previous table as it was.
    """
    check_modality_name(spec.modality, "--modality")
    out = Path(spec.out)
    inputs = [split_key(v)[0] for v in (spec.embeddings, spec.labels, spec.ids, spec.pair_ids, spec.split) if v]
    check_no_input_inside(out, inputs + ([Path(spec.class_names)] if spec.class_names else []))
    check_output_dir(out, replaceable(out), spec.overwrite)
    from embridge.store.shards import import_shards, is_sharded

    if is_sharded(spec.embeddings):
        return import_shards(spec)
    emb_path, emb_key = split_key(spec.embeddings)
    X = load_array(emb_path, emb_key)
    if X.dtype == object:
        raise InputError(f"{emb_path}: expected a numeric array of shape (n, d), got text/objects")
    if X.ndim == 3:
        raise InputError(
            f"{emb_path}: expected a 2-D array of shape (n, d), got a 3-D array of shape {X.shape}; select one "
            f"slice and save it as 2-D, e.g. np.save('one.npy', X[:, 0, :]) (slice 0 of axis 1; or X.mean(axis=1) "
            f"to pool), then import one.npy"
        )
    if X.dtype.kind == "c":
        raise InputError(f"{emb_path}: complex values (dtype {X.dtype}); embeddings must be real (an imaginary "
                         f"part would be dropped): store real vectors")
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
        _unique(ids, ids_path, "id", "ids must be unique")
    check_matrix(X, str(emb_path), ids=ids)
    X = check_cast(X, spec.dtype, emb_path, ids)

    names_path = Path(spec.class_names) if spec.class_names else None
    names = read_class_names(names_path) if names_path else None
    raw_labels, labels_path = values(spec.labels, "labels")
    labels, class_names = (None, names) if raw_labels is None else encode_labels(raw_labels, labels_path, names, names_path)

    pair_ids, pairs_path = values(spec.pair_ids, "pair ids")
    if pair_ids is not None:
        pair_ids = [None if (v is None or str(v) == "") else str(v) for v in pair_ids]
        _unique(pair_ids, pairs_path, "pair id", "a pair id names one row per modality")

    split, split_path = values(spec.split, "split values")
    if split is None:
        split = stratified_split(labels, n, spec.test_fraction, spec.seed, spec.val_fraction)
    else:
        split = np.array([str(v) for v in split], dtype=object)
        bad = np.flatnonzero(~np.isin(split, ["train", "val", "test"]))
        if len(bad):
            raise InputError(f"{split_path}: row {bad[0]} has split {split[bad[0]]!r}; expected 'train', 'val' or 'test'")

    if not (split == "test").any():  # the rule of `embridge validate` (and evaluate): test rows are required
        raise InputError(
            f"{split_path or emb_path}: no row in split 'test' ({n} rows); evaluation needs test rows "
            f"(train rows are needed only by methods that fit)"
        )
    with atomic_dir(out) as tmp:
        writer = TableWriter(
            tmp, spec.modality, X.shape[1], spec.dtype, encoder=spec.encoder, class_names=class_names,
            extra={"source": str(emb_path)},
        )
        writer.write(ids, split, X, label=labels, pair_id=pair_ids)
        manifest = writer.close()
    return manifest


def _unique(values, path: Path, what: str, why: str) -> None:
    seen: dict[str, int] = {}
    for r, v in enumerate(values):
        if v is None:
            continue
        if v in seen:
            raise InputError(f"{path}: duplicate {what} {v[:80]!r} at rows {seen[v]} and {r}; {why}")
        seen[v] = r
