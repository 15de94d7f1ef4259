"""Float32 matrix products on the CPU through oneDNN, where torch was built with it.

torch.mm runs on MKL, which on this project's AMD EPYC (AVX-512) reaches about 165 GFLOP/s on two
cores; oneDNN's linear op, the one torch's compiler emits for a CPU linear layer, reaches 330-400 on
the same products (`bench/fit.py` measures both rates). The training heads (`Linear`), the
contrastive loss (`mm_nt`) and the evaluation scan's tiles (`embridge.evaluation.scan`) use it;
anything else (CUDA, float64, a torch without oneDNN, `MODE = "torch"`) runs torch's own op, with
the same results up to float32 rounding.
"""

from __future__ import annotations

import threading

import torch
from torch import nn
from torch.nn import functional as F

MODE = "auto"  # "auto": oneDNN for CPU float32 products where torch has it; "torch": torch.mm / F.linear
_AVAILABLE: bool | None = None
_PROBE_LOCK = threading.Lock()


def onednn_available() -> bool:
    """Whether torch's oneDNN linear op exists and computes here (probed once per process, under a
    lock: threads asking while it runs wait for its answer. It used to publish False before
    probing, so the evaluation scan's second worker, asking during the first one's probe, scored
    its first tiles with torch.mm: other roundings than the rest of the scan, which changed an AP
    in the first scan of a process.)"""
    global _AVAILABLE
    if _AVAILABLE is None:
        with _PROBE_LOCK:
            if _AVAILABLE is None:
                ok = False
                try:
                    if torch.backends.mkldnn.is_available():
                        x = torch.ones(2, 3)
                        ok = bool(torch.equal(onednn_linear(x, x), torch.full((2, 2), 3.0)))
                except (AttributeError, RuntimeError):  # an op renamed or missing in another torch build
                    pass
                _AVAILABLE = ok
    return _AVAILABLE


def onednn_linear(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """a @ b.T (+ bias) by oneDNN; 2-D CPU float32, strided views allowed; no autograd."""
    return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")


def _use_onednn(a: torch.Tensor, b: torch.Tensor) -> bool:
    """oneDNN for a @ b.T of non-empty 2-D CPU float32 operands of matching width (else torch's op
    runs, and raises its own clear error on a mismatch; oneDNN rejects empty operands), in MODE "auto"."""
    return (MODE == "auto" and onednn_available() and a.dim() == b.dim() == 2 and a.shape[1] == b.shape[1]
            and all(t.device.type == "cpu" and t.dtype == torch.float32 and t.numel() > 0 for t in (a, b)))


def mm_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T without autograd: (m, k), (n, k) -> (m, n)."""
    return onednn_linear(a, b) if _use_onednn(a, b) else torch.mm(a, b.T)


class _Linear(torch.autograd.Function):
    """y = x W^T + b on oneDNN; backward dx = dy W, dW = dy^T x, db = sum_rows dy, the products also on oneDNN."""

    @staticmethod
    def forward(ctx, x, W, b):
        ctx.save_for_backward(x, W)
        ctx.has_bias = b is not None
        return onednn_linear(x, W, b)

    @staticmethod
    def backward(ctx, dy):
        x, W = ctx.saved_tensors
        need_x, need_W, need_b = ctx.needs_input_grad
        dx = onednn_linear(dy, W.T) if need_x else None
        dW = None
        if need_W:  # dy^T x; where dy is the wider operand, (x^T dy)^T from the strided views instead of
            #   a copy of dy's transpose: the same bits, 1.95 against 2.67 ms at 1024 x 1024 -> 256 (Xeon).
            #   Made contiguous: torch's fused AdamW steps a strided gradient as if laid out like W
            wide = dy.shape[1] > x.shape[1]
            dW = onednn_linear(x.T, dy.T).T.contiguous() if wide else onednn_linear(dy.T.contiguous(), x.T)
        db = dy.sum(0) if ctx.has_bias and need_b else None
        return dx, dW, db


def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear with autograd, on oneDNN for 2-D CPU float32 inputs."""
    if _use_onednn(x, W):
        return _Linear.apply(x, W, b)
    return F.linear(x, W, b)


class Linear(nn.Linear):
    """nn.Linear (same parameters, same state dict) whose product runs through `linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
