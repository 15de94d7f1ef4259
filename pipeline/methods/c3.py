"""C^3 building blocks (Zhang, Sui, Yeung-Levy, "Connect, Collapse, Corrupt", ICLR 2024):
collapse = subtract a modality's train-split mean of normalized embeddings, corrupt = Gaussian
noise on training inputs only."""

from __future__ import annotations

import numpy as np
from embridge.methods.base import l2_normalize


def modality_mean(X: np.ndarray) -> np.ndarray:
    """Mean of the L2-normalized rows. X: (n, d) -> (d,) float64 (C^3 eq. 2: mu_m)."""
    Xn = np.asarray(X, dtype=np.float64)
    Xn = Xn / np.maximum(np.linalg.norm(Xn, axis=1, keepdims=True), 1e-12)
    return Xn.mean(axis=0)


def collapse_rows(X: np.ndarray, mean: np.ndarray | None, renormalize: bool = True) -> np.ndarray:
    """normalize(x) - mean, re-normalized when asked. X: (n, d) -> (n, d) float32.
    With mean None only the normalization is applied."""
    Z = l2_normalize(X)
    if mean is None:
        return Z
    Z = Z.astype(np.float64) - mean[None, :]
    return l2_normalize(Z) if renormalize else Z.astype(np.float32)


def corrupt(X: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """x + sigma * eps, eps ~ N(0, I) (C^3 "corrupt": training inputs only). X: (n, d) -> (n, d)."""
    if sigma <= 0:
        return X
    return (X + sigma * rng.standard_normal(X.shape)).astype(X.dtype)
