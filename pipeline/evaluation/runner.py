"""Evaluate one fitted method on every modality pair: retrieval, zero-shot and gap metrics -> one dict.

The result follows the `metrics/<method>.json` schema of the design (section 6):
{"method", "config", "train_pairs", "retrieval": {"a->b": {...}}, "zeroshot": {"a": {"b": {...}}},
"gap": {"a|b": {...}}, "alignment": {"a|b": {...} | null}, "notes": [...]}; `dumps` makes it byte-identical across runs (sorted keys, rounded floats).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from itertools import combinations, permutations
from pathlib import Path
from typing import Literal

import numpy as np
from embridge.config.modalities import SPLITS, is_paired
from embridge.errors import ConfigError, InputError
from embridge.evaluation.alignment import pair_alignment
from embridge.evaluation.gap import (
    c3_effective_dim,
    effective_dim,
    gap_diagnostics,
    scatter_eigenvalues,
)
from embridge.evaluation.metrics import SCORE_BUDGET, retrieval_metrics
from embridge.evaluation.relevance import check_label_spaces, row_keys
from embridge.evaluation.search import GALLERY_TILE, QUERY_TILE, normalize
from embridge.evaluation.zeroshot import prototypes, zeroshot_accuracy
from embridge.files import atomic_write_bytes
from embridge.store import EmbeddingTable


@dataclass
class EvaluateConfig:
    """The `evaluate:` section of params.yaml."""

    kmax: int = 10  # depth of the one top-k search; MRR is MRR@kmax (1/rank, 0 beyond kmax); 1..1000
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])  # R@k cut-offs reported, each <= kmax
    zeroshot_ks: list[int] = field(default_factory=lambda: [1, 5])  # top-k accuracies of zero-shot classification
    split: str = "test"  # split that is searched, classified and measured
    prototype_split: str = "train"  # split the class prototypes of zero-shot classification come from
    backend: Literal["auto", "faiss", "faiss-gpu", "torch"] = "auto"  # search backend (auto: GPU FAISS, FAISS, torch)
    gallery_tile: int = GALLERY_TILE  # gallery rows per search tile (memory: tile x d floats)
    query_tile: int = QUERY_TILE  # queries per search tile
    score_budget: int = SCORE_BUDGET  # scores per block in the mAP counting pass (~17 bytes each)
    group_size: int = 100  # pairs per group in the C^3 gap statistics (Zhang et al. 2024 use 100)
    mutual_k: int = 10  # k of the mutual-kNN alignment score and of platonic-rep's alignment metrics
    shuffle_draws: int = 10  # re-pairings averaged in the shuffled mutual-kNN baseline (mean and std reported)
    alignment_max_pairs: int = 2000  # at most this many instance pairs (seeded) in alignment (dense n x n kernels)
    mass: float = 0.99  # share of singular-value mass that defines the effective dimension, in (0, 1]
    max_pairs: int = 20_000  # at most this many pairs (seeded subsample) in C^3 / mutual-kNN statistics
    modalities: list[str] | None = None  # evaluate only these modalities (null: every table)
    decimals: int = 6  # floats in the JSON are rounded to this many decimals (byte-identical reruns)
    executor: Literal["local", "ray"] = "local"  # ray: the retrieval scan's query blocks run on Ray workers
    ray_address: str | None = None  # executor ray: null starts a local instance; "auto" or host:port joins a cluster
    ray_workers: int = 0  # executor ray: tasks side by side (0: one per CPU, or per GPU)
    ray_split: Literal["auto", "queries", "gallery"] = "auto"  # executor ray: auto = gallery across GPUs when >1
    bootstrap: int = 1000  # resamples of the 95% bootstrap interval over queries (>= 1000 for a reported interval)
    bootstrap_seed: int = 0  # seeds the resamples (the same for every method: a paired bootstrap against raw)
    min_queries: int = 100  # a direction with fewer test queries is marked too_small in the metrics and the report

    def check(self) -> None:
        if not 1 <= self.kmax <= 1000:
            raise ConfigError(f"kmax = {self.kmax}: expected 1 <= kmax <= 1000")
        for name, ks in (("ks", self.ks), ("zeroshot_ks", self.zeroshot_ks)):
            if not ks or any(k < 1 for k in ks):
                raise ConfigError(f"{name} = {ks}: expected a non-empty list of positive integers")
        if max(self.ks) > self.kmax:
            raise ConfigError(f"ks = {self.ks}: every k must be <= kmax = {self.kmax} (one top-kmax search)")
        for name in ("split", "prototype_split"):
            if getattr(self, name) not in SPLITS:
                raise ConfigError(f"{name} = {getattr(self, name)!r}: expected one of {list(SPLITS)}")
        for name in ("gallery_tile", "query_tile", "score_budget", "group_size", "mutual_k", "max_pairs",
                     "shuffle_draws", "alignment_max_pairs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} = {getattr(self, name)}: expected a positive integer")
        if not 0 < self.mass <= 1:
            raise ConfigError(f"mass = {self.mass}: expected 0 < mass <= 1")
        if not 0 <= self.decimals <= 12:
            raise ConfigError(f"decimals = {self.decimals}: expected 0..12")
        if self.bootstrap < 1 or self.min_queries < 1:
            raise ConfigError(f"bootstrap = {self.bootstrap}, min_queries = {self.min_queries}: expected positive integers")
        if self.ray_workers < 0:
            raise ConfigError(f"ray_workers = {self.ray_workers}: expected >= 0 (0 = one per CPU or GPU)")


def _transform(method, table: EmbeddingTable, name: str) -> np.ndarray:
    """The method's output for a table's rows, checked and L2-normalized: (n, d_out) float32."""
    Z = method.transform(table.X, table.modality)
    Z = np.asarray(Z)
    if Z.ndim != 2 or Z.shape[0] != len(table):
        raise InputError(f"method {name!r}: transform({table.modality!r}) returned shape {Z.shape}, expected ({len(table)}, d)")
    return normalize(Z, f"method {name!r} output for {table.modality!r}")


def _executor(cfg: EvaluateConfig):
    """The retrieval scan's executor: a no-op context (this process) or a connected RayScan."""
    if cfg.executor == "ray":
        from embridge.evaluation.distributed import RayScan

        return RayScan(address=cfg.ray_address, workers=cfg.ray_workers, split=cfg.ray_split)
    return nullcontext()


