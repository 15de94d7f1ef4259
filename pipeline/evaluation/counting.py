"""Compiled counting kernel of the fused scan (numba): for every score of a tile, the bucket of its
query's sorted relevant scores it falls into, in one pass that also finds each row's maximum.

`count_rows(S, T, m, out)` adds C[q, j] = #{g : S[q, g] >= T[q, j]} to `out` and returns the row
maxima of S; it replaces sorting every tile row (numpy's sort path, about 3x slower at d = 512).
Per score: its bin on a uniform grid of G = GRID_PER_RELEVANT * m bins (at most MAX_GRID) between the smallest and
the largest threshold, computed by one monotone function for scores and thresholds alike, gives the
number of thresholds in lower bins (all below the score); the thresholds of its own bin, usually
none, are compared exactly in float32. So the counts are exact whatever the float64 rounding of the
grid (ties included: s >= t counts, -inf never does), with no data-dependent branch per score.
A row with at most COMPARE_KERNEL_MAX thresholds is counted instead by vectorized comparison passes
over each chunk of its scores, four thresholds a pass, skipping the thresholds above the chunk's
maximum (about 2.3 ns per score at 60 thresholds, the grid 5-7 ns).
Without numba (`HAVE_NUMBA` False) the scan sorts rows in numpy.
"""

from __future__ import annotations

import atexit
import threading

import numpy as np

GRID_PER_RELEVANT = 32  # grid bins per relevant score: most bins hold none, so most scores need no comparison
MAX_GRID = 1 << 16  # at most this many bins per row (the look-up table stays in cache)
CHUNK = 512  # scores binned (or compared) per vectorized pass
COMPARE_KERNEL_MAX = 96  # rows with at most this many thresholds: a comparison pass per threshold (0.05 ns per
#                   score and threshold, vectorized) instead of the grid (5-7 ns per score at any count)

try:  # numba is a dependency; the numpy path below it stays for environments that lack it
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False


def _count_rows(S, T, m, out, grid_per_relevant, max_grid, compare_max):
    t, w = S.shape
    row_max = np.full(t, -np.inf, dtype=np.float32)
    bins = np.empty(CHUNK, dtype=np.int32)
    chunk = np.empty(CHUNK, dtype=np.float32)
    zero = np.float32(0.0)
    for i in range(t):
        mi = m[i]
        Si = S[i]
        mx = np.float32(-np.inf)
        if mi == 0:
            for g in range(w):
                mx = max(mx, Si[g])
            row_max[i] = mx
            continue
        Ti = T[i]
        if mi <= compare_max:  # few thresholds: vectorized comparison passes, chunk by chunk (in L1)
            for c0 in range(0, w, CHUNK):
                n = min(CHUNK, w - c0)
                cmx = np.float32(-np.inf)
                for g in range(n):  # a contiguous copy: the comparison loops below vectorize on it
                    s = Si[c0 + g]
                    chunk[g] = s
                    cmx = max(cmx, s)
                mx = max(mx, cmx)
                jn = 0  # thresholds above the chunk's maximum count nothing in it (T ascending)
                while jn < mi and Ti[jn] <= cmx:
                    jn += 1
                j = 0
                while j + 4 <= jn:  # four thresholds per pass: one load of each score feeds four compares
                    t0, t1, t2, t3 = Ti[j], Ti[j + 1], Ti[j + 2], Ti[j + 3]
                    a0 = np.int32(0)
                    a1 = np.int32(0)
                    a2 = np.int32(0)
                    a3 = np.int32(0)
                    for g in range(n):
                        s = chunk[g]
                        a0 += np.int32(s >= t0)
                        a1 += np.int32(s >= t1)
                        a2 += np.int32(s >= t2)
                        a3 += np.int32(s >= t3)
                    out[i, j] += a0
                    out[i, j + 1] += a1
                    out[i, j + 2] += a2
                    out[i, j + 3] += a3
                    j += 4
                while j < jn:
                    tj = Ti[j]
                    c = np.int32(0)
                    for g in range(n):
                        c += np.int32(chunk[g] >= tj)
                    out[i, j] += c
                    j += 1
            row_max[i] = mx
            continue
        lo = Ti[0]
        G = min(grid_per_relevant * mi, max_grid)
        Gf = np.float32(G)
        span = np.float64(Ti[mi - 1]) - np.float64(lo)
        # finite and > 0 always, so -inf maps to bin 0 and nothing to NaN
        scale = np.float32(min(G / span, 1e30)) if span > 0 else np.float32(1.0)
        # bin(v) = clamp(trunc((v - lo) * scale), 0, G), one float32 formula for scores and thresholds, is
        # monotone in v: thresholds in lower bins are < s, in higher bins > s; only s's own bin is compared
        lut = np.zeros(G + 2, dtype=np.int32)  # lut[b] = #thresholds in bins < b
        Tp = np.empty(mi + 1, dtype=np.float32)  # the thresholds with a +inf sentinel
        Tp[:mi] = Ti[:mi]
        Tp[mi] = np.inf
        for j in range(mi):
            lut[np.int32(min(max((Ti[j] - lo) * scale, zero), Gf)) + 1] += 1
        for b in range(1, G + 2):
            lut[b] += lut[b - 1]
        hist = np.zeros((4, mi + 1), dtype=np.int64)  # 4 interleaved histograms: no store-to-load chain
        for c0 in range(0, w, CHUNK):
            n = min(CHUNK, w - c0)
            for g in range(n):  # vectorized: bins and the row maximum
                s = Si[c0 + g]
                mx = max(mx, s)
                bins[g] = np.int32(min(max((s - lo) * scale, zero), Gf))
            for g in range(n):
                s = Si[c0 + g]
                b = bins[g]
                c = lut[b]
                c += Tp[c] <= s  # no branch: the next threshold, if outside s's bin, is > s
                if c < lut[b + 1]:  # rare: a second threshold in s's bin
                    while Tp[c] <= s:
                        c += 1
                hist[g & 3, c] += 1
        row_max[i] = mx
        acc = 0
        for k in range(mi, 0, -1):  # #scores >= T[k - 1] = #scores with at least k thresholds <= them
            acc += hist[0, k] + hist[1, k] + hist[2, k] + hist[3, k]
            out[i, k - 1] += acc
    return row_max


