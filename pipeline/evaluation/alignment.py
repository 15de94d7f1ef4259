"""Representational alignment of instance pairs as platonic-rep computes it (Huh et al. 2024, "The
Platonic Representation Hypothesis"; code: github minyoungg/platonic-rep, `metrics.py`, class
`AlignmentMetrics`): mutual_knn, cka (biased HSIC, linear kernel), unbiased_cka and cknna.

Rows i of A and B are one instance in two modalities. Kernels are the inner products K = A A^T,
L = B B^T of the rows as given (the evaluation's unit rows), in float64. Like the peer code, CKA
and CKNNA divide by sqrt(HSIC_kk HSIC_ll) + 1e-6 (that constant is kept for agreement). Every
function is dense in n (n x n kernels): callers subsample (`alignment_max_pairs`).
"""

from __future__ import annotations

import numpy as np


def _knn_mask(K: np.ndarray, k: int) -> np.ndarray:
    """1 at the k largest off-diagonal entries of each row of the kernel K (n, n), else 0: the sets of
    platonic-rep's `compute_nearest_neighbors` (diagonal -1e8) and of cknna's topk (diagonal -inf)."""
    Kh = K.copy()
    np.fill_diagonal(Kh, -np.inf)
    idx = np.argpartition(-Kh, k - 1, axis=1)[:, :k]  # the k best of each row, in any order (a set)
    M = np.zeros_like(K)
    M[np.arange(len(K))[:, None], idx] = 1.0
    return M


def _mutual(MK: np.ndarray, ML: np.ndarray, k: int) -> float:
    return float(((MK * ML).sum(axis=1) / k).mean())


def mutual_knn(A: np.ndarray, B: np.ndarray, k: int) -> float:
    """`AlignmentMetrics.mutual_knn`: mean over rows of |kNN_A(i) ∩ kNN_B(i)| / k. A, B: (n, d)."""
    return _mutual(_knn_mask(A @ A.T, k), _knn_mask(B @ B.T, k), k)


def hsic_biased(K: np.ndarray, L: np.ndarray) -> float:
    """trace(K H L H), H = I - 1/n (the original CKA's HSIC). K, L: (n, n) symmetric."""
    Kc = K - K.mean(axis=0, keepdims=True)
    Kc = Kc - Kc.mean(axis=1, keepdims=True)  # H K H
    return float(np.sum(Kc * L))  # trace(HKH L) = trace(K H L H)


def hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5), as platonic-rep's `hsic_unbiased`. K, L: (n, n), n > 3."""
    m = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    value = (np.sum(Kt * Lt.T) + Kt.sum() * Lt.sum() / ((m - 1) * (m - 2))
             - 2.0 * float(Kt.sum(axis=0) @ Lt.sum(axis=1)) / (m - 2))  # sum(Kt @ Lt) without the product
    return float(value / (m * (m - 3)))


def cka(A: np.ndarray, B: np.ndarray, unbiased: bool = False) -> float:
    """`AlignmentMetrics.cka` with kernel_metric='ip' (unbiased: `unbiased_cka`). A, B: (n, d)."""
    return _cka(A @ A.T, B @ B.T, unbiased)


def _cka(K: np.ndarray, L: np.ndarray, unbiased: bool) -> float:
    h = hsic_unbiased if unbiased else hsic_biased
    return float(h(K, L) / (np.sqrt(h(K, K) * h(L, L)) + 1e-6))


def cknna(A: np.ndarray, B: np.ndarray, k: int) -> float:
    """`AlignmentMetrics.cknna` (topk=k, unbiased=True, distance_agnostic=False): unbiased CKA restricted
    to the pairs (i, j) that are mutual k-nearest neighbours in both spaces. A, B: (n, d); k >= 2."""
    K, L = A @ A.T, B @ B.T
    return _cknna(K, L, _knn_mask(K, k), _knn_mask(L, k), k)


def _cknna(K: np.ndarray, L: np.ndarray, MK: np.ndarray, ML: np.ndarray, k: int) -> float:
    if k < 2:
        raise ValueError("CKNNA requires k >= 2")

    def similarity(K, MK, L, ML):
        mask = MK * ML
        return hsic_unbiased(mask * K, mask * L)

    kl, kk, ll = similarity(K, MK, L, ML), similarity(K, MK, K, MK), similarity(L, ML, L, ML)
    return float(kl / (np.sqrt(kk * ll) + 1e-6))


def alignment_metrics(A: np.ndarray, B: np.ndarray, k: int = 10) -> dict[str, float] | None:
    """{mutual_knn, cka, unbiased_cka, cknna, n} of instance pairs A, B: (n, d); None when n <= max(k, 3)."""
    n = len(A)
    if n <= max(k, 3):
        return None
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    K, L = A @ A.T, B @ B.T  # kernels and neighbour sets computed once, shared by the four metrics
    MK, ML = _knn_mask(K, k), _knn_mask(L, k)
    return {"n": int(n), "k": int(k), "mutual_knn": _mutual(MK, ML, k), "cka": _cka(K, L, False),
            "unbiased_cka": _cka(K, L, True), "cknna": _cknna(K, L, MK, ML, k)}


def pair_alignment(Xa: np.ndarray, Xb: np.ndarray, ta, tb, k: int = 10, max_pairs: int = 2000,
                   rng: np.random.Generator | None = None) -> dict | None:
    """alignment_metrics of the instance pairs (pair_id) of tables ta, tb whose rows are Xa (na, d),
    Xb (nb, d); at most `max_pairs` of them (a seeded subsample, sorted). None for class-level pairs."""
    from embridge.evaluation.relevance import row_pairs

    ia, ib, kind = row_pairs(ta, tb)
    if kind != "instance":
        return None
    if len(ia) > max_pairs:
        rng = rng if rng is not None else np.random.default_rng(0)
        keep = np.sort(rng.choice(len(ia), size=max_pairs, replace=False))
        ia, ib = ia[keep], ib[keep]
    return alignment_metrics(Xa[ia], Xb[ib], k)
