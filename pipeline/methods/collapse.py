"""`collapse` (C^3): subtract each modality's train-split mean of normalized embeddings, then
re-normalize (flag). Training-free; needs no pairs."""

from __future__ import annotations

import numpy as np
from embridge.methods.base import BridgeMethod
from embridge.methods.c3 import collapse_rows, modality_mean
from embridge.store import EmbeddingTable


class Collapse(BridgeMethod):
    """C^3 collapse (Zhang et al., ICLR 2024, section 4): e_m -> normalize(e_m - mu_m).

    renormalize: re-normalize after subtracting the mean (default true). With false the output
    is the centered vector, *not* unit length: the only exception to the unit-row contract.
    Learned state: mean_ = {modality: (d,) float64}.
    """

    name = "collapse"

    def __init__(self, renormalize: bool = True) -> None:
        self.renormalize = renormalize

    def _fit(self, train: dict[str, EmbeddingTable], anchor: str, pairs: list[tuple[str, str]]) -> None:
        for m in train:
            self.passthrough_ok(m)
        self.mean_ = {m: modality_mean(t.X) for m, t in train.items()}

    def _transform(self, X: np.ndarray, modality: str) -> np.ndarray:
        return collapse_rows(X, self.mean_[modality], renormalize=True)

    def transform(self, X: np.ndarray, modality: str) -> np.ndarray:
        Z = super().transform(X, modality)  # unit rows of normalize(x) - mu
        if self.renormalize:
            return Z
        return collapse_rows(X, self.mean_[modality], renormalize=False)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {f"mean/{m}": v for m, v in self.mean_.items()}

    def _set_state(self, state: dict[str, np.ndarray], info: dict) -> None:
        self.mean_ = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("mean/")}
