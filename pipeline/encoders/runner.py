"""The extract stage's library: one modality's raw rows -> its frozen encoder -> an embedding table.

Resumable: shard k holds raw rows [k * rows_per_shard, (k + 1) * rows_per_shard), written atomically
and stamped with a fingerprint of everything that determines its bytes (encoder, its settings and
package versions, the raw file's hash, batch size, threads). A rerun keeps every leading shard
whose stamp matches and continues from the first missing one; the manifest is written last.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from embridge.config.schema import check_kwargs
from embridge.data.raw import INPUT_COLUMNS, MODALITY_FILES, read_raw, read_raw_manifest
from embridge.encoders import ENCODERS, Encoder, get_encoder
from embridge.errors import ConfigError, InputError
from embridge.store import (
    Manifest,
    ShardInfo,
    remove_manifest,
    remove_stale_shards,
    shard_name,
    to_arrow,
    write_manifest,
    write_shard,
)

FINGERPRINT_KEY = b"embridge.fingerprint"


@dataclass
class ExtractConfig:
    """The `extract:` section of params.yaml."""

    # rows per encoder call, per modality (1..4096). Images: 16 keeps EfficientNet's activations
    # under glibc's mmap threshold; batches of 64 page-fault them anew each call (2-4x slower here)
    batch_sizes: dict = field(default_factory=lambda: {"image": 16, "audio": 32, "text": 128})
    rows_per_shard: int = 1024  # rows per Parquet shard: the unit of resume (an interrupted run keeps whole shards)
    threads: int = 0  # CPU threads per encoder (0: all cores); part of the fingerprint, as it may change the last bits
    encoders: dict = field(default_factory=dict)  # modality -> registered encoder name (missing: the modality's default)
    options: dict = field(default_factory=dict)  # encoder name -> constructor keyword arguments, e.g. {efficientnet-lite0: {image_size: 128}}

    def check(self) -> None:
        for m, b in self.batch_sizes.items():
            if m not in MODALITY_FILES:
                raise ConfigError(f"batch_sizes: unknown modality {m!r}; expected keys among {sorted(MODALITY_FILES)}")
            if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 4096:
                raise ConfigError(f"batch_sizes.{m} = {b!r}: expected an integer in 1..4096")
        if not 1 <= self.rows_per_shard <= 1 << 20:
            raise ConfigError(f"rows_per_shard = {self.rows_per_shard}: expected 1..{1 << 20}")
        if self.threads < 0:
            raise ConfigError(f"threads = {self.threads}: expected >= 0 (0: all cores)")
        for m, name in self.encoders.items():
            get_encoder(name, m)
        for name, kwargs in self.options.items():
            if name not in ENCODERS:
                raise ConfigError(f"options: unknown encoder {name!r}; known encoders: {sorted(ENCODERS)}")
            if not isinstance(kwargs, dict) or "threads" in kwargs:
                raise ConfigError(f"options.{name} = {kwargs!r}: expected a mapping of constructor arguments (threads is set globally)")
            check_kwargs(ENCODERS[name], kwargs, f"options.{name}")

    def batch_size(self, modality: str) -> int:
        return int(self.batch_sizes.get(modality, 64))

    def resolved_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    def make_encoder(self, modality: str) -> Encoder:
        cls = get_encoder(self.encoders.get(modality), modality)
        kwargs = check_kwargs(cls, self.options.get(cls.name, {}), f"options.{cls.name}")
        return cls(threads=self.resolved_threads(), **kwargs)


def to_batch(modality: str, column: pa.Array | pa.ChunkedArray):
    """Raw column -> what Encoder.encode takes (see embridge.encoders.base.Encoder)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if modality == "image":
        side = int(round(column.type.list_size ** 0.5))
        return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, side, side)  # (n, 28, 28) uint8
    if modality == "audio":
        values = column.flatten().to_numpy(zero_copy_only=False)  # respects slicing
        bounds = np.cumsum(column.value_lengths().to_numpy(zero_copy_only=False))[:-1]
        return np.split(values, bounds)  # n int16 arrays
    return column.to_pylist()  # text: n strings


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _shard_is_done(path: Path, fingerprint: str, num_rows: int) -> bool:
    """True when `path` is a readable shard with the expected stamp and row count."""
    try:
        meta = pq.read_metadata(path)
        stamp = (pq.read_schema(path).metadata or {}).get(FINGERPRINT_KEY, b"").decode()
    except (pa.ArrowException, OSError):
        return False
    return stamp == fingerprint and meta.num_rows == num_rows


