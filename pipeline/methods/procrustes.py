"""`procrustes`: per non-anchor modality an orthogonal W from the SVD of X^T Y mapping it onto the
anchor (Schoenemann 1966; used post hoc in "Mind the Gap", Liang et al. 2022, and "Escaping
Plato's Cave", Hadgi et al. 2025).

When the pairs do not fix W (rank r of the centered cross-covariance M = X^T Y below d, e.g. r <= C - 1
with class-level pairs), every W = U_r V_r^T + U_perp Q V_perp^T solves the problem; LAPACK would pick
Q arbitrarily (and differently on another CPU). We take the solution closest to the identity (max
trace(W^T I)): Q = polar(U_perp^T I V_perp). Where the spans agree this leaves the orthogonal
complement of the determined span unchanged.
"""

from __future__ import annotations

import numpy as np
from embridge.methods.anchored import AnchoredMap

RANK_RTOL = 1e-9  # singular values of X^T Y below RANK_RTOL * the largest count as zero (not determined)


def polar(A: np.ndarray) -> np.ndarray:
    """The orthogonal polar factor of A (m, n): P Q^T from A = P S Q^T (the closest (semi-)orthogonal matrix)."""
    if A.size == 0:
        return np.zeros_like(A)
    P, _, Qt = np.linalg.svd(A, full_matrices=False)
    return P @ Qt


def orthogonal_procrustes(X: np.ndarray, Y: np.ndarray, rtol: float = RANK_RTOL) -> tuple[np.ndarray, np.ndarray, int]:
    """argmin_{W^T W = I} ||X W - Y||_F, closest to the identity when not unique.

    X: (p, d_x), Y: (p, d_y) -> W (d_x, d_y), singular values S (min(d_x, d_y),), rank r of X^T Y.
    With X^T Y = U S V^T (full SVD) and r singular values above rtol * S[0]: W = U_r V_r^T
    + U_perp Q V_perp^T, Q = polar(U_perp^T E V_perp), E the (rectangular) identity; for r =
    min(d_x, d_y) this is U V^T (scipy.linalg.orthogonal_procrustes).
    """
    dx, dy = X.shape[1], Y.shape[1]
    U, S, Vt = np.linalg.svd(X.T @ Y, full_matrices=True)
    r = int(np.sum(S > rtol * S[0])) if len(S) and S[0] > 0 else 0
    W = U[:, :r] @ Vt[:r]
    if r < min(dx, dy):
        Up, Vp = U[:, r:], Vt[r:].T  # (d_x, d_x - r), (d_y, d_y - r)
        W = W + Up @ polar(Up.T @ np.eye(dx, dy) @ Vp) @ Vp.T
    return W, S, r


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
        W, S, r = orthogonal_procrustes(Xc, Yc)
        s = S.sum() / max((Xc**2).sum(), 1e-12) if self.scale else 1.0
        d = min(W.shape)
        self.note_fit(modality, n_pairs=len(X_src), dim=int(X_src.shape[1]), rank=r, determined=r >= d,
                      complement=None if r >= d else f"{d - r} of {d} directions not fixed by the pairs: "
                      f"the rotation closest to the identity is used there")
        return {"W": W, "mu_x": mu_x, "mu_y": mu_y, "scale": np.array([s])}

    def _map(self, X, st):
        return st["scale"][0] * (X - st["mu_x"]) @ st["W"] + st["mu_y"]
