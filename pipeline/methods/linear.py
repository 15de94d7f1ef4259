"""`linear`: ridge regression of each modality onto the anchor (the simplest learned baseline)."""

from __future__ import annotations

import numpy as np
from embridge.errors import ConfigError
from embridge.methods.anchored import AnchoredMap


def ridge(X: np.ndarray, Y: np.ndarray, alpha: float) -> np.ndarray:
    """W = (X^T X + lam I)^{-1} X^T Y with lam = alpha * trace(X^T X) / d (a ridge relative to the
    mean eigenvalue, so alpha means the same at any scale). X: (p, d_x), Y: (p, d_y) -> (d_x, d_y)."""
    G = X.T @ X
    lam = alpha * np.trace(G) / G.shape[0]
    if lam == 0:
        return np.linalg.lstsq(X, Y, rcond=None)[0]
    return np.linalg.solve(G + lam * np.eye(G.shape[0]), X.T @ Y)


class Linear(AnchoredMap):
    """z = (x - mu_x) W + mu_y, W the ridge solution on the paired rows (class-level pairs: the
    class's anchor mean as target). Learned state per modality: W (d_m, d_a), mu_x, mu_y."""

    name = "linear"

    def __init__(
        self,
        alpha: float = 0.01,
        center: bool = True,
        pairs_per_class: int = 0,
        collapse: bool = False,
        corrupt_sigma: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.alpha = alpha
        self.center = center
        self.pairs_per_class = pairs_per_class
        self.collapse = collapse
        self.corrupt_sigma = corrupt_sigma
        self.seed = seed

    def _fit_pair(self, modality, X_src, Y_tgt):
        if self.alpha < 0:
            raise ConfigError(f"linear.alpha = {self.alpha}: expected >= 0")
        mu_x = X_src.mean(axis=0) if self.center else np.zeros(X_src.shape[1])
        mu_y = Y_tgt.mean(axis=0) if self.center else np.zeros(Y_tgt.shape[1])
        Xc = X_src - mu_x
        r = self.rank(Xc)
        self.note_fit(modality, n_pairs=len(X_src), dim=X_src.shape[1], rank=r, determined=r >= X_src.shape[1])
        W = ridge(Xc, Y_tgt - mu_y, self.alpha)
        return {"W": W, "mu_x": mu_x, "mu_y": mu_y}

    def _map(self, X, st):
        return (X - st["mu_x"]) @ st["W"] + st["mu_y"]
