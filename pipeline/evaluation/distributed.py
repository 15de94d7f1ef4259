"""The evaluation scan on a Ray cluster: query blocks (or gallery shards) scanned by Ray workers.

`evaluate.executor: ray` hands `metrics.per_query` to a `RayScan`, which returns exactly what the
single-process scan returns (rank, ap, m, D, I per query), so every metric is reduced by the same
code on the driver:

- split "queries" (CPU workers): each task scans a contiguous block of queries against the whole
  gallery with the ordinary fused scan (same tie rules); the gallery goes into Ray's object store
  once and is shared by every task on a node;
- split "gallery" (several GPUs on one machine, or by choice): each task holds one contiguous shard
  of the gallery. Phase 1: the shard's top-k and its relevant scores per query; the driver merges
  them into each query's sorted relevant scores over the whole gallery. Phase 2: each shard counts
  its irrelevant items scoring >= each of those scores; the driver sums the counts into the
  pessimistic rank and the threshold-convention AP of `metrics` (ties count against the query).

Ray is imported only here, and only when an executor is built: `pip install -e ".[ray]"`.
A task whose worker dies is retried by Ray (`max_retries`); its result replaces nothing partial.
"""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from embridge.errors import ConfigError
from embridge.evaluation.relevance import RowKeys, relevance

