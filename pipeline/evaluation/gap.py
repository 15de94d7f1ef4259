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
  Representation Hypothesis"), with the same score for randomly re-paired rows as a baseline (mean
  and standard deviation over `draws` re-pairings; chance is k / (p - 1));
- c3: the same statistics as C^3's own code computes them (github yuhui-zh15/C3,
  geometry_analysis/analyze_gap.ipynb `compute_gap_statistics`; contrastive_optimization.ipynb,
  "Compute Effective Dimension"), under C^3's names: see `c3_gap_statistics`, `c3_effective_dim`.
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


def scatter_eigenvalues(X: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Eigenvalues, descending, of the d x d scatter matrix (X - mean)^T (X - mean), accumulated in
    chunks in float64. X: (n, d) -> (d,). Shared by both effective dimensions (one pass over X)."""
    n, d = X.shape
    mu = X.mean(axis=0, dtype=np.float64)
    G = np.zeros((d, d))
    for i in range(0, n, chunk):
        Xc = X[i : i + chunk].astype(np.float64) - mu
        G += Xc.T @ Xc  # (d, d)
    return np.linalg.eigvalsh(G)[::-1]


def effective_dim(X: np.ndarray, mass: float = 0.99, chunk: int = 65_536, eig: np.ndarray | None = None) -> int:
    """Smallest r with sum(s[:r]) >= mass * sum(s), s the singular values of X - mean (X: (n, d)).

    Singular values come from the eigenvalues of the d x d scatter matrix (`eig`, when already
    computed by scatter_eigenvalues); those below 1e-6 of the largest count as zero (round-off of
    the square root of eigenvalues).
    """
    eig = scatter_eigenvalues(X, chunk) if eig is None else eig
    s = np.sqrt(np.clip(eig, 0.0, None))
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


def mutual_knn(Pa: np.ndarray, Pb: np.ndarray, k: int, rng: np.random.Generator, draws: int = 10,
               **search) -> tuple[float, float, float] | None:
    """Mutual-kNN alignment of instance pairs and its shuffled-pairs baseline. Pa, Pb: (p, d).

    The baseline re-pairs row i of a with row pi(i) of b: its neighbours, renamed by pi^-1, are
    compared with a's (k / (p - 1) in expectation). One re-pairing is noisy (about +-11% at p = 80),
    so `draws` independent ones are made. Returns (score, baseline mean, baseline standard deviation
    over the draws, ddof 1; 0 for one draw); None when p <= k.
    """
    p = len(Pa)
    if p <= k:
        return None
    Na, Nb = neighbours(Pa, k, **search), neighbours(Pb, k, **search)
    base = []
    for _ in range(max(1, draws)):
        perm = rng.permutation(p)
        inv = np.empty(p, dtype=np.int64)
        inv[perm] = np.arange(p)
        base.append(overlap(Na, inv[Nb[perm]]))
    spread = float(np.std(base, ddof=1)) if len(base) > 1 else 0.0
    return overlap(Na, Nb), float(np.mean(base)), spread


def _cosine_rows(x: np.ndarray, y: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """torch.nn.functional.cosine_similarity along rows: x.y / (max(|x|, eps) max(|y|, eps)). (n, d) -> (n,)."""
    nx = np.maximum(np.linalg.norm(x, axis=-1), eps)
    ny = np.maximum(np.linalg.norm(y, axis=-1), eps)
    return np.sum(x * y, axis=-1) / (nx * ny)


def c3_gap_statistics(Pa: np.ndarray, Pb: np.ndarray, group_size: int, perms: tuple[np.ndarray, np.ndarray]
                      ) -> dict[str, float | int | None]:
    """The modality-gap statistics exactly as C^3's `compute_gap_statistics` computes them.

    Pa, Pb: (p, d) paired rows (re-normalized here, as C^3 does); perms: the two shuffles of the
    pairs C^3 draws with torch.randperm (p,) each. With diff = normalize(Pa) - normalize(Pb):
    - groups: diff[perm1], truncated to a multiple of group_size, averaged per group -> (G, d);
    - gap_length, gap_length_std: mean and std (ddof 1, torch's default) of the group-gap norms;
    - direction_consistency: mean cosine between consecutive group gaps (groups[1:], groups[:-1]);
    - orthogonality: signed mean cosine of consecutive differences of modality a's rows
      (Pa[1:] - Pa[:-1], pair order) with the mean group gap;
    - noise_direction: mean cosine between consecutive residuals r = diff[perm2] - mean(diff);
      C^3's "Noise Mean" (the mean residual) is zero by construction and is not reported.
    Statistics needing two groups (one for gap_length and orthogonality) are None without them.
    """
    A = Pa.astype(np.float64)
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)  # F.normalize
    B = Pb.astype(np.float64)
    B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-12)
    diff = A - B
    n_groups = len(diff) // group_size
    G = diff[perms[0]][: n_groups * group_size].reshape(n_groups, group_size, diff.shape[1]).mean(axis=1)
    mags = np.linalg.norm(G, axis=1)
    resid = diff[perms[1]] - diff.mean(axis=0)

    def mean_or_none(v: np.ndarray) -> float | None:
        return float(v.mean()) if len(v) else None

    return {
        "groups": int(n_groups),
        "gap_length": mean_or_none(mags),
        "gap_length_std": float(mags.std(ddof=1)) if n_groups > 1 else None,
        "direction_consistency": mean_or_none(_cosine_rows(G[1:], G[:-1])),
        "orthogonality": mean_or_none(_cosine_rows(A[1:] - A[:-1], G.mean(axis=0)[None, :])) if n_groups else None,
        "noise_direction": mean_or_none(_cosine_rows(resid[1:], resid[:-1])),
    }


def c3_effective_dim(X: np.ndarray, mass: float = 0.99, chunk: int = 65_536, eig: np.ndarray | None = None) -> int:
    """C^3's effective dimension: the smallest i with sum(s[:i]) / sum(s) > mass (strict), s the
    singular values of torch.cov(X.T) (= the absolute eigenvalues of the scatter / (n - 1): the
    scale cancels in the ratio), in descending order. X: (n, d); eig: scatter_eigenvalues(X)."""
    n, d = X.shape
    if n < 2:
        return 0
    eig = scatter_eigenvalues(X, chunk) if eig is None else eig
    s = np.sort(np.abs(eig))[::-1]  # singular values of a symmetric matrix
    if s.sum() == 0:
        return 0
    ratio = np.cumsum(s) / s.sum()
    above = np.flatnonzero(ratio > mass)
    return int(above[0] + 1) if len(above) else d


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
    c3_dims: tuple[int, int] | None = None,
    shuffle_draws: int = 10,
    **search,
) -> dict:
    """Every diagnostic for modalities a, b. Xa: (na, d), Xb: (nb, d) unit rows of tables ta, tb.

    Pairs are instance pairs (pair_id) where they exist, else class-level (`pairs` says which);
    at most `max_pairs` of them, a seeded subsample, enter the C^3 and mutual-kNN statistics.
    mutual_knn is null for class-level pairs (neighbourhoods of unrelated rows say nothing).
    effective_dims, c3_dims: (dim of a, dim of b) when already computed (they depend on one modality
    only), embridge's and C^3's definition. `c3` holds C^3's own definitions (c3_gap_statistics).
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
        "mutual_knn_shuffled_std": None,
        "mutual_knn_chance": None,
    }
    perms = (rng.permutation(len(Pa)), rng.permutation(len(Pa)))  # C^3's two torch.randperm shuffles
    c3_dims = c3_dims or (c3_effective_dim(Xa, mass), c3_effective_dim(Xb, mass))
    out["c3"] = {**c3_gap_statistics(Pa, Pb, group_size, perms), "effective_dim_a": c3_dims[0],
                 "effective_dim_b": c3_dims[1]}
    if kind == "instance":
        scores = mutual_knn(Pa, Pb, mutual_k, rng, draws=shuffle_draws, **search)
        if scores is not None:
            out["mutual_knn"], out["mutual_knn_shuffled"], out["mutual_knn_shuffled_std"] = scores
            out["mutual_knn_chance"] = mutual_k / (len(Pa) - 1)
    return out
