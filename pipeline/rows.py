"""Row-wise passes over float32 embeddings in C (`_rowsc.c`, built by setup.py where a C compiler
is), with numpy's bits: rows divided by their float64 norm (`l2_normalize`, `collapse_rows`) and the
float64 sum of squares of each row (the NaN/Inf and zero-row checks). Each function answers False
or None where the C path does not apply (not built, not float32, a column stride other than 1), and
the caller runs its numpy version, which gives the same results."""

from __future__ import annotations

import ctypes

import numpy as np
from embridge.native import load_c

_P, _I = ctypes.c_void_p, ctypes.c_int64
_UNIT = load_c("embridge._rowsc", "embridge_unit_rows", (_P, _I, _I, _I, _P, ctypes.c_int, ctypes.c_double, _P, _I),
               ctypes.c_int)
_SUMSQ = load_c("embridge._rowsc", "embridge_row_sumsq", (_P, _I, _I, _I, _P), None)
USE_C = _UNIT is not None and _SUMSQ is not None  # tests switch it off to run the numpy versions


def _row_stride(X: np.ndarray) -> int | None:
    """Float32 elements between X's rows, where C can read X (a 2-D float32 array of unit column
    stride, non-negative row stride and aligned numbers), else None."""
    if not USE_C or X.dtype != np.float32 or X.ndim != 2 or not X.flags.aligned:
        return None
    s0, s1 = X.strides
    if (s1 != 4 and X.shape[1] > 1) or s0 < 0 or s0 % 4:
        return None
    return s0 // 4


def unit_rows_c(X: np.ndarray, out: np.ndarray, mean: np.ndarray | None, renormalize: bool, eps: float) -> bool:
    """out = X's rows / max(their float64 norm, eps) as float32; with mean (d,): that minus mean,
    re-normalized when asked (C^3's collapse), as `methods.c3.collapse_rows`. out: a C-contiguous
    float32 array of X's shape. False (nothing written) where C cannot run it."""
    ld = _row_stride(X)
    if ld is None or out.dtype != np.float32 or out.shape != X.shape or not out.flags.c_contiguous:
        return False
    if mean is not None:
        mean = np.ascontiguousarray(mean, dtype=np.float64)  # numpy's float64 - float32 mean widens it exactly
        if mean.shape != (X.shape[1],):
            return False  # numpy raises its broadcasting error
    n, d = X.shape
    mp = None if mean is None else mean.ctypes.data
    if _UNIT(X.ctypes.data, n, d, ld, mp, int(bool(renormalize)), float(eps), out.ctypes.data, d) != 0:
        raise MemoryError(f"unit rows: no memory for a row of {d} float64 numbers")
    return True


def row_sumsq(X: np.ndarray) -> np.ndarray | None:
    """The float64 sum of squares of each row of a float32 (n, d) array: (n,), NaN/Inf where the row
    holds NaN or Inf, 0 where it holds only zeros. None where C cannot run it."""
    ld = _row_stride(X)
    if ld is None:
        return None
    out = np.empty(X.shape[0], dtype=np.float64)
    _SUMSQ(X.ctypes.data, X.shape[0], X.shape[1], ld, out.ctypes.data)
    return out
