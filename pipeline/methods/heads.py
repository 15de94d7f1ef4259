"""Heads: a residual MLP initialized to the identity (for maps inside one space) and a
projection (linear or one-hidden-layer MLP) between spaces of different dimension."""

from __future__ import annotations

import torch
from embridge.gemm import Linear
from torch import nn


class ResidualMLP(nn.Module):
    """z = x + W2 gelu(W1 x + b1) + b2, W2 and b2 zero-initialized so the head starts as the
    identity. x: (n, d) -> (n, d)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(nn.functional.gelu(self.fc1(x)))


class ProjectionHead(nn.Module):
    """Linear d_in -> d_out (hidden = 0) or Linear -> GELU -> Linear. x: (n, d_in) -> (n, d_out)."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 0) -> None:
        super().__init__()
        if hidden > 0:
            self.net = nn.Sequential(Linear(d_in, hidden), nn.GELU(), Linear(hidden, d_out))
        else:
            self.net = Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_head(spec: dict) -> nn.Module:
    """A head from its JSON spec: {"kind": "residual", "dim", "hidden"} or
    {"kind": "projection", "d_in", "d_out", "hidden"} (the spec is saved in config.json)."""
    if spec["kind"] == "residual":
        return ResidualMLP(int(spec["dim"]), int(spec["hidden"]))
    if spec["kind"] == "projection":
        return ProjectionHead(int(spec["d_in"]), int(spec["d_out"]), int(spec["hidden"]))
    raise ValueError(f"unknown head kind {spec['kind']!r}")
