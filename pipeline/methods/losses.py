"""Losses as nn.Modules returning a dict of named terms ("loss" is the one to minimize)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class MultiPositiveInfoNCE(nn.Module):
    """InfoNCE with several positives per query (Oord et al. 2018; the multi-positive form of
    Khosla et al. 2020 / Tian et al. 2023): the cross-entropy between softmax(Z Y^T / tau) and the
    uniform distribution over each row's positives. Rows without a positive are left out.

    Z: (B, d) unit rows, Y: (C, d) unit rows, pos: (B, C) bool.
    """

    def __init__(self, tau: float = 0.05) -> None:
        super().__init__()
        self.tau = tau

    def forward(self, Z: torch.Tensor, Y: torch.Tensor, pos: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = Z @ Y.T / self.tau  # (B, C)
        has = pos.any(dim=1)
        n_has = int(has.sum())
        if n_has == 0:
            loss = logits.sum() * 0.0
        else:
            if n_has < len(has):  # rows without a positive left out (no copy when every row has one)
                logits, pos = logits[has], pos[has]
            logp = F.log_softmax(logits, dim=1)
            target = pos.float()
            target = target / target.sum(dim=1, keepdim=True)
            loss = -(target * logp).sum(dim=1).mean()
        return {"loss": loss, "infonce": loss.detach()}


def project_off(V: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """P v = v - u (u . v) with P = I - u u^T per row. V, u: (B, d), u unit rows."""
    return V - u * (V * u).sum(dim=1, keepdim=True)


class ProxyLoss(nn.Module):
    """Alignment to the bridge anchor p (EmergentBridge, our reading of arXiv 2604.11043):

    feature:  ||P z - P p||^2, P = I - u u^T   (only the part orthogonal to the anchor direction u:
                                                its gradient 2 P (z - p) has no component along u)
    none:     ||z - p||^2                      (the naive proxy; also used by projection=gradient,
                                                which projects the parameter gradient instead)
    Z, p: (B, d) unit rows; u: (B, d) unit rows. Averaged over rows.
    """

    def __init__(self, projection: str = "feature") -> None:
        super().__init__()
        self.projection = projection

    def forward(self, Z: torch.Tensor, p: torch.Tensor, u: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.projection == "feature":
            Z, p = project_off(Z, u), project_off(p, u)
        loss = ((Z - p) ** 2).sum(dim=1).mean()
        return {"loss": loss, "proxy": loss.detach()}


class CosineLoss(nn.Module):
    """1 - cos(pred, target), averaged over rows: regression on the sphere. (B, d), (B, d)."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = (1 - F.cosine_similarity(pred, target, dim=1, eps=1e-8)).mean()
        return {"loss": loss, "cosine": loss.detach()}