def extract(
    modality: str,
    raw_dir: str | Path,
    out_dir: str | Path,
    cfg: ExtractConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Manifest:
    """Encode every row of raw_dir/<modality>.parquet into the embedding table out_dir. Returns its manifest."""
    cfg = cfg or ExtractConfig()
    cfg.check()
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    raw_manifest = read_raw_manifest(raw_dir)
    table = read_raw(raw_dir, modality)
    encoder = cfg.make_encoder(modality)
    n, R, B = table.num_rows, cfg.rows_per_shard, cfg.batch_size(modality)
    record = {
        "encoder": encoder.name, "encoder_config": encoder.config(), "versions": encoder.versions(),
        "raw_file": MODALITY_FILES[modality], "raw_sha256": file_sha256(raw_dir / MODALITY_FILES[modality]),
        "rows_per_shard": R, "batch_size": B, "threads": cfg.resolved_threads(),
    }
    fingerprint = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    out_dir.mkdir(parents=True, exist_ok=True)
    remove_manifest(out_dir)  # the table is incomplete until the manifest is back
    n_shards = -(-n // R)
    sizes = [min(R, n - k * R) for k in range(n_shards)]
    start = 0
    while start < n_shards and _shard_is_done(out_dir / shard_name(start), fingerprint, sizes[start]):
        start += 1
    if log and start:
        log(f"{modality}: resuming at shard {start} of {n_shards} ({start * R} rows already encoded)")

    from tqdm import tqdm

    bar = tqdm(total=n, initial=min(start * R, n), unit="row", desc=f"extract {modality}", disable=not progress)
    column = table.column(INPUT_COLUMNS[modality])
    for k in range(start, n_shards):
        lo, hi = k * R, k * R + sizes[k]
        parts = []
        for b in range(lo, hi, B):
            parts.append(encoder.encode(to_batch(modality, column.slice(b, min(B, hi - b)))))
            bar.update(parts[-1].shape[0])
        Z = np.concatenate(parts)  # (hi - lo, d)
        rows = table.slice(lo, hi - lo)
        if not np.isfinite(Z).all():
            bad = int(np.flatnonzero(~np.isfinite(Z).all(axis=1))[0])
            raise InputError(f"{raw_dir / MODALITY_FILES[modality]}: row {lo + bad} (id {rows.column('id')[bad]}) encodes to NaN/Inf")
        shard = to_arrow(rows.column("id").to_pylist(), rows.column("split").to_pylist(), Z,
                         label=rows.column("label").to_numpy())
        write_shard(out_dir, k, shard.replace_schema_metadata({FINGERPRINT_KEY: fingerprint.encode()}))
    bar.close()
    remove_stale_shards(out_dir, keep=n_shards)
    manifest = Manifest(
        modality=modality, dim=encoder.dim, dtype="float32", num_rows=n,
        shards=[ShardInfo(file=shard_name(k), num_rows=sizes[k]) for k in range(n_shards)],
        encoder=encoder.name, class_names=list(raw_manifest["class_names"]), versions=record["versions"],
        extra={**{k: v for k, v in record.items() if k not in ("encoder", "versions")}, "fingerprint": fingerprint},
    )
    write_manifest(out_dir, manifest)
    return manifest
