"""Means over seeds and 95% bootstrap intervals over queries (whole groups resampled where the queries
are not independent: a voice or speaker for audio, a template for text), and the paired bootstrap of a
change against a baseline on the same resamples."""

from __future__ import annotations

import zlib

import numpy as np

LEVEL = 0.95


def query_values(per: dict, ks, kmax: int) -> dict[str, np.ndarray]:
    """Per-query metric values of one retrieval direction (queries with a relevant item only):
    {"R@k": 0/1, "MRR": 1/rank within kmax else 0, "mAP": AP} each of shape (n_valid,), and "valid" (nq,)."""
    valid = np.asarray(per["m"]) > 0
    rank = np.asarray(per["rank"], dtype=np.float64)[valid]
    out = {f"R@{k}": (rank <= k).astype(np.float64) for k in ks}
    out["MRR"] = np.where(rank <= kmax, 1.0 / rank, 0.0)
    out["mAP"] = np.asarray(per["ap"], dtype=np.float64)[valid]
    out["valid"] = valid
    return out


def resample_counts(groups: np.ndarray | None, n: int, n_boot: int, seed: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The bootstrap's resamples of one direction as group counts: (codes (n,), C (n_boot, G)), C[b, g] the
    times group g is drawn in resample b. The same (seed, key, groups) give the same resamples for
    every method, which makes the change against a baseline a paired bootstrap."""
    if groups is None:
        codes = np.arange(n)
    else:
        _, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    G = int(codes.max(initial=-1)) + 1
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    draws = rng.integers(0, G, size=(n_boot, G)) + np.arange(n_boot)[:, None] * G
    C = np.bincount(draws.ravel(), minlength=n_boot * G).reshape(n_boot, G).astype(np.float64)
    return codes, C


def interval(values: np.ndarray, codes: np.ndarray, C: np.ndarray) -> list[float]:
    """95% percentile interval of the mean of `values` (n,) over the resamples C (ratio of group sums)."""
    G = C.shape[1]
    sums = np.bincount(codes, weights=values, minlength=G)
    counts = np.bincount(codes, minlength=G).astype(np.float64)
    stats = (C @ sums) / np.maximum(C @ counts, 1.0)
    lo, hi = np.quantile(stats, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return [float(lo), float(hi)]


def aggregate_direction(per_seed: list[dict[str, np.ndarray]], metrics: list[str], groups: np.ndarray | None,
                        n_boot: int, seed: int, key: str, base_seed: list[dict[str, np.ndarray]] | None = None) -> dict:
    """One direction over seeds: {metric: mean over seeds, "seed_std": {...}, "ci": {metric: [lo, hi]},
    "groups": G, and with a baseline "vs_raw": {metric: {"delta", "ci", "real"}}}.

    per_seed: query_values of each seed (the same queries: the test split is fixed); groups: (nq,) or None."""
    valid = per_seed[0]["valid"]
    g = None if groups is None else np.asarray(groups, dtype=object)[valid]
    codes, C = resample_counts(g, int(valid.sum()), n_boot, seed, key)
    out: dict = {"seed_std": {}, "ci": {}, "groups": int(C.shape[1])}
    if base_seed is not None:
        out["vs_raw"] = {}
    for k in metrics:
        per_query = np.mean([v[k] for v in per_seed], axis=0)  # (n,) the query's value averaged over seeds
        seed_means = [float(np.mean(v[k])) for v in per_seed]
        out[k] = float(np.mean(seed_means))
        out["seed_std"][k] = float(np.std(seed_means, ddof=1)) if len(seed_means) > 1 else 0.0
        out["ci"][k] = interval(per_query, codes, C)
        if base_seed is not None:
            delta = per_query - np.mean([v[k] for v in base_seed], axis=0)
            lo, hi = interval(delta, codes, C)
            out["vs_raw"][k] = {"delta": float(np.mean(delta)), "ci": [lo, hi], "real": bool(lo > 0 or hi < 0)}
    return out


def mean_tree(trees: list):
    """Element-wise mean of equally shaped JSON trees (numbers averaged, None if any is None, other
    leaves taken from the first)."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: mean_tree([t.get(k) if isinstance(t, dict) else None for t in trees]) for k in first}
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    if any(not isinstance(t, int | float) or isinstance(t, bool) for t in trees):
        return None
    if all(isinstance(t, int) for t in trees) and len(set(trees)) == 1:
        return first  # counts (queries, gallery) stay integers
    return float(np.mean(trees))
