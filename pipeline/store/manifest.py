"""A table's _manifest.json and schema: the columns (design section 3), dims, dtypes and shard list.

The manifest's name starts with "_" so that the folder reads as a plain Parquet dataset in other tools:
Arrow's dataset discovery, Spark and Hadoop skip files named "_*" or ".*" (pyarrow's default
`ignore_prefixes`), polars and DuckDB globs match only `*.parquet`. Tables written before this name read
through LEGACY_MANIFEST ("manifest.json").

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

MANIFEST = "_manifest.json"  # written beside the shards
LEGACY_MANIFEST = "manifest.json"  # the name before format 1.1: still read, never written
SHARD_RE = re.compile(r"^part-(\d{5})\.parquet$")
META_COLUMNS = ("id", "split", "label", "pair_id")
DTYPES = {"float32": pa.float32(), "float16": pa.float16()}
ROWS_PER_SHARD = 131_072  # design section 7: 64k-128k rows per row group, shards of a few row groups
ROW_GROUP_ROWS = 65_536
FORMAT_VERSION = 1


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def is_table_file(name: str) -> bool:
    """True for the names a table writer puts in a table folder: shards, the manifest, their temp files."""
    return bool(SHARD_RE.match(name)) or name == MANIFEST or (
        name.startswith((".part-", f".{MANIFEST}.")) and name.endswith(".tmp")
    )


def looks_like_table(folder: Path) -> bool:
    """A folder holding shards or a writer's temp files: a table, complete or not."""
    return any(SHARD_RE.match(p.name) or (p.name.startswith(".part-") and p.name.endswith(".tmp")) for p in folder.iterdir())


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
    """The manifest file of `table_dir`: _manifest.json, else a legacy manifest.json, else (neither
    exists) the _manifest.json path a writer would create."""
    table_dir = Path(table_dir)
    path = table_dir / MANIFEST
    legacy = table_dir / LEGACY_MANIFEST
    return legacy if not path.is_file() and legacy.is_file() else path


def has_manifest(table_dir: str | Path) -> bool:
    """True when `table_dir` holds a manifest (either name): a complete table."""
    return (Path(table_dir) / MANIFEST).is_file() or (Path(table_dir) / LEGACY_MANIFEST).is_file()


def remove_manifest(table_dir: str | Path) -> None:
    """Delete the manifest (both names): the table counts as incomplete until write_manifest."""
    for name in (MANIFEST, LEGACY_MANIFEST):
        (Path(table_dir) / name).unlink(missing_ok=True)


def write_manifest(out_dir: str | Path, manifest: Manifest) -> None:
    atomic_write_bytes(Path(out_dir) / MANIFEST, manifest.to_json().encode())
    (Path(out_dir) / LEGACY_MANIFEST).unlink(missing_ok=True)  # a rewritten old table keeps one manifest


def read_manifest(table_dir: str | Path) -> Manifest:
    table_dir = Path(table_dir)
    path = manifest_path(table_dir)
    if not table_dir.is_dir():
        raise InputError(f"{table_dir}: not a folder (expected an embedding table: part-*.parquet + {MANIFEST})")
    d = read_json(path, f"{table_dir} is not a complete embedding table")
    return Manifest.from_dict(d, source=str(path))

