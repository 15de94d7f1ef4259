"""Modality-gap diagnostics for one pair of modalities (C^3, Zhang et al. ICLR 2024; Liang et al. 2022).

For paired unit embeddings e_a, e_b C^3 (eq. 1) writes e_a - e_b = c_perp + eps: a constant gap
vector orthogonal to the embedding span plus alignment noise. We measure, on the test split:

- centroid_gap: ||mu_a - mu_b||, the means of all unit test embeddings (Liang et al. 2022, sec. 4);
- over groups of `group_size` paired rows (C^3 sec. 3): gap_length, the mean norm of the group gap
  g_k = mean(e_a - e_b); direction_consistency, the mean cosine of g_k with the overall gap g;
- orthogonality: mean |cos(g, e_i - e_j)| over within-modality difference vectors (0 = orthogonal),
  beside orthogonality_random, the same expectation for a uniformly random direction in R^d;
- residual_noise: mean ||(e_a - e_b) - g||, the alignment noise left after removing the gap;
- effective_dim: the number of singular values of the centered embeddings holding `mass` of their sum;
- mutual_knn: mean |N_a(i) ∩ N_b(i)| / k over instance pairs (Huh et al. 2024, "The Platonic
  Representation Hypothesis"), with the same score for randomly re-paired rows as a baseline.
"""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

from __future__ import annotations

import math

import numpy as np
from embridge.evaluation.relevance import row_pairs
from embridge.evaluation.search import knn
from embridge.store import EmbeddingTable


def centroid_gap(Xa: np.ndarray, Xb: np.ndarray) -> float:
    """||mean(Xa) - mean(Xb)||. Xa: (na, d), Xb: (nb, d) unit rows."""
    return float(np.linalg.norm(Xa.mean(axis=0, dtype=np.float64) - Xb.mean(axis=0, dtype=np.float64)))


def effective_dim(X: np.ndarray, mass: float = 0.99, chunk: int = 65_536) -> int:
    """Smallest r with sum(s[:r]) >= mass * sum(s), s the singular values of X - mean (X: (n, d)).

    Singular values come from the eigenvalues of the d x d scatter matrix, accumulated in chunks;
    those below 1e-6 of the largest count as zero (round-off of the square root of eigenvalues).
    """
    n, d = X.shape
    mu = X.mean(axis=0, dtype=np.float64)
    G = np.zeros((d, d))
    for i in range(0, n, chunk):
        Xc = X[i : i + chunk].astype(np.float64) - mu
        G += Xc.T @ Xc  # (d, d)
    s = np.sqrt(np.clip(np.linalg.eigvalsh(G)[::-1], 0.0, None))
    s[s < 1e-6 * s[0]] = 0.0  # eigenvalue round-off (~1e-16 lambda_max) is ~1e-8 s_max after the sqrt
    if s.sum() == 0:
        return 0
    return int(np.searchsorted(np.cumsum(s) / s.sum(), mass - 1e-12) + 1)


def random_abs_cosine(d: int) -> float:
    """E|cos(u, v)| for a fixed u and v uniform on the sphere in R^d: Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))."""
    return float(math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi))


