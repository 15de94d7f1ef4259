"""C^3 building blocks (Zhang, Sui, Yeung-Levy, "Connect, Collapse, Corrupt", ICLR 2024):
collapse = subtract a modality's train-split mean of normalized embeddings, corrupt = Gaussian
noise on training inputs only."""

from __future__ import annotations

import numpy as np
from embridge.methods.base import unit_rows, unit_rows64


def modality_mean(X: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalized rows. X: (n, d) -> (d,) float64 (C^3 eq. 2: mu_m).
    Rows are added in order, block by block: the same sum as one float64 reduction over all rows."""
    X = np.asarray(X)
    if X.flags.f_contiguous and not X.flags.c_contiguous:  # numpy sums a column-major array pairwise
        Xn = X.astype(np.float64)
        return (Xn / np.maximum(np.linalg.norm(Xn, axis=1, keepdims=True), 1e-12)).mean(axis=0)
    total = np.zeros(X.shape[1], dtype=np.float64)
    for rows, U in unit_rows64(X):
        total = U.sum(axis=0) if rows.start == 0 else np.add.reduce(np.concatenate([total[None], U]), axis=0)
    return total / len(X)


def collapse_rows(X: np.ndarray, mean: np.ndarray | None, renormalize: bool = True) -> np.ndarray:
    """normalize(x) - mean, re-normalized when asked. X: (n, d) -> (n, d) float32.
    With mean None only the normalization is applied. Row-wise, block by block (`unit_rows`)."""
    return unit_rows(X, mean, renormalize)


def corrupt(X: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """x + sigma * eps, eps ~ N(0, I) (C^3 "corrupt": training inputs only). X: (n, d) -> (n, d)."""
    if sigma <= 0:
        return X
    return (X + sigma * rng.standard_normal(X.shape)).astype(X.dtype)
