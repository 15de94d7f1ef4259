"""Float32 matrix products on the CPU, on the library that is faster on this CPU's vendor.

torch.mm runs on MKL, which on this project's AMD EPYC (AVX-512) reaches about 165 GFLOP/s on two
cores; oneDNN's linear op, the one torch's compiler emits for a CPU linear layer, reaches 330-400 on
the same products (`bench/fit.py` measures both rates). On an Intel Xeon it is the other way round:
MKL's products are the faster ones (the evaluation scan's 250 x 4,167 x 512 tiles 151 against 141
GFLOP/s a core, the training heads' weight gradients 15-30% faster). So MODE "auto" runs torch's own
ops (torch.mm, F.linear: MKL) on a GenuineIntel CPU and oneDNN elsewhere, where torch has it
(`backend()`); the environment variable EMBRIDGE_CPU_GEMM ("onednn" or "torch") picks one
everywhere. The training heads (`Linear`), the contrastive loss (`mm_nt`) and the evaluation scan's
tiles (`embridge.evaluation.scan`) use it; CUDA, float64 and a torch without oneDNN run torch's own
op. The two round differently (float32 sums in another order), so fits and metrics agree across
them to float32 rounding, not bit for bit: set EMBRIDGE_CPU_GEMM to compare bits across machines.
"""

from __future__ import annotations

import os
import platform
import threading

import torch
from torch import nn
from torch.nn import functional as F

MODE = "auto"  # "auto": `backend()`'s choice by the CPU's vendor; "onednn" (where torch has it); "torch"
ENV = "EMBRIDGE_CPU_GEMM"  # overrides MODE "auto": "onednn" or "torch"
_AVAILABLE: bool | None = None
_PROBE_LOCK = threading.Lock()
_VENDOR: str | None = None


def cpu_vendor() -> str:
    """The CPU's vendor id ("GenuineIntel", "AuthenticAMD", ...; "" where it cannot be read): from
    /proc/cpuinfo on Linux, else from platform.processor(). Read once per process."""
    global _VENDOR
    if _VENDOR is None:
        vendor = ""
        try:
            with open("/proc/cpuinfo") as f:
                vendor = next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), "")
        except OSError:
            pass
        if not vendor:
            vendor = "GenuineIntel" if "GenuineIntel" in platform.processor() else ""
        _VENDOR = vendor
    return _VENDOR


def backend() -> str:
    """The CPU float32 products' library: "onednn" or "torch" (torch.mm / F.linear, on MKL). MODE
    when it is not "auto"; else EMBRIDGE_CPU_GEMM where set; else "torch" on a GenuineIntel CPU, and
    oneDNN elsewhere where torch has it (`onednn_available`). A ValueError names a bad setting."""
    mode = MODE if MODE != "auto" else os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "onednn", "torch"):
        source = f"the environment variable {ENV}" if MODE == "auto" else "embridge.gemm.MODE"
        raise ValueError(f"{source} is {mode!r}: expected 'onednn', 'torch' or 'auto'")
    if mode == "auto":
        mode = "torch" if cpu_vendor() == "GenuineIntel" else "onednn"
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