def group_gaps(diff: np.ndarray, group_size: int, rng: np.random.Generator) -> np.ndarray:
    """Gap vector of each group of `group_size` pairs, in a seeded order. diff: (p, d) -> (G, d).

    A trailing partial group is dropped; fewer than group_size pairs make a single group.
    """
    order = rng.permutation(len(diff))
    n_groups = max(1, len(diff) // group_size)
    size = min(group_size, len(diff))
    return diff[order[: n_groups * size]].reshape(n_groups, size, -1).mean(axis=1)


def c3_statistics(Pa: np.ndarray, Pb: np.ndarray, Xa: np.ndarray, Xb: np.ndarray, group_size: int,
                  rng: np.random.Generator) -> dict[str, float | int]:
    """C^3 gap statistics. Pa, Pb: (p, d) paired unit rows; Xa, Xb: unit rows of each modality."""
    diff = Pa.astype(np.float64) - Pb.astype(np.float64)  # (p, d) e_a - e_b
    g = diff.mean(axis=0)  # overall gap
    g_norm = np.linalg.norm(g)
    G = group_gaps(diff, group_size, rng)  # (n_groups, d)
    G_norm = np.linalg.norm(G, axis=1)
    cos = (G @ g) / np.maximum(G_norm * g_norm, 1e-12)
    within = []
    for X in (Xa, Xb):  # within-modality difference vectors e_i - e_pi(i)
        X = X.astype(np.float64)
        dv = X - X[rng.permutation(len(X))]
        dv = dv[np.linalg.norm(dv, axis=1) > 1e-9]
        within.append(np.abs(dv @ g) / np.maximum(np.linalg.norm(dv, axis=1) * g_norm, 1e-12))
    within = np.concatenate(within)
    return {
        "groups": int(len(G)),
        "gap_length": float(G_norm.mean()),
        "gap_length_std": float(G_norm.std()),
        "direction_consistency": float(cos.mean()),
        "orthogonality": float(within.mean()) if len(within) else None,
        "orthogonality_random": random_abs_cosine(Pa.shape[1]),
        "residual_noise": float(np.linalg.norm(diff - g, axis=1).mean()),
    }


def neighbours(X: np.ndarray, k: int, **search) -> np.ndarray:
    """k nearest neighbours of each row of X (n, d) among the other rows -> int64 (n, k)."""
    n = len(X)
    _, I = knn(X, X, k + 1, **search)
    drop = I == np.arange(n)[:, None]
    drop[~drop.any(axis=1), -1] = True  # self not listed (exact duplicates): drop the last instead
    return I[~drop].reshape(n, k)


def overlap(Na: np.ndarray, Nb: np.ndarray) -> float:
    """mean_i |Na[i] ∩ Nb[i]| / k. Na, Nb: (n, k) neighbour ids."""
    return float((Na[:, :, None] == Nb[:, None, :]).any(axis=2).sum(axis=1).mean() / Na.shape[1])


def mutual_knn(Pa: np.ndarray, Pb: np.ndarray, k: int, rng: np.random.Generator, **search) -> tuple[float, float] | None:
    """Mutual-kNN alignment of instance pairs and its shuffled-pairs baseline. Pa, Pb: (p, d).

    The baseline re-pairs row i of a with row pi(i) of b: its neighbours, renamed by pi^-1, are
    compared with a's (about k / (p - 1) by chance). None when p <= k.
    """
    p = len(Pa)
    if p <= k:
        return None
    Na, Nb = neighbours(Pa, k, **search), neighbours(Pb, k, **search)
    perm = rng.permutation(p)
    inv = np.empty(p, dtype=np.int64)
    inv[perm] = np.arange(p)
    return overlap(Na, Nb), overlap(Na, inv[Nb[perm]])


def gap_diagnostics(
    Xa: np.ndarray,
    Xb: np.ndarray,
    ta: EmbeddingTable,
    tb: EmbeddingTable,
    group_size: int = 100,
    mutual_k: int = 10,
    mass: float = 0.99,
    max_pairs: int = 20_000,
    rng: np.random.Generator | None = None,
    effective_dims: tuple[int, int] | None = None,
    **search,
) -> dict:
    """Every diagnostic for modalities a, b. Xa: (na, d), Xb: (nb, d) unit rows of tables ta, tb.

    Pairs are instance pairs (pair_id) where they exist, else class-level (`pairs` says which);
    at most `max_pairs` of them, a seeded subsample, enter the C^3 and mutual-kNN statistics.
    mutual_knn is null for class-level pairs (neighbourhoods of unrelated rows say nothing).
    effective_dims: (dim of a, dim of b) when already computed (they depend on one modality only).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    ia, ib, kind = row_pairs(ta, tb)
    if len(ia) > max_pairs:
        keep = np.sort(rng.choice(len(ia), size=max_pairs, replace=False))
        ia, ib = ia[keep], ib[keep]
    Pa, Pb = Xa[ia], Xb[ib]
    out = {
        "centroid_gap": centroid_gap(Xa, Xb),
        "pairs": kind,
        "n_pairs": int(len(ia)),
        "effective_dim_a": effective_dims[0] if effective_dims else effective_dim(Xa, mass),
        "effective_dim_b": effective_dims[1] if effective_dims else effective_dim(Xb, mass),
        **c3_statistics(Pa, Pb, Xa, Xb, group_size, rng),
        "mutual_knn": None,
        "mutual_knn_shuffled": None,
    }
    if kind == "instance":
        scores = mutual_knn(Pa, Pb, mutual_k, rng, **search)
        if scores is not None:
            out["mutual_knn"], out["mutual_knn_shuffled"] = scores
    return out
