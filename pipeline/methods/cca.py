"""`cca`: regularized CCA per (modality, anchor) pair by one whitened SVD (no iterations), each
modality mapped into the anchor's space through its canonical pairs (Hotelling 1936; used post hoc
in "Escaping Plato's Cave", Hadgi et al. 2025)."""

from __future__ import annotations

import numpy as np
from embridge.errors import ConfigError
from embridge.methods.anchored import AnchoredMap


def inv_sqrt(C: np.ndarray) -> np.ndarray:
    """C^{-1/2} of a symmetric positive definite matrix via its eigendecomposition. C: (d, d)."""
    lam, V = np.linalg.eigh(C)
    return (V / np.sqrt(np.maximum(lam, 1e-300))) @ V.T


def regularized_cov(Xc: np.ndarray, ridge: float) -> np.ndarray:
    """Xc^T Xc / p + ridge * (trace / d) * I (ridge relative to the mean eigenvalue). Xc: (p, d)."""
    C = Xc.T @ Xc / len(Xc)
    return C + ridge * np.trace(C) / C.shape[0] * np.eye(C.shape[0])


def cca_solve(X: np.ndarray, Y: np.ndarray, k: int, ridge: float):
    """Top-k regularized canonical pairs of X (p, d_x) and Y (p, d_y).

    Whitened SVD: Cxx^{-1/2} Cxy Cyy^{-1/2} = U diag(rho) V^T; A = Cxx^{-1/2} U_k (d_x, k),
    B = Cyy^{-1/2} V_k (d_y, k), so A^T Cxx A = B^T Cyy B = I and corr(X A, Y B) = diag(rho).
    Returns A, B, rho (k,) non-increasing, mu_x, mu_y, Cyy.
    """
    mu_x, mu_y = X.mean(axis=0), Y.mean(axis=0)
    Xc, Yc = X - mu_x, Y - mu_y
    Cxx, Cyy = regularized_cov(Xc, ridge), regularized_cov(Yc, ridge)
    Cxy = Xc.T @ Yc / len(Xc)
    Wx, Wy = inv_sqrt(Cxx), inv_sqrt(Cyy)
    U, rho, Vt = np.linalg.svd(Wx @ Cxy @ Wy, full_matrices=False)
    k = min(k, len(rho))
    return Wx @ U[:, :k], Wy @ Vt[:k].T, rho[:k], mu_x, mu_y, Cyy


class CCA(AnchoredMap):
    """Map x into the anchor's space through the canonical pairs:

        u = (x - mu_x) A                 (k canonical variates of the modality)
        z = mu_y + (u * rho) B^T Cyy     (the anchor's expected position given u: E[v | u] = rho u,
                                          and y = mu_y + v B^T Cyy inverts v = (y - mu_y) B on the span)

    so every modality paired with the anchor lands in the anchor's space, where modalities never
    paired with each other meet. weight_by_corr=false drops the rho factor. The anchor passes
    through. k: number of canonical directions (clipped to the smaller dimension); ridge: relative
    regularization of both covariances. Learned state per modality: A, B_back (= Cyy B, (d_a, k)),
    rho, mu_x, mu_y.
    """

    name = "cca"

    def __init__(
        self,
        k: int = 32,
        ridge: float = 0.01,
        weight_by_corr: bool = True,
        pairs_per_class: int = 0,
        collapse: bool = False,
        corrupt_sigma: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.ridge = ridge
        self.weight_by_corr = weight_by_corr
        self.pairs_per_class = pairs_per_class
        self.collapse = collapse
        self.corrupt_sigma = corrupt_sigma
        self.seed = seed

    def _fit_pair(self, modality, X_src, Y_tgt):
        if self.k < 1:
            raise ConfigError(f"cca.k = {self.k}: expected >= 1")
        if self.ridge <= 0:
            raise ConfigError(f"cca.ridge = {self.ridge}: expected > 0 (the covariances must be invertible)")
        r = self.rank(X_src - X_src.mean(axis=0))
        self.note_fit(modality, n_pairs=len(X_src), dim=X_src.shape[1], rank=r, determined=r >= X_src.shape[1])
        A, B, rho, mu_x, mu_y, Cyy = cca_solve(X_src, Y_tgt, self.k, self.ridge)
        return {"A": A, "B_back": Cyy @ B, "rho": rho, "mu_x": mu_x, "mu_y": mu_y}

    def _map(self, X, st):
        u = (X - st["mu_x"]) @ st["A"]  # (n, k)
        if self.weight_by_corr:
            u = u * st["rho"]
        return st["mu_y"] + u @ st["B_back"].T  # (n, d_a)

    @property
    def correlations_(self) -> dict[str, np.ndarray]:
        """Canonical correlations per modality, (k,) non-increasing."""
        self.check_fitted()
        return {m: st["rho"] for m, st in self.maps_.items()}
