"""One shard of an extraction: the unit of work, resumable and self-describing.

`ShardJob.run(k)` encodes rows [k * R, (k + 1) * R) of a dataset with a loaded encoder and writes
part-0000k.parquet atomically, stamped with the extraction's fingerprint and the rows it skipped.
It depends only on (dataset, encoder, plan, k), so shards can run in any order, on any worker
(issue 13 runs them as Ray tasks on actors). Decoding runs in `workers` threads, `workers` batches
ahead of the encoder, so it overlaps encoding (Pillow, libsndfile, FFmpeg and SciPy release the GIL).
"""

from __future__ import annotations

import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from embridge.data.dataset import Dataset
from embridge.data.decode import DecodeError
from embridge.encoders.base import Encoder
from embridge.errors import InputError
from embridge.store import shard_name, to_arrow, write_shard

FINGERPRINT_KEY = b"embridge.fingerprint"
SKIPPED_KEY = b"embridge.skipped"  # JSON list of {"id", "row", "reason"}
PLANNED_KEY = b"embridge.planned_rows"  # rows of the dataset this shard covers (skipped ones included)


@dataclass(frozen=True)
class ShardPlan:
    """How a dataset is cut into shards, and the stamp every shard carries."""

    num_rows: int
    rows_per_shard: int
    batch_size: int
    fingerprint: str
    on_error: str = "stop"  # stop | skip

    @property
    def num_shards(self) -> int:
        return -(-self.num_rows // self.rows_per_shard)

    def bounds(self, k: int) -> tuple[int, int]:
        lo = k * self.rows_per_shard
        return lo, min(lo + self.rows_per_shard, self.num_rows)


def shard_status(path: Path, plan: ShardPlan, k: int) -> tuple[int, list[dict]] | None:
    """(rows written, skipped rows) when `path` is a finished shard of this plan, else None."""
    try:
        meta = (pq.read_schema(path).metadata or {})
        num_rows = pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError):
        return None
    lo, hi = plan.bounds(k)
    if meta.get(FINGERPRINT_KEY, b"").decode() != plan.fingerprint or int(meta.get(PLANNED_KEY, b"-1")) != hi - lo:
        return None
    skipped = json.loads(meta.get(SKIPPED_KEY, b"[]"))
    return (num_rows, skipped) if num_rows + len(skipped) == hi - lo else None


class ShardJob:
    """Encode shards of `dataset` with `encoder` into `out_dir` (see the module docstring)."""

    def __init__(self, dataset: Dataset, encoder: Encoder, plan: ShardPlan, out_dir: str | Path,
                 workers: int = 2, on_batch=None):
        self.dataset, self.encoder, self.plan, self.out_dir = dataset, encoder, plan, Path(out_dir)
        self.workers = max(1, workers)  # decoding threads (and batches decoded ahead of the encoder)
        self.on_batch = on_batch  # called with the rows of each encoded batch (the progress bar)

    def _decode(self, lo: int, hi: int) -> tuple[list[int], list, list[dict]]:
        """Rows [lo, hi) decoded: (rows kept, their items, skipped rows)."""
        enc, keep, items, skipped = self.encoder, [], [], []
        kind, rate = enc.decode_kind(), getattr(enc, "sample_rate", 16_000)
        for i in range(lo, hi):
            try:
                items.append(self.dataset.item(i, kind, rate=rate, n_frames=getattr(enc, "n_frames", 8)))
                keep.append(i)
            except DecodeError as exc:
                if self.plan.on_error != "skip":
                    raise
                skipped.append({"id": self.dataset.ids[i], "row": self.dataset.rows[i] if self.dataset.rows else i,
                                "reason": str(exc)})
        return keep, items, skipped

    def batches(self, ks: list[int]):
        """Yield (k, rows, items, skipped) per batch of shards ks in order, decoded `workers` batches
        ahead; the look-ahead runs across shard boundaries, so no shard starts with an idle encoder."""
        B = self.plan.batch_size
        jobs = [(k, b, min(b + B, self.plan.bounds(k)[1])) for k in ks for b in range(self.plan.bounds(k)[0], self.plan.bounds(k)[1], B)]
        if self.dataset.paths is None:  # in-memory items: nothing to overlap
            for k, lo, hi in jobs:
                yield (k, *self._decode(lo, hi))
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            pending = deque()
            for k, lo, hi in jobs:
                pending.append((k, pool.submit(self._decode, lo, hi)))
                if len(pending) > self.workers:
                    k0, fut = pending.popleft()
                    yield (k0, *fut.result())
            while pending:
                k0, fut = pending.popleft()
                yield (k0, *fut.result())

    def _encode(self, k: int, batches) -> tuple[list[int], np.ndarray, list[dict]]:
        """Shard k's batches -> (dataset rows kept, Z of shape (len(rows), d), skipped rows)."""
        rows, parts, skipped = [], [], []
        for keep, items, skip in batches:
            skipped += skip
            if keep:
                parts.append(self.encoder.encode(items))  # (len(keep), d)
                rows += keep
            if self.on_batch:
                self.on_batch(len(keep) + len(skip))
        Z = np.concatenate(parts) if parts else np.zeros((0, self.encoder.dim), np.float32)
        bad = np.flatnonzero(~np.isfinite(Z).all(axis=1))
        if bad.size:
            raise InputError(f"{self.dataset.where(rows[bad[0]])}: encodes to NaN/Inf")
        return rows, Z, skipped

    def _write(self, k: int, rows: list[int], Z: np.ndarray, skipped: list[dict]) -> tuple[int, list[dict]]:
        ds = self.dataset.select(rows)
        label = np.asarray([-1 if y is None else y for y in ds.label], dtype=np.int64)
        shard = to_arrow(ds.ids, ds.split, Z, label=label, pair_id=ds.pair_id if any(ds.pair_id) else None)
        lo, hi = self.plan.bounds(k)
        meta = {FINGERPRINT_KEY: self.plan.fingerprint.encode(), PLANNED_KEY: str(hi - lo).encode(),
                SKIPPED_KEY: json.dumps(skipped).encode()}
        write_shard(self.out_dir, k, shard.replace_schema_metadata(meta))
        return len(rows), skipped

    def run(self, k: int) -> tuple[int, list[dict]]:
        """Encode shard k and write it atomically. Returns (rows written, skipped rows)."""
        return self.run_many([k])[k]

    def run_many(self, ks: list[int]) -> dict[int, tuple[int, list[dict]]]:
        """run(k) for each k in ks, with decoding running ahead across shards. Returns {k: run(k)}."""
        out, stream = {}, self.batches(ks)
        import itertools

        for k, group in itertools.groupby(stream, key=lambda t: t[0]):
            out[k] = self._write(k, *self._encode(k, (t[1:] for t in group)))
        return out


def shard_path(out_dir: str | Path, k: int) -> Path:
    return Path(out_dir) / shard_name(k)
