"""Compiled kernels of the fused scan (numba, and an optional C kernel): for every score of a tile,
the bucket of its query's sorted relevant scores it falls into (the tile's chunk and row maxima come
from numpy's reduceat, which vectorizes where numba's float maximum does not, or from the C kernel);
and the running top-k merge (`merge_topk`).

`Counter(T, m)` holds one query block's thresholds; `add(S, out, top)` takes each score tile of the block,
merges it into the running top-k lists `top` when given, and returns its row maxima, `finish(out)` adds C[q, j] = #{g : S[q, g] >= T[q, j]} over all the tiles
to `out` (`count_rows` does one tile). It replaces sorting every tile row (numpy's sort path).
Per score: its bin on a uniform grid of G = GRID_PER_RELEVANT * m bins (at most MAX_GRID) between
the smallest and the largest threshold, computed by one monotone function for scores and thresholds
alike, goes into the row's bin histogram; thresholds in lower bins are all below the score, in
higher bins all above, and the thresholds of its own bin, usually none, are compared exactly in
float32 (into a difference array of exact corrections). So the counts are exact whatever the
float64 rounding of the grid (ties included: s >= t counts, -inf never does). The grid and the
histograms live for the whole block, so the per-row work (building the grid, summing the histogram
from the top) is done once per block, not once per tile; a bin holding thresholds starts its count
at -OCCUPIED, so the hot loop reads one array. In the scan at 10k x 200k x 512 with ~230 thresholds
a row (two workers): 9.1 s of counting for 2.05e9 scores, 4.4 ns each, against 11.9 s (5.8 ns) when
each 4,096-score tile row built its own look-up table.
A row with at most `default_compare_max()` thresholds is counted instead by comparisons:
- where the C extension `_countc` (built by setup.py; `_countc.c`) loaded and the CPU has AVX-512F
  (`USE_C`), up to C_COMPARE_MAX thresholds, by AVX-512 comparison passes that, every
  COMPACT_EVERY thresholds, compact the chunk to the scores at or above the next threshold (a score
  below it counts for none of the higher ones); a row of more than C_TREE_MIN thresholds instead
  places each score in a 16-wide tree of its thresholds (one vector compare a level, 1 to 4 levels)
  and counts from the histogram of the places; it also finds every row's maximum, so no reduceat
  pass is made, and merges each chunk whose maximum can enter into the row's top-k list while the
  chunk is in cache, so the scan passes over a tile once (3k x 60k x 512, class relevance, an Intel
  Xeon: 0.24 thread-seconds counting and merging, against 0.22 + 0.10 for counting, then numba's
  merge over the tile). On `bench/eval.py`'s class relevance (~61 thresholds a row, a typical score above 9
  of them) about 0.9 ns a score against 1.6 for numba's passes (`bench/counting.py --data`, an AMD
  EPYC Zen 4);
- else, up to COMPARE_KERNEL_MAX thresholds, in numba: vectorized comparison passes over each chunk
  of its scores, four thresholds a pass, summed in float32 lanes, skipping the thresholds above the
  chunk's maximum (3.0 ns per score at 60 thresholds on an Intel Xeon, `bench/counting.py`).
Both make the same float32 comparisons `s >= t`, so the counts are the same, exactly, for finite
scores (a NaN score counts nowhere in C; in numba it turns its chunk's maximum NaN, which skips the chunk).
A NaN score never enters a top-k list, on any path.
Without numba (`HAVE_NUMBA` False) the scan compares or sorts rows in numpy.
"""

from __future__ import annotations

import atexit
import ctypes
import threading

import numpy as np
from embridge.native import load_c

GRID_PER_RELEVANT = 16  # grid bins per relevant score: most bins hold none, so most scores need no comparison
MAX_GRID = 1 << 16  # at most this many bins per row (its histogram stays in cache)
OCCUPIED = 1 << 30  # offset of the bins holding thresholds (a block row counts fewer scores than this)
GRID_CELLS = 1 << 22  # bins of a block's rows together at most (16 MiB of int32 histograms)
CHUNK = 512  # scores binned (or compared) per vectorized pass
COMPARE_KERNEL_MAX = 96  # rows with at most this many thresholds: a comparison pass per threshold (0.04 ns per
#                   score and threshold, vectorized) instead of the grid (2.5-4 ns per score at any count)