def _seed(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])  # independent of evaluation order


def evaluate(
    tables: Mapping[str, EmbeddingTable],
    method,
    train_pairs: Iterable[tuple[str, str]],
    cfg: EvaluateConfig | None = None,
    *,
    name: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    per_query: dict | None = None,
) -> dict:
    """Metrics of `method` (anything with `transform(X, modality)`) on `tables` -> dict (design schema).

    train_pairs: modality pairs used in fitting (each ordered pair is marked `paired` or not).
    name: the method's name in the output (default: `method.name`). seed: gap groups, subsamples
    and the shuffled baseline. device: torch device of the counting pass and the torch backend.
    per_query: a dict that receives {"a->b": per-query results (rank, ap, m)} for the bootstrap.
    """
    cfg = cfg or EvaluateConfig()
    cfg.check()
    name = name or getattr(method, "name", None) or type(method).__name__.lower()
    train_pairs = [tuple(sorted(p.split("-") if isinstance(p, str) else p)) for p in train_pairs]
    mods = sorted(cfg.modalities if cfg.modalities is not None else tables)
    missing = [m for m in mods if m not in tables]
    if missing:
        raise InputError(f"evaluate: no table for modality {missing}; tables: {sorted(tables)}")
    if len(mods) < 2:
        raise InputError(f"evaluate: need at least two modalities, got {mods}")
    check_label_spaces({m: tables[m] for m in mods})
    test, Z, Zp = {}, {}, {}
    for m in mods:
        test[m] = tables[m].select_split(cfg.split)
        if len(test[m]) == 0:
            raise InputError(f"evaluate: modality {m!r} has no rows in split {cfg.split!r}")
        Z[m] = _transform(method, test[m], name)
        proto = tables[m].select_split(cfg.prototype_split)
        proto = proto.subset(proto.labels >= 0)
        Zp[m] = (_transform(method, proto, name), proto.labels) if len(proto) else None
    dims = {m: z.shape[1] for m, z in Z.items()}
    if len(set(dims.values())) > 1:
        raise InputError(f"method {name!r} maps modalities to different dimensions {dims}; expected one shared space")
    search = {"backend": cfg.backend, "device": device}

    retrieval = {}
    with _executor(cfg) as scan:
        for a, b in permutations(mods, 2):
            qk, bk = row_keys(test[a], test[b])
            r = retrieval_metrics(Z[a], Z[b], qk, bk, ks=cfg.ks, kmax=cfg.kmax, tile=cfg.gallery_tile,
                                  query_tile=cfg.query_tile, score_budget=cfg.score_budget, where=f"{a}->{b}",
                                  scan=scan, per_out=None if per_query is None else per_query.setdefault(f"{a}->{b}", {}),
                                  **search)
            retrieval[f"{a}->{b}"] = {"paired": is_paired(a, b, train_pairs), **r}

    zeroshot: dict = {m: {} for m in mods}
    notes = []
    no_proto = [m for m in mods if Zp[m] is None]
    if no_proto:
        notes.append(f"zero-shot skipped for prototypes of {no_proto}: no labelled rows in split "
                     f"{cfg.prototype_split!r} (class prototypes come from there)")
    for m, o in permutations(mods, 2):
        if Zp[o] is None:
            zeroshot[m][o] = None  # no labelled prototype rows in modality o
            continue
        P, classes = prototypes(*Zp[o])
        zeroshot[m][o] = zeroshot_accuracy(Z[m], test[m].labels, P, classes, cfg.zeroshot_ks)

    gap, alignment = {}, {}
    eig = {m: scatter_eigenvalues(Z[m]) for m in mods}  # one eigen-decomposition per modality
    eff = {m: effective_dim(Z[m], cfg.mass, eig=eig[m]) for m in mods}
    eff_c3 = {m: c3_effective_dim(Z[m], cfg.mass, eig=eig[m]) for m in mods}
    for a, b in combinations(mods, 2):
        key = f"{a}|{b}"
        gap[key] = {"paired": is_paired(a, b, train_pairs),
                    **gap_diagnostics(Z[a], Z[b], test[a], test[b], cfg.group_size, cfg.mutual_k, cfg.mass,
                                      cfg.max_pairs, _seed(seed, key), (eff[a], eff[b]), (eff_c3[a], eff_c3[b]),
                                      cfg.shuffle_draws, tile=cfg.gallery_tile, query_tile=cfg.query_tile,
                                      **search)}
        alignment[key] = pair_alignment(Z[a], Z[b], test[a], test[b], cfg.mutual_k, cfg.alignment_max_pairs,
                                        _seed(seed, "alignment " + key))
    out = {
        "method": name,
        "config": {**asdict(cfg), "modalities": mods, "seed": seed},
        "train_pairs": ["-".join(p) for p in sorted(train_pairs)],
        "retrieval": retrieval,
        "zeroshot": zeroshot,
        "gap": gap,
        "alignment": alignment,
        "fit_info": getattr(method, "fit_info_", {}),
        "notes": notes,
    }
    return rounded(out, cfg.decimals)


