"""`procrustes`: per non-anchor modality an orthogonal W from the SVD of X^T Y mapping it onto the
anchor (Schoenemann 1966; used post hoc in "Mind the Gap", Liang et al. 2022, and "Escaping
Plato's Cave", Hadgi et al. 2025)."""

from __future__ import annotations

import numpy as np
from embridge.methods.anchored import AnchoredMap


def orthogonal_procrustes(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """argmin_{W^T W = I} ||X W - Y||_F. X: (p, d_x), Y: (p, d_y) -> W (d_x, d_y), singular values.

    With X^T Y = U S V^T, W = U V^T (thin SVD, so d_x != d_y gives a semi-orthogonal W)."""
    U, S, Vt = np.linalg.svd(X.T @ Y, full_matrices=False)
    return U @ Vt, S


class Procrustes(AnchoredMap):
    """z = s * (x - mu_x) W + mu_y with W orthogonal (center: mu from the paired rows, else 0;
    scale: the least-squares global scale s = trace(S) / ||X_c||_F^2, else 1).

    Class-level pairs use the class's anchor mean as target. Learned state per modality:
    W (d_m, d_a), mu_x (d_m,), mu_y (d_a,), scale (1,).
    """

    name = "procrustes"

    def __init__(
        self,
        center: bool = True,
        scale: bool = False,
        pairs_per_class: int = 0,
        collapse: bool = False,
        corrupt_sigma: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.center = center
        self.scale = scale
        self.pairs_per_class = pairs_per_class
        self.collapse = collapse
        self.corrupt_sigma = corrupt_sigma
        self.seed = seed

    def _fit_pair(self, modality, X_src, Y_tgt):
        mu_x = X_src.mean(axis=0) if self.center else np.zeros(X_src.shape[1])
        mu_y = Y_tgt.mean(axis=0) if self.center else np.zeros(Y_tgt.shape[1])
        Xc, Yc = X_src - mu_x, Y_tgt - mu_y
        W, S = orthogonal_procrustes(Xc, Yc)
        s = S.sum() / max((Xc**2).sum(), 1e-12) if self.scale else 1.0
        return {"W": W, "mu_x": mu_x, "mu_y": mu_y, "scale": np.array([s])}

    def _map(self, X, st):
        return st["scale"][0] * (X - st["mu_x"]) @ st["W"] + st["mu_y"]
