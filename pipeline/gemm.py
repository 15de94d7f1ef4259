"""Float32 matrix products on the CPU through oneDNN, where torch was built with it.

torch.mm runs on MKL, which on this project's AMD EPYC (AVX-512) reaches about 165 GFLOP/s on two
cores; oneDNN's linear op, the one torch's compiler emits for a CPU linear layer, reaches 330-400 on
the same products (`bench/fit.py` measures both rates). The training heads (`Linear`), the
contrastive loss (`mm_nt`) and the evaluation scan's tiles (`embridge.evaluation.scan`) use it;
anything else (CUDA, float64, a torch without oneDNN) runs torch's own op, with the same results up
to float32 rounding.

oneDNN is the default on every CPU: the committed results and the training measurements in
`bench/RESULTS.md` were made with it, and on the AMD EPYCs it is the faster. On an Intel Xeon MKL
is the faster one for the evaluation scan (its 250 x 4,167 x 512 tiles 151 against 141 GFLOP/s a
core, a whole 10k x 200k x 512 scan 9.8 against 10.1-11.0 s) and for the heads' weight gradients
(15-30%; whole fits on it were not measured). The environment variable EMBRIDGE_CPU_GEMM=torch
runs torch's own ops (torch.mm, F.linear) instead, with other float32 roundings (`backend()`;
`MODE` does the same from code).
"""

from __future__ import annotations

import os
import threading

import torch
from embridge.errors import ConfigError
from torch import nn
from torch.nn import functional as F

MODE = "auto"  # "auto": EMBRIDGE_CPU_GEMM, else oneDNN where torch has it; "onednn"; "torch" (torch.mm / F.linear)
ENV = "EMBRIDGE_CPU_GEMM"  # "onednn" (the default) or "torch"; read where MODE is "auto"
_AVAILABLE: bool | None = None
_PROBE_LOCK = threading.Lock()


def backend() -> str:
    """The CPU float32 products' library: "onednn" or "torch" (torch.mm / F.linear, on MKL). MODE
    when it is not "auto"; else EMBRIDGE_CPU_GEMM where set; else oneDNN. oneDNN only where torch
    has it (`onednn_available`), else torch. A ConfigError names a bad setting."""
    mode = MODE if MODE != "auto" else os.environ.get(ENV, "").strip().lower() or "onednn"
    if mode not in ("onednn", "torch"):
        source = f"the environment variable {ENV}" if MODE == "auto" else "embridge.gemm.MODE"
        raise ConfigError(f"{source} is {mode!r}: expected 'onednn' or 'torch'")
    return "onednn" if mode == "onednn" and onednn_available() else "torch"


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
    runs, and raises its own clear error on a mismatch; oneDNN rejects empty operands), where
    `backend()` is oneDNN."""
    return (a.dim() == b.dim() == 2 and a.shape[1] == b.shape[1]
            and all(t.device.type == "cpu" and t.dtype == torch.float32 and t.numel() > 0 for t in (a, b))
            and backend() == "onednn")


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
