"""Shared frame of the closed-form methods (procrustes, linear, cca): one map per non-anchor
modality onto the anchor, fitted on its anchor pairs; C^3 collapse/corrupt options included."""

from __future__ import annotations

import warnings

import numpy as np
from embridge.errors import ConfigError
from embridge.methods.base import BridgeMethod
from embridge.methods.c3 import collapse_rows, corrupt, modality_mean
from embridge.store import EmbeddingTable


class AnchoredMap(BridgeMethod):
    """Subclasses implement ``_fit_pair(m, X_src (p, d_m), Y_tgt (p, d_a)) -> dict of arrays``
    and ``_map(X (n, d_m), state) -> (n, d_a)``. The anchor passes through (normalized, collapsed
    when ``collapse``); a modality without an anchor pair passes through too (same dim only).

    Common parameters: pairs_per_class (0 = all), seed, collapse (C^3 mean removal on every
    modality, fit and transform), corrupt_sigma (C^3 noise on the fitting inputs only).

    fit_info_ = {modality: {n_pairs, dim, rank, determined, ...}} says how well the pairs fix each
    map; an under-determined fit (fewer pairs than dimensions, or a rank below the dimension) has a
    `warning`, also raised as a UserWarning and printed by `embridge fit` / `evaluate`.
    """

    def _common_check(self) -> None:
        if self.pairs_per_class < 0:
            raise ConfigError(f"{self.name}.pairs_per_class = {self.pairs_per_class}: expected >= 0 (0 = all)")
        if self.corrupt_sigma < 0:
            raise ConfigError(f"{self.name}.corrupt_sigma = {self.corrupt_sigma}: expected >= 0")

    def _prep(self, X: np.ndarray, modality: str) -> np.ndarray:
        return collapse_rows(X, self.mean_.get(modality))

    def _fit(self, train: dict[str, EmbeddingTable], anchor: str, pairs: list[tuple[str, str]]) -> None:
        self._common_check()
        self.mean_ = {m: modality_mean(t.X) for m, t in train.items()} if self.collapse else {}
        self.maps_: dict[str, dict[str, np.ndarray]] = {}
        self.fit_info_: dict[str, dict] = {}
        rng = np.random.default_rng([self.seed, 15485863])
        Ya = self._prep(train[anchor].X, anchor)
        for m in sorted(train):
            if m == anchor:
                continue
            if tuple(sorted((m, anchor))) not in pairs:
                self.passthrough_ok(m)
                continue
            P = self.pair(train[m], train[anchor])
            X_src = corrupt(self._prep(train[m].X, m)[P.src].astype(np.float64), self.corrupt_sigma, rng)
            Y_tgt = P.targets(Ya, train[anchor].labels)
            self.maps_[m] = self._fit_pair(m, X_src, Y_tgt)

    def _fit_pair(self, modality: str, X_src: np.ndarray, Y_tgt: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def note_fit(self, modality: str, n_pairs: int, dim: int, rank: int, determined: bool, **extra) -> None:
        """Record in fit_info_ how well the pairs determine modality's map; warn when they do not."""
        info = {"n_pairs": int(n_pairs), "dim": int(dim), "rank": int(rank), "determined": bool(determined)}
        info.update({k: v for k, v in extra.items() if v is not None})
        if not determined:
            why = f"{n_pairs} pairs for {dim} dimensions" if n_pairs < dim else f"rank {rank} < {dim} dimensions"
            rest = extra.get("complement") or "the ridge decides the directions the pairs do not fix"
            info["warning"] = f"{self.name}: the fit of {modality!r} is under-determined ({why}); {rest}"
            warnings.warn(info["warning"], UserWarning, stacklevel=3)
        self.fit_info_[modality] = info

    @staticmethod
    def rank(X: np.ndarray) -> int:
        """Numerical rank of X (p, d) (singular values above 1e-9 of the largest)."""
        if len(X) == 0:
            return 0
        S = np.linalg.svd(X, compute_uv=False)
        return int(np.sum(S > 1e-9 * S[0])) if S[0] > 0 else 0

    def _map(self, X: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _transform(self, X: np.ndarray, modality: str) -> np.ndarray:
        X = self._prep(X, modality).astype(np.float64)
        if modality not in self.maps_:
            return X
        return self._map(X, self.maps_[modality])

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {f"mean/{m}": v for m, v in self.mean_.items()}
        for m, arrays in self.maps_.items():
            state.update({f"map/{m}/{k}": v for k, v in arrays.items()})
        return state

    def _set_state(self, state: dict[str, np.ndarray], info: dict) -> None:
        self.mean_ = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("mean/")}
        self.maps_ = {}
        for k, v in state.items():
            if k.startswith("map/"):
                _, m, name = k.split("/", 2)
                self.maps_.setdefault(m, {})[name] = v