def evaluate_seeds(
    runs: list[tuple[int, Mapping[str, EmbeddingTable], object, object | None]],
    train_pairs: Iterable[tuple[str, str]],
    cfg: EvaluateConfig | None = None,
    *,
    name: str | None = None,
    groups: Mapping[str, np.ndarray | None] | None = None,
    device: str = "cpu",
) -> dict:
    """Metrics of one method over seeds: runs = [(seed, tables, fitted method, baseline or None)].

    Every number is the mean over seeds; each retrieval direction also gets "seed_std", "ci" (95%
    bootstrap over queries, whole groups resampled: groups[modality] (n_test,) or None = independent
    queries), "groups", "too_small" (fewer than cfg.min_queries queries) and, with a baseline (raw),
    "vs_raw": the paired-bootstrap change on the same resamples."""
    from embridge.evaluation.bootstrap import aggregate_direction, mean_tree, query_values

    cfg = cfg or EvaluateConfig()
    cfg.check()
    outs, pers, bases = [], [], []
    for seed, tables, method, base in runs:
        per: dict = {}
        outs.append(evaluate(tables, method, train_pairs, cfg, name=name, seed=seed, device=device, per_query=per))
        pers.append(per)
        if base is not None:
            bper: dict = {}
            for key in per:
                a, b = key.split("->")
                qk, bk = row_keys(tables[a].select_split(cfg.split), tables[b].select_split(cfg.split))
                za = _transform(base, tables[a].select_split(cfg.split), "raw")
                zb = _transform(base, tables[b].select_split(cfg.split), "raw")
                retrieval_metrics(za, zb, qk, bk, ks=cfg.ks, kmax=cfg.kmax, tile=cfg.gallery_tile, query_tile=cfg.query_tile,
                                  score_budget=cfg.score_budget, backend=cfg.backend, device=device, where=f"raw {a}->{b}",
                                  per_out=bper.setdefault(key, {}))
            bases.append(bper)
    out = mean_tree(outs)
    seeds = [r[0] for r in runs]
    out["config"] = {**outs[0]["config"], "seed": seeds[0], "seeds": seeds}
    out["seeds"] = seeds
    out["bootstrap"] = {"resamples": cfg.bootstrap, "seed": cfg.bootstrap_seed, "level": 0.95,
                        "groups": {m: g is not None for m, g in (groups or {}).items()}}
    metrics = [f"R@{k}" for k in cfg.ks] + ["MRR", "mAP"]
    for key, r in out["retrieval"].items():
        a = key.split("->")[0]
        vals = [query_values(p[key], cfg.ks, cfg.kmax) for p in pers]
        if not vals[0]["valid"].any():
            continue
        base = [query_values(p[key], cfg.ks, cfg.kmax) for p in bases] if bases else None
        g = (groups or {}).get(a)
        r.update(aggregate_direction(vals, metrics, g, cfg.bootstrap, cfg.bootstrap_seed, key, base))
        r["too_small"] = bool(r["queries"] < cfg.min_queries)
    return rounded(out, cfg.decimals)


def rounded(obj, decimals: int = 6):
    """Floats rounded (NaN/Inf -> None), numpy scalars to Python, recursively."""
    if isinstance(obj, dict):
        return {str(k): rounded(v, decimals) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [rounded(v, decimals) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        x = float(obj)
        return round(x, decimals) + 0.0 if math.isfinite(x) else None  # + 0.0 turns -0.0 into 0.0
    return obj


def dumps(metrics: dict) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(metrics, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write `metrics` to `path` atomically (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, dumps(metrics).encode())
    return path