if HAVE_NUMBA:
    try:  # compiled once, cached beside the module (or in the user's cache directory)
        _count_rows_jit = njit(nogil=True, cache=True)(_count_rows)
    except RuntimeError:  # no writable cache location: compile in every process instead
        _count_rows_jit = njit(nogil=True)(_count_rows)


def count_rows(S: np.ndarray, T: np.ndarray, m: np.ndarray, out: np.ndarray,
               compare_max: int = COMPARE_KERNEL_MAX) -> np.ndarray:
    """out[q, j] += #{g : S[q, g] >= T[q, j]} for j < m[q]; returns the row maxima of S.

    S: (t, w) float32 (-inf = not counted; any strides), T: (t, mm) float32, each row's first m[q]
    entries ascending (+inf allowed: counted 0); m: (t,) int64; out: (t, mm) int64. Rows with at most
    `compare_max` thresholds are counted by comparisons, the others on the grid (the same counts).
    Needs numba (`HAVE_NUMBA`)."""
    T = np.ascontiguousarray(T, dtype=np.float32)
    m = np.minimum(m, (T < np.inf).sum(axis=1)).astype(np.int64)  # +inf thresholds: nothing scores >= them
    return _count_rows_jit(S, T, m, out, GRID_PER_RELEVANT, MAX_GRID, compare_max)


def _warm() -> None:
    """Load (or compile) the kernel for the two array layouts the scan passes (a whole tile, and
    a tile's column slice), so that the first scan does not wait for it."""
    S = np.zeros((1, 2), dtype=np.float32)
    T, m = np.zeros((1, 1), dtype=np.float32), np.ones(1, dtype=np.int64)
    for tile in (S, S[:, 1:]):
        count_rows(tile, T, m, np.zeros((1, 1), dtype=np.int64))


_WARMUP: threading.Thread | None = None
_WARMUP_LOCK = threading.Lock()


def warm_up() -> None:
    """Start loading the kernel in a background thread, once per process (numba needs about 0.4 s
    to load its cached kernel in a new process): callers start it before work the load can overlap
    (reading tables, the scan's first sgemms); a call to the kernel that comes first waits for it
    inside numba. The thread is joined at exit, so the interpreter never stops in the middle of it."""
    global _WARMUP
    with _WARMUP_LOCK:
        if _WARMUP is not None or not HAVE_NUMBA:
            return
        _WARMUP = threading.Thread(target=_warm, name="embridge-numba-warmup", daemon=True)
        _WARMUP.start()
        atexit.register(_WARMUP.join)
