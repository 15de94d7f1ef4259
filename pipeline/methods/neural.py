"""Shared frame of the torch methods (cycle_mlp, emergentbridge): C^3 preprocessing, device,
heads kept as {name: module} with JSON specs, saved as safetensors arrays."""

from __future__ import annotations

import numpy as np
import torch
from embridge.config.device import resolve_device
from embridge.methods.base import BridgeMethod
from embridge.methods.c3 import collapse_rows, modality_mean
from embridge.methods.heads import build_head
from embridge.methods.training import load_module_state, module_state, seeded
from embridge.store import EmbeddingTable


class NeuralMethod(BridgeMethod):
    """Subclasses set ``self.heads_`` / ``self.specs_`` in ``_fit`` via ``_new_head`` and implement
    ``_transform_t(X: tensor (n, d), modality) -> tensor (n, d_a)``."""

    def _device(self) -> torch.device:
        return resolve_device(self.device)

    def _prepare(self, train: dict[str, EmbeddingTable]) -> None:
        self.mean_ = {m: modality_mean(t.X) for m, t in train.items()} if self.collapse else {}
        self.heads_: dict[str, torch.nn.Module] = {}
        self.specs_: dict[str, dict] = {}

    def _prep(self, X: np.ndarray, modality: str) -> np.ndarray:
        """C^3 collapse (when enabled) and L2 normalization. X: (n, d) -> (n, d) float32."""
        return collapse_rows(X, self.mean_.get(modality))

    def _new_head(self, name: str, spec: dict, seed_offset: int) -> torch.nn.Module:
        dev = self._device()
        with seeded(self.seed * 1000 + seed_offset, dev):
            head = build_head(spec).to(dev)
        self.heads_[name], self.specs_[name] = head, spec
        return head

    def _transform(self, X: np.ndarray, modality: str) -> np.ndarray:
        from embridge.methods.training import apply

        X = self._prep(X, modality)
        for h in self.heads_.values():
            h.eval()
        return apply(lambda x: self._transform_t(x, modality), X, self._device())

    def _transform_t(self, X: torch.Tensor, modality: str) -> torch.Tensor:
        raise NotImplementedError

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {f"mean/{m}": v for m, v in self.mean_.items()}
        for name, h in self.heads_.items():
            state.update(module_state(f"head/{name}", h))
        return state

    def _state_info(self) -> dict:
        return {"heads": self.specs_}

    def _set_state(self, state: dict[str, np.ndarray], info: dict) -> None:
        self.mean_ = {k.split("/", 1)[1]: v for k, v in state.items() if k.startswith("mean/")}
        dev = self._device()
        self.specs_ = dict(info.get("heads", {}))
        self.heads_ = {n: load_module_state(f"head/{n}", build_head(s), state, dev) for n, s in self.specs_.items()}
