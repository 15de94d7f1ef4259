"""`raw`: the unified model as it is (identity, then L2 normalization)."""

from __future__ import annotations

import numpy as np
from embridge.methods.base import BridgeMethod
from embridge.store import EmbeddingTable


class Raw(BridgeMethod):
    """Identity map. Every modality must already live in the anchor's dimension (a unified space)."""

    name = "raw"
    needs_train = False

    def __init__(self) -> None:
        pass

    def _fit(self, train: dict[str, EmbeddingTable], anchor: str, pairs: list[tuple[str, str]]) -> None:
        for m in train:
            self.passthrough_ok(m)

    def _transform(self, X: np.ndarray, modality: str) -> np.ndarray:
        return X