try:  # numba is a dependency; the numpy path below it stays for environments that lack it
    from numba import njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only where numba is missing
    HAVE_NUMBA = False


def _plan(T, m, grid_per_relevant, max_grid, cells, compare_max):
    """Per row of thresholds T (t, mm), ascending, m[i] finite: the grid (G bins, origin lo, scale)
    and first[i, b] = #thresholds in bins < b; G = 0 for the rows counted by comparisons."""
    t = T.shape[0]
    G = np.zeros(t, dtype=np.int64)
    lo = np.zeros(t, dtype=np.float32)
    scale = np.ones(t, dtype=np.float32)
    width = 1
    for i in range(t):
        if m[i] > compare_max:
            G[i] = max(1, min(grid_per_relevant * m[i], max_grid, cells // t))
            width = max(width, G[i] + 3)
    first = np.zeros((t, width), dtype=np.int32)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for i in range(t):
        mi = m[i]
        if G[i] == 0:
            continue
        Ti = T[i]
        lo[i] = Ti[0]
        span = np.float64(Ti[mi - 1]) - np.float64(Ti[0])
        # finite and > 0 always, so -inf maps to bin 0 and nothing to NaN
        scale[i] = np.float32(min(G[i] / span, 1e30)) if span > 0 else np.float32(1.0)
        top = np.float32(G[i] + 1)
        for j in range(mi):
            first[i, np.int32(min(max((Ti[j] - lo[i]) * scale[i] + one, zero), top)) + 1] += 1
        for b in range(1, G[i] + 3):
            first[i, b] += first[i, b - 1]
    return G, lo, scale, first


def _compare(chunk, n, Ti, jn, out_i):
    """out_i[j] += #{g < n : chunk[g] >= Ti[j]} for j < jn, four thresholds a pass (one load of each
    score feeds four compares; the n <= CHUNK scores stay in L1 across the passes). The counts are
    summed in float32 lanes: compiled with reassociation allowed (`COMPARE_FASTMATH`) the sum
    vectorizes as compare, select, add, and a sum of at most CHUNK ones is exact in any order. int32
    sums of the comparisons vectorized four lanes wide here (LLVM: compare into a mask register, then
    widen it): 0.107 ns per score and threshold against 0.043 in float lanes."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    j = 0
    while j + 4 <= jn:
        t0, t1, t2, t3 = Ti[j], Ti[j + 1], Ti[j + 2], Ti[j + 3]
        a0 = zero
        a1 = zero
        a2 = zero
        a3 = zero
        for g in range(n):
            s = chunk[g]
            a0 += one if s >= t0 else zero
            a1 += one if s >= t1 else zero
            a2 += one if s >= t2 else zero
            a3 += one if s >= t3 else zero
        out_i[j] += np.int64(a0)
        out_i[j + 1] += np.int64(a1)
        out_i[j + 2] += np.int64(a2)
        out_i[j + 3] += np.int64(a3)
        j += 4
    while j < jn:
        tj = Ti[j]
        c = zero
        for g in range(n):
            c += one if chunk[g] >= tj else zero
        out_i[j] += np.int64(c)
        j += 1


def _add(S, cmax, T, m, G, lo, scale, first, H, E, out, compare):
    """One tile S (t, w) with its chunk maxima cmax (t, ceil(w / CHUNK)): grid rows into their bin
    histogram H and exact corrections E, comparison rows straight into out (compare False: left out,
    the C kernel counted them; cmax may then be (t, 0)). (numba leaves a float maximum reduction
    unvectorized, 0.9 ns a score here; numpy's reduceat takes 0.19: see `Counter.add`.)"""
    t, w = S.shape
    bins = np.empty(CHUNK, dtype=np.int32)
    chunk = np.empty(CHUNK, dtype=np.float32)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for i in range(t):
        mi = m[i]
        if mi == 0 or (G[i] == 0 and not compare):
            continue
        Si = S[i]
        Ti = T[i]
        if G[i] == 0:  # few thresholds: vectorized comparison passes, chunk by chunk (in L1)
            for c in range(cmax.shape[1]):
                c0 = c * CHUNK
                cmx = cmax[i, c]
                jn = 0  # thresholds above the chunk's maximum count nothing in it (T ascending)
                while jn < mi and Ti[jn] <= cmx:
                    jn += 1
                if jn == 0:
                    continue
                n = min(CHUNK, w - c0)
                for g in range(n):  # a contiguous copy (vectorized): the comparison loops vectorize on it
                    chunk[g] = Si[c0 + g]
                _compare_jit(chunk, n, Ti, jn, out[i])
            continue
        # bin(v) = clamp(trunc((v - lo) * scale + 1), 0, G + 1), one float32 formula for scores and
        # thresholds, is monotone in v: thresholds in lower bins are < s, in higher bins > s, so only
        # s's own bin is compared; bin 0 (below lo, -inf included) holds no threshold
        fi, Hi, Ei = first[i], H[i], E[i]
        li, si, top = lo[i], scale[i], np.float32(G[i] + 1)
        for c0 in range(0, w, CHUNK):
            n = min(CHUNK, w - c0)
            for g in range(n):  # vectorized: the bins
                bins[g] = np.int32(min(max((Si[c0 + g] - li) * si + one, zero), top))
            for g in range(n):
                b = bins[g]
                h = Hi[b]
                Hi[b] = h + 1
                if h < 0:  # rare: a bin holding thresholds (its count starts at -OCCUPIED), compared exactly
                    s = Si[c0 + g]
                    j0 = fi[b]
                    j = j0
                    while j < fi[b + 1] and Ti[j] <= s:
                        j += 1
                    Ei[j0] += 1  # s is >= the thresholds j0 .. j - 1 of its bin
                    Ei[j] -= 1


def _finish(m, G, first, H, E, out):
    """out[i, j] += #scores in bins above T[i, j]'s + #scores in its bin that are >= it (grid rows)."""
    for i in range(H.shape[0]):
        if G[i] == 0:
            continue
        fi = first[i]
        acc = 0
        for b in range(G[i] + 1, -1, -1):
            h = H[i, b]
            if fi[b + 1] > fi[b]:
                for j in range(fi[b], fi[b + 1]):
                    out[i, j] += acc
                h += OCCUPIED
            acc += h
        run = 0
        for j in range(m[i]):
            run += E[i, j]
            out[i, j] += run


def _topk(S, cols, rows, row_max, D, I):
    """Merge the tile S (t, w) into the running top-k lists D, I (nq, k) of the query rows `rows`
    (t,): D[q] scores descending, I[q] their gallery indices, ties in index order; cols (w,) or
    (t, w): each score's gallery index; -inf scores never enter; row_max (t,) (or empty): rows whose
    maximum cannot enter are skipped. An item enters when it ranks before the list's last under
    (score desc, index asc), by insertion: the same lists as sorting the union and keeping k."""
    t, w = S.shape
    k = D.shape[1]
    skip = len(row_max) == t
    per_row = cols.ndim == 2
    ninf = np.float32(-np.inf)
    for r in range(t):
        q = rows[r]
        Dq, Iq = D[q], I[q]
        thr, thr_i = Dq[k - 1], Iq[k - 1]
        if skip and row_max[r] < thr:
            continue
        Sr = S[r]
        for g in range(w):
            s = Sr[g]
            if not s >= thr or s == ninf:  # NaN never enters (as it never counts)
                continue
            c = cols[r, g] if per_row else cols[g]
            if s == thr and thr_i >= 0 and c > thr_i:
                continue
            j = k - 1  # insert (s, c) at its place, dropping the last
            while j > 0 and (Dq[j - 1] < s or (Dq[j - 1] == s and Iq[j - 1] > c)):
                Dq[j], Iq[j] = Dq[j - 1], Iq[j - 1]
                j -= 1
            Dq[j], Iq[j] = s, c
            thr, thr_i = Dq[k - 1], Iq[k - 1]


# reassociation (and signed zeros ignored) for the comparison sums only: they add ones, exact in any order.
# Not for the grid's bin formula, which must round the same in `_plan` and `_add`; no flag touches NaN
# or infinities, so the comparisons themselves keep IEEE semantics (-inf never counts)
COMPARE_FASTMATH = {"reassoc", "nsz"}

if HAVE_NUMBA:
    try:  # compiled once, cached beside the module (or in the user's cache directory)
        _compare_jit = njit(nogil=True, cache=True, fastmath=COMPARE_FASTMATH)(_compare)
        _plan_jit, _add_jit, _finish_jit, _topk_jit = (njit(nogil=True, cache=True)(f)
                                                       for f in (_plan, _add, _finish, _topk))
    except RuntimeError:  # no writable cache location: compile in every process instead
        _compare_jit = njit(nogil=True, fastmath=COMPARE_FASTMATH)(_compare)
        _plan_jit, _add_jit, _finish_jit, _topk_jit = (njit(nogil=True)(f) for f in (_plan, _add, _finish, _topk))


COMPACT_EVERY = 12  # the C kernel: thresholds compared before each compaction of a chunk. bench/eval.py's class
#   relevance (real tiles, one thread, an AMD EPYC Zen 4): at ~61 thresholds a row 0.85 ns a score (every 8:
#   0.87, 16: 0.89; numba 1.63), at ~201 1.91 (8: 2.11, 16: 1.87)
C_TREE_MIN = 120  # the C kernel: rows with more thresholds than this (up to 65,536) place each score in a tree
#   of their thresholds rather than comparing it with each (one thread, 256 x 4,096 tiles, an Intel Xeon,
#   synthetic scores: comparisons against the tree 0.96 / 1.44 ns a score at 64 thresholds, 1.23 / 1.50 at 96,
#   1.57 / 1.53 at 128, 2.21 / 1.59 at 200, 9.62 / 3.04 at 1,000)
_C_ARGS = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
           ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
           ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


# embridge_count_tile of the extension `_countc`, or None: not built, not loadable, or the CPU lacks
# AVX-512F (the library says so itself)
_C_TILE = load_c("embridge.evaluation._countc", "embridge_count_tile", _C_ARGS, ctypes.c_int,
                 supported="embridge_count_supported")
USE_C = _C_TILE is not None  # the comparison rows in C (where it loaded), else in numba (tests switch it)
C_COMPARE_MAX = 65536  # with the C kernel, rows with at most this many thresholds are counted there, the longer
#   ones on the grid (64 x 8,192 tiles, synthetic scores, an Intel Xeon: the tree 4.4 ns a score at 4,000
#   thresholds, 8.9 at 10,000, 31.5 at 65,536, against the grid's 64.6, 85.6 and 176.7)


def default_compare_max() -> int:
    """The most thresholds a row is counted by comparisons with (more: the grid): C_COMPARE_MAX where
    the C kernel counts, else COMPARE_KERNEL_MAX."""
    return C_COMPARE_MAX if USE_C else COMPARE_KERNEL_MAX


_NO_CHUNKS = np.zeros((0, 0), dtype=np.float32)  # `_add`'s chunk maxima when the C kernel counted the comparison rows


class Counter:
    """Counts for one block of rows across its tiles: `add(S, out)` for every tile, then `finish(out)`;
    out[q, j] then holds #{g : S[q, g] >= T[q, j]} over all tiles added (plus what it held).

    T: (t, mm) float32, each row's first m[q] entries ascending (+inf allowed: counted 0); m: (t,).
    Rows with at most `compare_max` (default `default_compare_max()`) thresholds are counted by
    comparisons, the others on the grid; the grid rows' bin histograms (t x G int32, G <= GRID_CELLS
    / t) live until `finish`, so the grid is built, and its histogram summed, once per block rather
    than once per tile.
    Needs numba (`HAVE_NUMBA`)."""

    def __init__(self, T: np.ndarray, m: np.ndarray, compare_max: int | None = None):
        compare_max = default_compare_max() if compare_max is None else compare_max
        self.T = np.ascontiguousarray(T, dtype=np.float32)
        self.m = np.minimum(m, (self.T < np.inf).sum(axis=1)).astype(np.int64)  # +inf: nothing scores >= them
        self.G, self.lo, self.scale, self.first = _plan_jit(self.T, self.m, GRID_PER_RELEVANT, MAX_GRID, GRID_CELLS,
                                                            compare_max)
        # bin counts; a bin holding thresholds starts at -OCCUPIED, so the hot loop reads one array
        self.H = np.zeros(self.first.shape, dtype=np.int32)
        self.H[:, :-1][self.first[:, 1:] > self.first[:, :-1]] = -OCCUPIED
        self.E = np.zeros((len(self.T), self.T.shape[1] + 1), dtype=np.int64)
        self.grid = bool((self.G > 0).any())
        self.compares = bool(((self.G == 0) & (self.m > 0)).any())  # rows the C kernel would count
        self.columns = 0

    def add(self, S: np.ndarray, out: np.ndarray, top: tuple | None = None) -> np.ndarray:
        """One tile S (t, w) float32 (-inf = not counted; any strides); returns its row maxima.
        top: (rows, cols, D, I), running top-k lists to merge the tile into as well (`merge_topk`'s
        arguments): by the C kernel in its pass over the tile where it runs and the arrays' layout
        allows, else by `merge_topk` after the counting. The same lists either way."""
        self.columns += S.shape[1]
        if self.columns >= OCCUPIED:
            raise ValueError(f"a block of at most {OCCUPIED - 1:,} scores per row, got {self.columns:,}")
        t, w = S.shape
        if w == 0:
            return np.full(t, -np.inf, dtype=np.float32)
        fused = top is not None and _c_merges(top, t, w)
        row_max = self._c_counts(S, out, top if fused else None) if USE_C and (self.compares or fused) else None
        merged = fused and row_max is not None
        if row_max is None:
            cmax = np.maximum.reduceat(S, np.arange(0, w, CHUNK), axis=1)  # (t, chunks): vectorized in numpy
            _add_jit(S, cmax, self.T, self.m, self.G, self.lo, self.scale, self.first, self.H, self.E, out, True)
            row_max = cmax.max(axis=1)
        elif self.grid:  # the C kernel counted the comparison rows and found every row's maximum
            _add_jit(S, _NO_CHUNKS, self.T, self.m, self.G, self.lo, self.scale, self.first, self.H, self.E,
                     out, False)
        if top is not None and not merged:
            rows, cols, D, I = top
            merge_topk(S, cols, rows, D, I, row_max)
        return row_max

    def _c_counts(self, S: np.ndarray, out: np.ndarray, top: tuple | None = None) -> np.ndarray | None:
        """The C kernel on tile S (merging it into the lists `top` too, when given: `_c_merges` checked
        them): its row maxima when it ran; None where the layout does not fit (a column stride,
        another dtype) or it declined (no work space), with nothing written."""
        t, w = S.shape
        if S.dtype != np.float32 or out.dtype != np.int64 or out.shape != self.T.shape:
            return None
        if (w > 1 and S.strides[1] != 4) or (t > 1 and (S.strides[0] < 0 or S.strides[0] % 4)) or (
                self.T.shape[1] > 1 and out.strides[1] != 8) or (t > 1 and out.strides[0] % 8):
            return None
        row_max = np.empty(t, dtype=np.float32)
        rows, cols, D, I = (a.ctypes.data for a in top) if top is not None else (None, None, None, None)
        done = _C_TILE(S.ctypes.data, S.strides[0] // 4, t, w, self.T.ctypes.data, self.T.shape[1], self.m.ctypes.data,
                       self.G.ctypes.data, out.ctypes.data, out.strides[0] // 8, row_max.ctypes.data, COMPACT_EVERY,
                       C_TREE_MIN, rows, cols, D, I, top[2].shape[1] if top is not None else 0)
        return row_max if done == 0 else None

    def finish(self, out: np.ndarray) -> None:
        """Add the grid rows' counts over every tile added to out (the comparison rows are in it already)."""
        _finish_jit(self.m, self.G, self.first, self.H, self.E, out)


def _c_merges(top: tuple, t: int, w: int) -> bool:
    """Whether the C kernel can merge a (t, w) tile into the top-k lists top = (rows, cols, D, I)
    (`merge_topk`'s arguments): rows (t,) and cols (w,) contiguous int64, D (nq, k) float32 and I (nq,
    k) int64 C-contiguous, k >= 1, every row in range (per-row cols (t, w) stay with `merge_topk`)."""
    rows, cols, D, I = top
    return (rows.dtype == np.int64 and rows.shape == (t,) and rows.flags.c_contiguous
            and cols.dtype == np.int64 and cols.shape == (w,) and cols.flags.c_contiguous
            and D.dtype == np.float32 and I.dtype == np.int64 and D.ndim == 2 and D.shape == I.shape
            and D.shape[1] >= 1 and D.flags.c_contiguous and I.flags.c_contiguous
            and (t == 0 or (0 <= rows.min() and rows.max() < D.shape[0])))


def count_rows(S: np.ndarray, T: np.ndarray, m: np.ndarray, out: np.ndarray,
               compare_max: int | None = None) -> np.ndarray:
    """out[q, j] += #{g : S[q, g] >= T[q, j]} for j < m[q]; returns the row maxima of S (one tile of
    a `Counter`). S: (t, w) float32 (-inf = not counted; any strides), T: (t, mm) float32, each row's
    first m[q] entries ascending; m: (t,) int64; out: (t, mm) int64. Needs numba (`HAVE_NUMBA`)."""
    counter = Counter(T, m, compare_max)
    row_max = counter.add(S, out)
    counter.finish(out)
    return row_max


def merge_topk(S: np.ndarray, cols: np.ndarray, rows: np.ndarray, D: np.ndarray, I: np.ndarray,
               row_max: np.ndarray | None = None) -> None:
    """`scan.TopK.update` compiled: merge S (t, w) float32 (-inf = left out; any strides) with gallery
    indices cols (w,) or (t, w) int64 into D, I (nq, k) at the query rows `rows` (t,) int64, in place.
    row_max (t,): the rows' maxima, to skip the rows that cannot enter. Needs numba (`HAVE_NUMBA`)."""
    empty = np.empty(0, dtype=np.float32)
    _topk_jit(S, cols, rows, empty if row_max is None else row_max, D, I)


def _warm() -> None:
    """Load (or compile) the kernel for the two array layouts the scan passes (a whole tile, and
    a tile's column slice), on both paths (comparisons, the grid), so that the first scan does not
    wait for it."""
    S = np.zeros((1, 2), dtype=np.float32)
    T, m = np.zeros((1, 1), dtype=np.float32), np.ones(1, dtype=np.int64)
    rows, D, I = np.zeros(1, dtype=np.int64), np.zeros((1, 1), dtype=np.float32), np.zeros((1, 1), dtype=np.int64)
    for tile in (S, S[:, 1:]):
        for compare_max in (None, 0):
            count_rows(tile, T, m, np.zeros((1, 1), dtype=np.int64), compare_max)
        for cols in (np.zeros(tile.shape[1], dtype=np.int64), np.zeros(tile.shape, dtype=np.int64)):
            merge_topk(tile, cols, rows, D, I)  # row_max None passes an empty float32 array: one signature


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
