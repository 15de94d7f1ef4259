"""The extract stage's library: a dataset -> a frozen encoder -> an embedding table, shard by shard.

Resumable: shard k holds dataset rows [k * rows_per_shard, (k + 1) * rows_per_shard), written
atomically and stamped with a fingerprint of everything that determines its bytes: the dataset
(its manifest's bytes, or its folder listing), the encoder, its settings (model, revision, local
checkpoint files, precision, device) and package versions, batch size and threads. A rerun keeps
every shard whose stamp matches and encodes the others; the table's manifest is written last and
lists every row skipped with `on_error: skip`, and why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from embridge.config.schema import check_kwargs
from embridge.data.dataset import SplitConfig, read_dataset
from embridge.encoders import ENCODERS, Encoder, get_encoder
from embridge.encoders.base import resolve_kind
from embridge.encoders.shards import FINGERPRINT_KEY, ShardJob, ShardPlan, shard_path, shard_status
from embridge.errors import ConfigError, InputError
from embridge.store import (
    MANIFEST,
    Manifest,
    ShardInfo,
    remove_manifest,
    remove_stale_shards,
    shard_name,
    write_manifest,
)

__all__ = ["FINGERPRINT_KEY", "ExtractConfig", "extract", "to_batch"]
DATASET_KEYS = ("path", "encoder", "kind", "model", "revision")
PRECISIONS = ("fp32", "fp16", "bf16")
EXECUTORS = ("local", "ray")


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
    # modality -> {path: manifest or folder, encoder: name, kind: tower, model: hub name or local folder,
    # revision: hub revision}; a modality not listed reads the built-in data/raw
    datasets: dict = field(default_factory=dict)
    class_names: list | None = None  # the class list all modalities share (labels given as names); null: sorted names found
    test_fraction: float = 0.2  # rows without a split: share of each class held out as test (seeded, stratified)
    val_fraction: float = 0.0  # ... and as val
    seed: int = 0  # seeds the split of rows that have none
    device: str = "cpu"  # cpu | cuda | auto: where the transformers encoders run (the built-in ones run on the CPU)
    precision: str = "fp32"  # fp32 | fp16 | bf16: autocast of the transformers encoders (part of the fingerprint)
    workers: int = 2  # decoding threads, each a batch ahead of the encoder (1..64)
    on_error: str = "stop"  # stop: an undecodable or missing file stops the run | skip: listed in the table's manifest
    # local: shards encoded in this process | ray: the shards still to do run on Ray actors (pip install -e ".[ray]");
    # neither enters the fingerprint: both write the same bytes
    executor: str = "local"
    ray_address: str | None = None  # executor ray: null starts a local Ray instance; "auto" or host:port joins a cluster
    ray_workers: int = 0  # executor ray: encoder actors (0: one per GPU, else one per CPU)

    def check(self) -> None:
        for m, b in self.batch_sizes.items():
            if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 4096:
                raise ConfigError(f"batch_sizes.{m} = {b!r}: expected an integer in 1..4096")
        if not 1 <= self.rows_per_shard <= 1 << 20:
            raise ConfigError(f"rows_per_shard = {self.rows_per_shard}: expected 1..{1 << 20}")
        if self.threads < 0:
            raise ConfigError(f"threads = {self.threads}: expected >= 0 (0: all cores)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision = {self.precision!r}: expected one of {list(PRECISIONS)}")
        if self.device not in ("cpu", "cuda", "auto") and not str(self.device).startswith("cuda:"):
            raise ConfigError(f"device = {self.device!r}: expected cpu, cuda, cuda:N or auto")
        if self.on_error not in ("stop", "skip"):
            raise ConfigError(f"on_error = {self.on_error!r}: expected stop or skip")
        if not 1 <= self.workers <= 64:
            raise ConfigError(f"workers = {self.workers}: expected 1..64")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"executor = {self.executor!r}: expected one of {list(EXECUTORS)}")
        if isinstance(self.ray_workers, bool) or not isinstance(self.ray_workers, int) or not 0 <= self.ray_workers <= 4096:
            raise ConfigError(f"ray_workers = {self.ray_workers!r}: expected an integer in 0..4096 (0: one per GPU, else per CPU)")
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address.strip()):
            raise ConfigError(f"ray_address = {self.ray_address!r}: expected null (a new local instance), auto or host:port")
        if self.executor == "ray" and importlib.util.find_spec("ray") is None:
            raise ConfigError('executor ray needs Ray, which is not installed: pip install -e ".[ray]" (or pip install ray)')
        if not (0 < self.test_fraction < 1 and 0 <= self.val_fraction < 1 - self.test_fraction):
            raise ConfigError(f"test_fraction = {self.test_fraction}, val_fraction = {self.val_fraction}: expected 0 < test, 0 <= val, test + val < 1")
        for m, spec in self.datasets.items():
            if not isinstance(spec, dict) or "path" not in spec:
                raise ConfigError(f"datasets.{m} = {spec!r}: expected a mapping with `path` (and optional {list(DATASET_KEYS[1:])})")
            unknown = sorted(set(spec) - set(DATASET_KEYS))
            if unknown:
                raise ConfigError(f"datasets.{m}: unknown key(s) {unknown}; expected keys among {list(DATASET_KEYS)}")
        for m in set(self.encoders) | set(self.datasets):
            get_encoder(self.encoder_name(m), m, self.datasets.get(m, {}).get("kind"))
        for name, kwargs in self.options.items():
            if name not in ENCODERS:
                raise ConfigError(f"options: unknown encoder {name!r}; known encoders: {sorted(ENCODERS)}")
            if not isinstance(kwargs, dict) or "threads" in kwargs:
                raise ConfigError(f"options.{name} = {kwargs!r}: expected a mapping of constructor arguments (threads is set globally)")
            check_kwargs(ENCODERS[name], kwargs, f"options.{name}")

    def encoder_name(self, modality: str) -> str | None:
        return self.datasets.get(modality, {}).get("encoder") or self.encoders.get(modality)

    def dataset_path(self, modality: str, default: str | Path = "data/raw") -> Path:
        return Path(self.datasets.get(modality, {}).get("path") or default)

    def batch_size(self, modality: str) -> int:
        return int(self.batch_sizes.get(modality, 64))

    def resolved_threads(self) -> int:
        return self.threads or os.cpu_count() or 1

    def make_encoder(self, modality: str) -> Encoder:
        spec = self.datasets.get(modality, {})
        cls = get_encoder(self.encoder_name(modality), modality, spec.get("kind"))
        kwargs = check_kwargs(cls, self.options.get(cls.name, {}), f"options.{cls.name}")
        accepted = inspect.signature(cls.__init__).parameters
        extra = {"device": self.device, "precision": self.precision, "model": spec.get("model"), "revision": spec.get("revision")}
        for key, value in extra.items():
            if key in accepted and value is not None:
                kwargs.setdefault(key, value)
            elif key in ("model", "revision") and value is not None:
                raise ConfigError(f"datasets.{modality}.{key}: encoder {cls.name!r} loads no checkpoint (it takes no {key})")
        encoder = cls(threads=self.resolved_threads(), **kwargs)
        encoder.kind = resolve_kind(cls, modality, spec.get("kind"))
        return encoder


def to_batch(modality: str, column: pa.Array | pa.ChunkedArray):
    """A built-in raw column -> what Encoder.encode takes (see embridge.encoders.base.Encoder)."""
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


def fingerprint_of(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def encode_shards(cfg: ExtractConfig, modality: str, ds, encoder: Encoder, plan: ShardPlan, out_dir: Path,
                  todo: list[int], on_rows: Callable[[int], None], log: Callable[[str], None] | None = None,
                  record: dict | None = None) -> dict[int, tuple[int, list[dict]]]:
    """Encode shards `todo` with the configured executor: here (`encoder`, loaded), or on Ray actors
    (each loads its own copy of the encoder, checked against the driver's `record`). Returns
    {k: (rows written, skipped rows)}."""
    if cfg.executor != "ray":
        return ShardJob(ds, encoder, plan, out_dir, workers=cfg.workers, on_batch=on_rows).run_many(todo)
    if not todo:
        return {}
    from embridge.encoders.distributed import run_shards

    def on_shard(k: int, result: tuple[int, list[dict]]) -> None:
        on_rows(result[0] + len(result[1]))

    ray_log = (lambda msg: log(f"{modality}: {msg}")) if log else None
    return run_shards(ds, cfg.make_encoder(modality), plan, out_dir.resolve(), todo, address=cfg.ray_address,
                      workers=cfg.ray_workers, decode_workers=cfg.workers, on_shard=on_shard, log=ray_log,
                      expect={k: record[k] for k in ("encoder_config", "versions")} if record else None)


def extract(
    modality: str,
    dataset: str | Path,
    out_dir: str | Path,
    cfg: ExtractConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Manifest:
    """Encode every row of `dataset` (a manifest, a folder, or the built-in data/raw) as `modality`
    into the embedding table out_dir. Returns its manifest (written last)."""
    cfg = cfg or ExtractConfig()
    cfg.check()
    out_dir = Path(out_dir)
    ds = read_dataset(dataset, modality, SplitConfig(cfg.seed, cfg.test_fraction, cfg.val_fraction), cfg.class_names)
    encoder = cfg.make_encoder(modality)
    encoder.load()  # a checkpoint's settings (dim, revision) belong to the fingerprint
    record = {
        "encoder": encoder.name, "kind": encoder.kind, "encoder_config": encoder.config(), "versions": encoder.versions(),
        "dataset": ds.source, "dataset_sha256": ds.fingerprint,
        "rows_per_shard": cfg.rows_per_shard, "batch_size": cfg.batch_size(modality), "threads": cfg.resolved_threads(),
        "on_error": cfg.on_error,
    }
    plan = ShardPlan(len(ds), cfg.rows_per_shard, cfg.batch_size(modality), fingerprint_of(record), cfg.on_error)

    out_dir.mkdir(parents=True, exist_ok=True)
    remove_manifest(out_dir)  # the table is incomplete until the manifest is back
    done = {k: s for k in range(plan.num_shards) if (s := shard_status(shard_path(out_dir, k), plan, k)) is not None}
    if log and done:
        log(f"{modality}: resuming, {len(done)} of {plan.num_shards} shard(s) already encoded")

    from tqdm import tqdm

    kept = sum(plan.bounds(k)[1] - plan.bounds(k)[0] for k in done)
    bar = tqdm(total=len(ds), initial=kept, unit="row", desc=f"extract {modality}", disable=not progress)
    try:
        todo = [k for k in range(plan.num_shards) if k not in done]
        results = {**done, **encode_shards(cfg, modality, ds, encoder, plan, out_dir, todo, bar.update, log,
                                                record)}
    finally:
        bar.close()
    remove_stale_shards(out_dir, keep=plan.num_shards)
    skipped = [s for k in sorted(results) for s in results[k][1]]
    if not sum(r[0] for r in results.values()):
        raise InputError(f"{ds.source}: every row was skipped ({len(skipped)}; the first: {skipped[0]['reason']})")
    if log and skipped:
        log(f"{modality}: skipped {len(skipped)} row(s) (on_error: skip), listed in {out_dir / MANIFEST} under 'skipped'")
    manifest = Manifest(
        modality=modality, dim=encoder.dim, dtype="float32", num_rows=sum(r[0] for r in results.values()),
        shards=[ShardInfo(file=shard_name(k), num_rows=results[k][0]) for k in range(plan.num_shards)],
        encoder=encoder.name, class_names=list(ds.class_names), versions=record["versions"],
        extra={**{k: v for k, v in record.items() if k not in ("encoder", "versions")},
               "fingerprint": plan.fingerprint, "skipped": skipped},
    )
    write_manifest(out_dir, manifest)
    return manifest