MAX_RETRIES = 3  # Ray re-runs a task this often when its worker process dies
SHARD_QUERY_BLOCK = 1024  # queries per score block in the gallery-split phases


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError('executor "ray" needs Ray: pip install -e ".[ray]" (or pip install ray)') from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None):
    """Join the cluster at `address` ("auto": the one `ray start` runs here), or start a local Ray
    instance when `address` is None. Returns (ray, started): shut down only what was started here."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    if address and address != "auto" and not address.startswith("ray://"):
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"ray: cannot connect to {address or 'a new local instance'} ({exc})") from None
    return ray, True


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A ConfigError when nothing listens at host:port (ray.init would retry for a minute, then
    raise from deep inside Ray)."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"ray address {address!r}: expected auto or host:port (e.g. 10.0.0.1:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"ray: cannot reach a Ray cluster at {address} ({exc.strerror or exc}); "
                          f"start one there with `ray start --head`, or use auto on a node of the cluster") from None


def _blocks(n: int, parts: int) -> list[slice]:
    """`parts` contiguous slices covering range(n), sizes differing by at most one (empty ones dropped)."""
    edges = np.linspace(0, n, max(1, min(parts, n)) + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _scan_queries(xq, xb, q, b, kmax, kwargs):
    from embridge.evaluation.metrics import per_query

    return per_query(xq, xb, q, b, kmax=kmax, **kwargs)


def _shard_phase1(xq, xb, q, b, k, offset, block):
    """Top-k of one gallery shard and the relevant scores per query (CSR: counts, values), over
    query blocks of `block` rows so that memory stays at one (block x shard) score matrix."""
    kk = min(k, len(xb))
    D, I, counts, values = [], [], [], []
    for s in _blocks(len(xq), -(-len(xq) // block)):
        S = xq[s] @ xb.T  # (t, nb_shard) float32
        rel = relevance(q.take(s), b)
        order = np.lexsort((np.broadcast_to(np.arange(S.shape[1]), S.shape), -S), axis=1)[:, :kk]
        D.append(np.take_along_axis(S, order, 1))
        I.append(order.astype(np.int64) + offset)
        counts.append(rel.sum(1))
        values.append(S[rel])
    return np.concatenate(D), np.concatenate(I), np.concatenate(counts), np.concatenate(values)


def _shard_phase2(xq, xb, q, b, rel_sorted, rel_counts, block):
    """For each query's sorted relevant scores over the whole gallery: how many irrelevant items of
    this shard score >= each (CSR, aligned with rel_sorted)."""
    out = np.empty(len(rel_sorted), dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(rel_counts)])
    for s in _blocks(len(xq), -(-len(xq) // block)):
        S = xq[s] @ xb.T
        S[relevance(q.take(s), b)] = -np.inf
        S.sort(axis=1)
        for i in range(s.start, s.stop):
            r = rel_sorted[starts[i] : starts[i + 1]]
            out[starts[i] : starts[i + 1]] = S.shape[1] - np.searchsorted(S[i - s.start], r, side="left")
    return out


@dataclass
class RayScan:
    """Runs the retrieval scan of `metrics.per_query` on Ray workers.

    address: None (start a local instance), "auto" or "host:port" (join a cluster). workers: tasks
    side by side (0: the cluster's CPUs, or its GPUs with split "gallery"). split: "queries",
    "gallery", or "auto" (gallery when the cluster has more than one GPU, else queries).
    """

    address: str | None = None
    workers: int = 0
    split: str = "auto"
    num_cpus: int | None = None  # CPUs of the local instance started when address is None

    def __post_init__(self) -> None:
        if self.split not in ("auto", "queries", "gallery"):
            raise ConfigError(f"ray split = {self.split!r}: expected auto, queries or gallery")
        if self.workers < 0:
            raise ConfigError(f"ray workers = {self.workers}: expected >= 0 (0 = one per CPU or GPU)")
        self._ray = None
        self._started = False

    def __enter__(self) -> RayScan:
        self._ray, self._started = connect(self.address, self.num_cpus)
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self._ray.shutdown()
        self._ray, self._started = None, False

    def _resources(self) -> tuple[int, int]:
        res = self._ray.cluster_resources()
        return int(res.get("CPU", 1)), int(res.get("GPU", 0))

    def plan(self) -> tuple[str, int, dict]:
        """(split, tasks, task options) for this cluster."""
        cpus, gpus = self._resources()
        split = self.split if self.split != "auto" else ("gallery" if gpus > 1 else "queries")
        if gpus:
            n = self.workers or gpus
            return split, n, {"num_gpus": 1, "num_cpus": max(1, cpus // max(1, gpus))}
        n = self.workers or cpus
        return split, n, {"num_cpus": max(1, cpus // n)}

    def per_query(self, xq: np.ndarray, xb: np.ndarray, q: RowKeys, b: RowKeys, kmax: int = 10,
                  **kwargs) -> dict[str, np.ndarray]:
        """What `metrics.per_query(xq, xb, q, b, kmax, **kwargs)` returns, computed on Ray workers."""
        if self._ray is None:
            with self:
                return self.per_query(xq, xb, q, b, kmax, **kwargs)
        split, n, opts = self.plan()
        if split == "gallery":
            return self._by_gallery(xq, xb, q, b, kmax, n, opts)
        ray = self._ray
        device = "cuda" if "num_gpus" in opts else kwargs.get("device", "cpu")
        task = ray.remote(max_retries=MAX_RETRIES, **opts)(_scan_queries)
        xb_ref = ray.put(np.ascontiguousarray(xb, dtype=np.float32))
        b_ref = ray.put(b)
        blocks = _blocks(len(xq), n)
        refs = [task.remote(np.ascontiguousarray(xq[s]), xb_ref, q.take(s), b_ref, kmax, {**kwargs, "device": device})
                for s in blocks]
        parts = ray.get(refs)
        return {key: np.concatenate([p[key] for p in parts]) for key in ("rank", "ap", "m", "D", "I")}

    def _by_gallery(self, xq, xb, q, b, kmax, n, opts) -> dict[str, np.ndarray]:
        ray = self._ray
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        xq_ref, q_ref = ray.put(xq), ray.put(q)
        shards = _blocks(len(xb), n)
        xs = [ray.put(np.ascontiguousarray(xb[s], dtype=np.float32)) for s in shards]
        bs = [b.take(s) for s in shards]
        p1 = ray.remote(max_retries=MAX_RETRIES, **opts)(_shard_phase1)
        p2 = ray.remote(max_retries=MAX_RETRIES, **opts)(_shard_phase2)
        first = ray.get([p1.remote(xq_ref, x, q_ref, bk, kmax, s.start, SHARD_QUERY_BLOCK) for x, bk, s in zip(xs, bs, shards, strict=True)])
        nq = len(xq)
        # top-k over the shards: score desc, then gallery index asc (the order of every other path)
        D_all = np.concatenate([f[0] for f in first], axis=1)
        I_all = np.concatenate([f[1] for f in first], axis=1)
        order = np.lexsort((I_all, -D_all), axis=1)[:, : min(kmax, len(xb))]
        D, I = np.take_along_axis(D_all, order, 1), np.take_along_axis(I_all, order, 1)
        # each query's relevant scores over the whole gallery, sorted ascending (CSR)
        counts = np.sum([f[2] for f in first], axis=0).astype(np.int64)
        per_shard = [np.split(f[3], np.cumsum(f[2])[:-1]) for f in first]
        rel_sorted = np.concatenate([np.sort(np.concatenate([ps[i] for ps in per_shard])) for i in range(nq)]
                                    or [np.empty(0, np.float32)]).astype(np.float32)
        rs_ref, c_ref = ray.put(rel_sorted), ray.put(counts)
        irr_ge = np.sum(ray.get([p2.remote(xq_ref, x, q_ref, bk, rs_ref, c_ref, SHARD_QUERY_BLOCK) for x, bk in zip(xs, bs, strict=True)]),
                        axis=0)
        ap = np.full(nq, np.nan)
        rank = np.full(nq, np.inf)
        starts = np.concatenate([[0], np.cumsum(counts)])
        for i in np.flatnonzero(counts):
            r = rel_sorted[starts[i] : starts[i + 1]]
            g = irr_ge[starts[i] : starts[i + 1]]
            rel_ge = len(r) - np.searchsorted(r, r, side="left")  # relevant items scoring >= r_j
            ap[i] = float(np.mean(rel_ge / (rel_ge + g)))
            rank[i] = 1.0 + g[-1]
        return {"rank": rank, "ap": ap, "m": counts, "D": D, "I": I}
