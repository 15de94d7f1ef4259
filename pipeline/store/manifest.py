"""A table's manifest and schema: the columns (design section 3), dims, dtypes and shard list.

The manifest is `_manifest.parquet`: a zero-row Parquet file with the shards' exact schema, the
manifest JSON in its footer's key-value metadata (key "embridge.manifest"). So a table folder holds
only `.parquet` files and reads as a plain Parquet dataset in other tools without options: polars
(`pl.read_parquet(dir)`, which refuses a folder of mixed file extensions) and DuckDB's `dir/*.parquet`
read the manifest as zero rows of the same schema; Arrow's dataset discovery, Spark and Hadoop skip it
("_" prefix). Tables written before read through OLD_MANIFESTS (`_manifest.json`, format 1.1;
`manifest.json`, format 1.0); a rewrite replaces them.

Columns: id string, split string (train|val|test), label int32 nullable, pair_id string nullable,
embedding fixed_size_list<float32|float16>[d].
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
from embridge.errors import InputError
from embridge.files import atomic_write_bytes, read_json

MANIFEST = "_manifest.parquet"  # written beside the shards, last: the table's commit point
MANIFEST_KEY = b"embridge.manifest"  # the footer metadata key holding the manifest JSON
JSON_MANIFEST = "_manifest.json"  # format 1.1's manifest: still read, never written
LEGACY_MANIFEST = "manifest.json"  # format 1.0's manifest: still read, never written
OLD_MANIFESTS = (JSON_MANIFEST, LEGACY_MANIFEST)
SHARD_RE = re.compile(r"^part-(\d{5})\.parquet$")
META_COLUMNS = ("id", "split", "label", "pair_id")
DTYPES = {"float32": pa.float32(), "float16": pa.float16()}
ROWS_PER_SHARD = 131_072  # design section 7: 64k-128k rows per row group, shards of a few row groups
ROW_GROUP_ROWS = 65_536
FORMAT_VERSION = 1  # of the manifest's keys (unchanged by the file that holds them)


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def is_table_file(name: str) -> bool:
    """True for the names a table writer puts in a table folder: shards, the manifest, their temp files."""
    return bool(SHARD_RE.match(name)) or name in (MANIFEST, *OLD_MANIFESTS) or (
        name.startswith((".part-", *(f".{m}." for m in (MANIFEST, *OLD_MANIFESTS)))) and name.endswith(".tmp")
    )


def is_temp_file(name: str) -> bool:
    """A table writer's temp file (a shard's or a manifest's): only a killed write leaves one behind."""
    return name.startswith(".") and name.endswith(".tmp") and is_table_file(name)


def replaceable(table_dir: str | Path):
    """The file names a table writer may replace in `table_dir` (for `check_output_dir`): a complete
    table's own files; none in a folder without a manifest (whatever is there was not written as a table)."""
    return is_table_file if has_manifest(table_dir) else (lambda name: False)


def looks_like_table(folder: Path) -> bool:
    """A folder holding shards or a writer's temp files (a shard's or the manifest's): a table, complete or not."""
    return any(SHARD_RE.match(p.name) or is_temp_file(p.name) for p in folder.iterdir())


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
            raise InputError(f"{source}: dtype = {str(d['dtype'])[:80]!r}, expected one of {sorted(DTYPES)}")
        for s in shards:  # a shard is a file of this folder: no path may lead out of it
            if s.file in ("", ".", "..") or Path(s.file).name != s.file or "\\" in s.file:
                raise InputError(f"{source}: shard file {s.file[:200]!r} is not a plain file name inside the table folder")
        names = d.get("class_names")
        if names is not None and (not isinstance(names, list) or not all(isinstance(c, str) for c in names)):
            raise InputError(f"{source}: class_names = {str(names)[:80]}, expected a list of strings or null")
        for key, kind in (("versions", dict), ("extra", dict), ("encoder", str)):
            if key in d and not isinstance(d[key], kind):
                raise InputError(f"{source}: {key} = {str(d[key])[:80]}, expected a {kind.__name__}")
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


def manifest_path(table_dir: str | Path) -> Path:
    """The manifest file of `table_dir`: _manifest.parquet, else an older _manifest.json or
    manifest.json, else (none exists) the _manifest.parquet path a writer would create."""
    table_dir = Path(table_dir)
    for name in (MANIFEST, *OLD_MANIFESTS):
        if (table_dir / name).is_file():
            return table_dir / name
    return table_dir / MANIFEST


def has_manifest(table_dir: str | Path) -> bool:
    """True when `table_dir` holds a manifest (any format): a complete table."""
    return any((Path(table_dir) / name).is_file() for name in (MANIFEST, *OLD_MANIFESTS))


def remove_manifest(table_dir: str | Path) -> None:
    """Delete the manifest (every format): the table counts as incomplete until write_manifest."""
    for name in (MANIFEST, *OLD_MANIFESTS):
        (Path(table_dir) / name).unlink(missing_ok=True)


def manifest_bytes(d: dict) -> bytes:
    """The bytes of a _manifest.parquet holding manifest dict `d` (its dim and dtype give the schema)."""
    import pyarrow.parquet as pq

    meta = {MANIFEST_KEY: (json.dumps(d, indent=2, sort_keys=True) + "\n").encode()}
    sink = pa.BufferOutputStream()
    pq.write_table(schema(int(d["dim"]), str(d["dtype"])).with_metadata(meta).empty_table(), sink)
    return sink.getvalue().to_pybytes()


def write_manifest(out_dir: str | Path, manifest: Manifest) -> None:
    write_manifest_dict(out_dir, asdict(manifest))


def write_manifest_dict(out_dir: str | Path, d: dict) -> None:
    """Write a manifest as given, unchecked (`write_manifest` writes a Manifest); the older manifest
    files are removed after it, so a rewritten old table keeps one manifest."""
    atomic_write_bytes(Path(out_dir) / MANIFEST, manifest_bytes(d))
    for name in OLD_MANIFESTS:
        (Path(out_dir) / name).unlink(missing_ok=True)


def read_manifest_dict(table_dir: str | Path) -> tuple[Path, dict]:
    """(the manifest file, its dict as stored, unchecked); InputError naming the file when it is
    missing, unreadable, or holds no manifest."""
    import pyarrow.parquet as pq

    table_dir = Path(table_dir)
    path = manifest_path(table_dir)
    if path.name != MANIFEST:
        return path, read_json(path, f"{table_dir} is not a complete embedding table")
    if not path.is_file():
        raise InputError(f"{path}: missing; {table_dir} is not a complete embedding table")
    try:
        raw = (pq.read_schema(path).metadata or {}).get(MANIFEST_KEY)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"{path}: not a readable Parquet manifest ({str(exc)[:200]})") from None
    if raw is None:
        raise InputError(f"{path}: no embridge manifest in its footer metadata (key {MANIFEST_KEY.decode()!r})")
    try:
        d = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: its manifest is not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: its manifest is not a JSON object")
    return path, d


def read_manifest(table_dir: str | Path) -> Manifest:
    table_dir = Path(table_dir)
    if not table_dir.is_dir():
        raise InputError(f"{table_dir}: not a folder (expected an embedding table: part-*.parquet + {MANIFEST})")
    path, d = read_manifest_dict(table_dir)
    return Manifest.from_dict(d, source=str(path))
