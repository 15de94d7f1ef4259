"""Losses as nn.Modules returning a dict of named terms ("loss" is the one to minimize)."""

from __future__ import annotations

import torch
from embridge.gemm import mm_nt
from embridge.methods.training import PositiveIndex
from torch import nn


class MultiPositiveInfoNCE(nn.Module):
    """InfoNCE with several positives per query (Oord et al. 2018; the multi-positive form of
    Khosla et al. 2020 / Tian et al. 2023): the cross-entropy between softmax(Z Y^T / tau) and the
    uniform distribution over each row's positives. Rows without a positive are left out.

    Z: (B, d) unit rows, Y: (C, d) unit rows, pos: (B, C) bool, or its PositiveIndex. One autograd node
    (`_MultiPositiveInfoNCE`): the softmax of the forward pass is the backward's gradient, minus
    1/k at each row's k positives. With value=False the loss's value is not computed (its row
    maxima and log-sum-exps: a pass over the (B, C) logits the gradient does not need) and the
    returned loss is NaN with the same gradient: the training loops ask for the value only at the
    steps they log (`EpochLog.wants_loss`).
    """

    def __init__(self, tau: float = 0.05) -> None:
        super().__init__()
        self.tau = tau

    def forward(self, Z: torch.Tensor, Y: torch.Tensor, pos: torch.Tensor | PositiveIndex,
                index: PositiveIndex | None = None, value: bool = True) -> dict[str, torch.Tensor]:
        """index: pos's PositiveIndex, when the caller has it (else computed here)."""
        if isinstance(pos, PositiveIndex):
            pos, index = None, pos
        loss = _MultiPositiveInfoNCE.apply(Z, Y, pos, 1.0 / self.tau, index, value)
        return {"loss": loss, "infonce": loss.detach()}


class _MultiPositiveInfoNCE(torch.autograd.Function):
    """loss = mean over rows i with a positive of [logsumexp_j l_ij - mean_{j in pos_i} l_ij],
    l = Z Y^T / tau. Backward: dl_ij = (softmax(l)_ij - pos_ij / k_i) / n (rows without a
    positive: 0), dZ = dl Y / tau, dY = dl^T Z / tau, from the forward's softmax, which the
    first backward turns into softmax - target in place (no (B, C) copy; kept on ctx, not saved, so
    that a retained graph's second backward reuses it)."""

    @staticmethod
    def forward(ctx, Z, Y, pos, inv_tau, index, value=True):
        logits = mm_nt(Z, Y).mul_(inv_tau)  # (B, C)
        rows, cols, count = PositiveIndex.of(pos) if index is None else index
        has = count > 0
        n_has = int(has.sum())
        if n_has == 0:
            ctx.n_has = 0
            ctx.save_for_backward(Z, Y)
            return logits.new_zeros(())
        P = torch.softmax(logits, dim=1)
        inv_k = 1.0 / count.clamp_min(1).to(logits.dtype)
        if value:
            # logsumexp_j l_ij = max_j l_ij - log softmax_i(argmax) (that softmax is at least 1/C)
            top, arg = logits.max(dim=1)
            lse = top - P.gather(1, arg[:, None]).squeeze(1).log_()
            pos_mean = torch.zeros_like(lse).index_add_(0, rows, logits[rows, cols] * inv_k[rows])
            loss = ((lse - pos_mean) * has).sum() / n_has
        else:
            loss = logits.new_full((), float("nan"))
        ctx.n_has, ctx.inv_tau, ctx.full = n_has, inv_tau, n_has == len(has)
        ctx.save_for_backward(Z, Y, rows, cols, inv_k, has)
        ctx.G, ctx.G_ready = P, False  # P becomes the backward's softmax - target in place, once
        return loss

    @staticmethod
    def backward(ctx, grad):
        if ctx.n_has == 0:
            Z, Y = ctx.saved_tensors
            return torch.zeros_like(Z), torch.zeros_like(Y), None, None, None, None
        Z, Y, rows, cols, inv_k, has = ctx.saved_tensors
        G = ctx.G
        if not ctx.G_ready:  # softmax - target, in the softmax's buffer; a retained graph's next backward reuses it
            G.index_put_((rows, cols), G[rows, cols] - inv_k[rows])
            if not ctx.full:
                G.mul_(has[:, None])
            ctx.G_ready = True
        scale = grad * (ctx.inv_tau / ctx.n_has)
        dZ = mm_nt(G, Y.T).mul_(scale) if ctx.needs_input_grad[0] else None
        dY = mm_nt(G.T, Z.T).mul_(scale) if ctx.needs_input_grad[1] else None
        return dZ, dY, None, None, None, None


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
        loss = _SquaredDistance.apply(Z, p, u if self.projection == "feature" else None)
        return {"loss": loss, "proxy": loss.detach()}


class _SquaredDistance(torch.autograd.Function):
    """mean_i ||v_i||^2 with v = P (z - p) (P = I - u u^T; u None: P = I), one autograd node.
    Backward: dz = 2 v / B (P v = v: P is a projection), dp = -dz."""

    @staticmethod
    def forward(ctx, Z, p, u):
        v = Z - p
        if u is not None:
            v = torch.addcmul(v, u, torch.linalg.vecdot(v, u, dim=1).unsqueeze(1), value=-1.0)
        ctx.save_for_backward(v)
        return torch.linalg.vecdot(v.reshape(-1), v.reshape(-1)) / len(v)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        dZ = v * (grad * (2.0 / len(v)))
        return dZ, (-dZ if ctx.needs_input_grad[1] else None), None


class CosineLoss(nn.Module):
    """1 - cos(pred, target), averaged over rows: regression on the sphere. (B, d), (B, d).
    cos as F.cosine_similarity: (x / max(|x|, eps)) . (y / max(|y|, eps)), in one autograd node."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = _OneMinusCosine.apply(pred, target, 1e-8)
        return {"loss": loss, "cosine": loss.detach()}


class _OneMinusCosine(torch.autograd.Function):
    """mean_i (1 - cos_i), cos_i = x_i . y_i / (a_i b_i), a = max(|x|, eps), b = max(|y|, eps).
    Backward: dx_i = -(g / B) (y_i / b_i - cos_i x_i / a_i) / a_i (the second term only where
    |x_i| >= eps, as F.cosine_similarity's clamped norm), and dy_i alike."""

    @staticmethod
    def forward(ctx, X, Y, eps):
        norms = [torch.linalg.vector_norm(T, dim=1) for T in (X, Y)]
        small = [nrm < eps for nrm in norms]
        a, b = (nrm.clamp_min(eps) for nrm in norms)
        cos = torch.linalg.vecdot(X, Y, dim=1) / (a * b)
        ctx.save_for_backward(X, Y, a, b, cos, *small)
        return (1 - cos).mean()

    @staticmethod
    def backward(ctx, grad):
        X, Y, a, b, cos, x_small, y_small = ctx.saved_tensors
        g = -grad / len(X)

        def d(A, B, na, nb, small):  # d cos / dA: (B / nb - cos A / na) / na
            c = (cos / na).masked_fill_(small, 0.0)
            return torch.addcmul(B / nb[:, None], A, c[:, None], value=-1.0).mul_((g / na)[:, None])

        dX = d(X, Y, a, b, x_small) if ctx.needs_input_grad[0] else None
        dY = d(Y, X, b, a, y_small) if ctx.needs_input_grad[1] else None
        return dX, dY, None
