"""Zero-shot classification against class prototypes of another modality (CLIP-style, Radford et al. 2021).

A modality's prototype of class c is the mean of its L2-normalized (transformed) embeddings of
class c on the prototype split (train), re-normalized. Against the text modality these are the
text-prompt prototypes; against any other modality, the emergent version. A test row is correct
at top-k when its class is among the k best-scoring prototypes; ties are pessimistic (a tied wrong
class ranks first), and a class with no prototype is always a miss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def prototypes(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class prototypes. X: (n, d) unit rows, labels: int (n,), -1 ignored.

    Returns P float32 (C, d) unit rows and classes int64 (C,) (sorted class ids with >= 1 row).
    """
    keep = labels >= 0
    classes, inv = np.unique(labels[keep], return_inverse=True)
    sums = np.zeros((len(classes), X.shape[1]), dtype=np.float64)
    np.add.at(sums, inv, X[keep].astype(np.float64))
    means = sums / np.bincount(inv, minlength=len(classes))[:, None]
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return (means / np.maximum(norms, 1e-12)).astype(np.float32), classes.astype(np.int64)


def class_ranks(X: np.ndarray, labels: np.ndarray, P: np.ndarray, classes: np.ndarray, tile: int = 65_536) -> np.ndarray:
    """Pessimistic 0-based rank of each row's true class among the prototypes.

    X: (n, d), labels: (n,) >= 0, P: (C, d), classes: (C,). Returns int64 (n,); rank = C (a miss
    at any k <= C) where the row's class has no prototype.
    """
    col = np.searchsorted(classes, labels)
    has = (col < len(classes)) & (classes[np.minimum(col, len(classes) - 1)] == labels)
    ranks = np.full(len(labels), len(classes), dtype=np.int64)
    for i0 in range(0, len(labels), tile):
        sl = slice(i0, i0 + tile)
        S = X[sl].astype(np.float32) @ P.T  # (t, C) cosine scores
        c = np.where(has[sl], col[sl], 0)
        true = S[np.arange(S.shape[0]), c]
        r = (S >= true[:, None]).sum(axis=1) - 1  # other classes scoring >= the true one
        ranks[sl] = np.where(has[sl], r, len(classes))
    return ranks


def zeroshot_accuracy(
    X: np.ndarray, labels: np.ndarray, P: np.ndarray, classes: np.ndarray, ks: Sequence[int] = (1, 5)
) -> dict[str, float] | None:
    """{"top1": .., "top5": ..} over the rows of X (n, d) with a label >= 0; None if there are none."""
    keep = labels >= 0
    if not keep.any() or len(classes) == 0:
        return None
    ranks = class_ranks(X[keep], labels[keep], P, classes)
    return {f"top{k}": float(np.mean(ranks < k)) for k in ks}
