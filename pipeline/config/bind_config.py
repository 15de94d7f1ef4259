"""The `bind:` section of params.yaml (kept free of torch, so every stage can check it cheaply)."""

from __future__ import annotations

from dataclasses import dataclass

from embridge.errors import ConfigError


@dataclass
class BindConfig:
    """The `bind:` section of params.yaml."""

    method: str = "projection"  # projection: train a head per non-anchor modality | passthrough: copy tables (a real unified model)
    hidden: int = 0  # hidden width of the head; 0 = linear head (the default keeps the emergent pair far from saturated)
    epochs: int = 30  # passes over the paired train rows (1..10000); few epochs keep the binding loose, like a real unified model
    batch_size: int = 512  # paired rows per step (full batch when the pairs fit)
    lr: float = 1e-3  # AdamW learning rate (> 0)
    weight_decay: float = 1e-4  # AdamW weight decay (>= 0)
    tau: float = 0.1  # InfoNCE temperature (> 0)

    def check(self) -> None:
        if self.method not in ("projection", "passthrough"):
            raise ConfigError(f"method = {self.method!r}: expected 'projection' or 'passthrough'")
        if self.hidden < 0:
            raise ConfigError(f"hidden = {self.hidden}: expected >= 0 (0 = linear head)")
        if not 1 <= self.epochs <= 10_000:
            raise ConfigError(f"epochs = {self.epochs}: expected 1..10000")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size = {self.batch_size}: expected >= 1")
        if self.lr <= 0 or self.tau <= 0:
            raise ConfigError(f"lr = {self.lr}, tau = {self.tau}: expected > 0")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay = {self.weight_decay}: expected >= 0")
