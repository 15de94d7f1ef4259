"""Fused retrieval scan: one sgemm per (query block x gallery tile) feeds both the running top-k and
the full-ranking counts that R@k, MRR and mAP need (CPU, torch's oneDNN or BLAS: see `_sgemm`).

The gallery is scanned in key order (rows sorted by label, then pair code; queries likewise), so
that the rows relevant to a block of queries (`Relevant`) fall into a few tiles. Those tiles are
scored first and each query's relevant scores t_1 <= ... <= t_m are read from them; the tiles are
kept (HOLD_TILES; any others are scored again by the identical call) and the whole gallery then
streams past. In each tile the block's relevant entries are masked (taken above, once), and every
other score adds, for every t_j, to the number of irrelevant items scoring >= t_j:

- with numba (a dependency): the compiled kernel of `counting` for every m, which also merges the
  running top-k (`counting.merge_topk`); its comparison rows, and the top-k merge in the same pass
  over the tile, run in the AVX-512 C kernel where setup.py built it and the CPU has AVX-512F
  (`counting.USE_C`); without numba:
- m <= COMPARE_MAX: m vectorized comparisons per tile (`np.count_nonzero(S >= t_j)`);
- larger m: each row of the tile is sorted once (float32, SIMD sort) and the sorted thresholds are
  located in it by binary search: #irrelevant >= t_j = w - #(scores < t_j), O(w log w + m log w);
  the gallery tile is made at least TILE_PER_RELEVANT * m wide so the searches stay cheap.

Exact ties: relevant and irrelevant scores come from the same BLAS calls, all of one shape per
query block (`_Tiles`: equal widths, the last tile shifted rather than narrowed; tiny calls padded,
`MIN_CALL_ROWS` x `MIN_CALL_COLS`), so two identical gallery rows get bit-identical scores
and a relevant item tied with an irrelevant one is ranked after it (the pessimistic rule).

The running top-k keeps every item scoring >= the current k-th score and re-sorts the union by
(score desc, index asc): ties at the cut-off keep the lowest gallery index, as `knn` documents.

Query blocks run side by side on one thread per BLAS thread, each with a one-thread BLAS, so the
counting overlaps the sgemm; each thread scans up to GROUP_BLOCKS blocks of one length together,
so that each gallery tile it gathers serves all of them. Memory: `(1 + GROUP_BLOCKS * HOLD_TILES)
* min(score_budget, TILE_SCORES)` scores per thread (about 28 bytes of work space each) and one
gallery tile per thread, gathered in key order before its sgemms (none when the gallery is in that
order already), plus (nq, k) results, (block, m) relevant scores and, with more than
`counting.default_compare_max()` relevant items (65,536 with the C kernel, else 96), the counting
kernel's bin histograms (at most 16 MiB a block, `counting.GRID_CELLS`; the C kernel's work space
for one tile call is 64 bytes a threshold of its longest comparison row and about 21 of its longest
tree row); it does not grow with nq x nb. The gallery itself is never copied:
memory touched for the first time is what costs most on a small scan (about 3 s a GB on this
project's machines, 0.37 s for a key-ordered copy of 60k x 512 against a 1.2 s FAISS search;
`bench/RESULTS.md`).
"""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from embridge.evaluation import counting
from embridge.evaluation.relevance import Relevant, RowKeys, relevant_counts

__all__ = ["TopK", "Relevant", "count_at_or_above", "fused_scan", "relevant_counts"]

COMPARE_MAX = 4  # without numba: up to this many relevant items per query, count by comparisons (else sorting)
USE_NUMBA = counting.HAVE_NUMBA  # larger counts: the compiled kernel (`counting`), else numpy's row sorts
TILE_PER_RELEVANT = 8  # gallery tile >= this many times the largest relevant count (sort path)
MIN_GALLERY_TILE = 4096  # smallest gallery tile the scan uses when the budget allows it
MIN_QUERY_BLOCK = 64  # smallest query block made to give every worker several blocks
SORT_QUERY_BLOCK = 512  # at most this many queries per block when tile rows are sorted (sgemm stays efficient)
BLOCKS_PER_WORKER = 4  # query blocks per worker thread, at least, when the queries allow it
HOLD_TILES = 2  # score tiles holding relevant items kept per block for the stream (more are scored again)
GROUP_BLOCKS = 10  # query blocks scanned together, sharing each gathered gallery tile (fewer where the
#   workers would otherwise get under 2 groups each); an out-of-order gallery's tiles are gathered once
#   per group instead of once per block. 10 against 4 at 10k x 200k x 512 (Zen 4, fresh processes):
#   13.20 against 13.78 s (class relevance), 11.58 against 11.92 (pairs); peak memory +98 MiB
MIN_CALL_ROWS = 32  # BLAS calls smaller than this many queries ...
MIN_CALL_COLS = 256  # ... or gallery rows are zero-padded (small-matrix kernels round by position)
TILE_SCORES = 1 << 20  # scores per sgemm call at most, below the caller's score_budget: each thread's few
#   live tiles are memory touched for the first time in a new process (about 3 s a GB on this project's
#   machines); 1 Mi against 4 Mi: 1.03 against 1.14 s (medians of 6) at 3k x 60k x 512, class relevance


def _count(S_irr: np.ndarray, T: np.ndarray, m: np.ndarray | None):
    """`count_at_or_above`, plus the row-sorted scores when the numpy sort path made them (else None)
    and the row maxima when the compiled kernel found them (else None)."""
    t, mm = T.shape
    if mm <= COMPARE_MAX:
        return np.stack([np.count_nonzero(S_irr >= T[:, j : j + 1], axis=1) for j in range(mm)], axis=1), None, None
    if USE_NUMBA:
        out = np.zeros((t, mm), dtype=np.int64)
        mi = np.full(t, mm, dtype=np.int64) if m is None else m
        return out, None, counting.count_rows(S_irr, T, mi, out)
    w = S_irr.shape[1]
    S_sorted = np.sort(S_irr, axis=1)  # (t, w) ascending
    out = np.zeros((t, mm), dtype=np.int64)
    for i in range(t):  # sorted needles into a sorted row: #(< t_j) by binary search, O(m log w)
        mi = mm if m is None else int(m[i])
        out[i, :mi] = w - np.searchsorted(S_sorted[i], T[i, :mi], side="left")
    return out, S_sorted, None


def count_at_or_above(S_irr: np.ndarray, T: np.ndarray, m: np.ndarray | None = None) -> np.ndarray:
    """C[q, j] = #{g : S_irr[q, g] >= T[q, j]}. S_irr: (t, w) float32 (-inf = not counted);
    T: (t, mm) float32, each row ascending (+inf padding); m: (t,) finite entries per row of T
    (default mm). Returns int64 (t, mm), 0 at the padding."""
    return _count(S_irr, T, m)[0]


class TopK:
    """Running top-k of nq rows. D float32 (nq, k) score desc; I int64 (nq, k), index asc among ties."""

    def __init__(self, nq: int, k: int):
        self.k = k
        self.D = np.full((nq, k), -np.inf, dtype=np.float32)
        self.I = np.full((nq, k), -1, dtype=np.int64)

    def update(self, rows: np.ndarray, S: np.ndarray, cols: np.ndarray, S_sorted: np.ndarray | None = None,
               row_max: np.ndarray | None = None) -> None:
        """Merge a score block S (t, w) of query rows `rows` (t,) and gallery indices `cols` (w,), or
        (t, w) per row (entries scoring -inf are left out).
        S_sorted: S with each row sorted ascending, or row_max (t,) its row maxima, when the caller has
        them: then only the rows whose best score can enter are looked at (after the first tiles, a
        few rows of each block)."""
        if USE_NUMBA and S_sorted is None:  # the compiled merge (`counting.merge_topk`): same lists
            counting.merge_topk(S, cols, rows, self.D, self.I, row_max)
            return
        k, w = self.k, S.shape[1]
        thr = self.D[rows, -1]  # current k-th score (-inf while a row holds fewer than k items)
        if S_sorted is not None or row_max is not None:
            if S_sorted is not None:
                row_max = S_sorted[:, -1]
                if w >= k:
                    thr = np.maximum(thr, S_sorted[:, w - k])
            sel = np.flatnonzero(row_max >= thr)
            if len(sel) == 0:
                return
            if len(sel) < len(rows):
                rows, S, thr = rows[sel], S[sel], thr[sel]
                cols = cols[sel] if cols.ndim == 2 else cols
        if S_sorted is None and w >= k and np.isneginf(thr).any():
            thr = np.maximum(thr, np.partition(S, w - k, axis=1)[:, w - k])
        t = S.shape[0]
        flat = np.flatnonzero(S >= thr[:, None])  # every item that may enter, ties at the cut-off included
        r, c = np.divmod(flat, w)
        v = S.ravel()[flat]
        keep = v > -np.inf  # masked (already scored) entries never enter
        r, c, v = r[keep], c[keep], v[keep]
        c = cols[r, c] if cols.ndim == 2 else cols[c]
        r_all = np.concatenate([np.repeat(np.arange(t), k), r])
        v_all = np.concatenate([self.D[rows].ravel(), v])
        i_all = np.concatenate([self.I[rows].ravel(), c])
        order = np.lexsort((i_all, -v_all, r_all))  # row, then score desc, then index asc
        start = np.concatenate([[0], np.cumsum(np.bincount(r_all, minlength=t))[:-1]])
        take = order[(start[:, None] + np.arange(k)).ravel()]
        self.D[rows] = v_all[take].reshape(t, k)
        self.I[rows] = i_all[take].reshape(t, k)


def _block_ap(T: np.ndarray, m: np.ndarray, irr_ge: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AP (sklearn threshold convention) and pessimistic first rank of one block, from the counts."""
    t, mm = T.shape
    pos = np.arange(mm)
    new = np.ones((t, mm), dtype=bool)
    new[:, 1:] = T[:, 1:] != T[:, :-1]
    below = np.maximum.accumulate(np.where(new, pos, 0), axis=1)  # #relevant scoring < t_j
    rel_ge = m[:, None] - below  # relevant items scoring >= t_j
    valid = pos[None, :] < m[:, None]
    prec = np.where(valid, rel_ge / np.maximum(rel_ge + irr_ge, 1), 0.0)
    has = m > 0
    ap = np.where(has, prec.sum(axis=1) / np.maximum(m, 1), np.nan)
    last = np.maximum(m - 1, 0)
    first = np.where(has, 1.0 + irr_ge[np.arange(t), last], np.inf)
    return ap, first


SGEMM = "auto"  # tile sgemm: "onednn" (torch's oneDNN linear), "mkl" (torch.mm), "auto": `embridge.gemm.backend()`


def _sgemm_kind() -> str:
    """The tile sgemm `_sgemm` uses: SGEMM, with "auto" resolved by `embridge.gemm.backend()`
    (oneDNN where torch has it; torch.mm where it does not or EMBRIDGE_CPU_GEMM=torch)."""
    if SGEMM != "auto":
        return SGEMM
    from embridge.gemm import backend  # torch on first use only

    return "onednn" if backend() == "onednn" else "mkl"


def _sgemm(A: np.ndarray, B: np.ndarray, out: np.ndarray | None = None, kind: str | None = None) -> np.ndarray:
    """A @ B.T (float32) by torch: oneDNN's linear (a new array) or torch.mm into the numpy buffer
    `out` (a new aligned one when None) (kind: "onednn" or "mkl", default `_sgemm_kind()`; a scan
    resolves it once, so that all its calls round alike). Both give every column of a call the same arithmetic, so identical
    gallery rows get identical scores, for calls of at least MIN_CALL_ROWS x MIN_CALL_COLS
    (tests/test_ties.py runs both). Not numpy's OpenBLAS: on this project's AVX-512 CPU its sgemm
    rounds a product differently by the column's position (3,888 of 4,096 identical columns
    differed from the first), in either orientation. oneDNN uses the full AVX-512 width there:
    199 GFLOP/s a core at 375 x 11,184 x 512, against 88 for torch.mm (MKL) and 103 for OpenBLAS;
    on an Intel Xeon MKL is the faster (151 against 141 GFLOP/s a core at 250 x 4,167 x 512)."""
    import torch

    a = torch.from_numpy(np.ascontiguousarray(A, dtype=np.float32))
    b = torch.from_numpy(np.ascontiguousarray(B, dtype=np.float32))
    if (kind or _sgemm_kind()) == "onednn":
        from embridge.gemm import onednn_linear

        return onednn_linear(a, b).numpy()
    if out is None:
        out = _aligned(len(A) * len(B)).reshape(len(A), len(B))
    torch.mm(a, b.T, out=torch.from_numpy(out))
    return out


def _aligned(n: int) -> np.ndarray:
    """An empty float32 (n,) whose data starts on a 64-byte boundary: OpenBLAS rounds a score
    differently depending on where its output starts, so every score block is written aligned."""
    buf = np.empty(n + 16, dtype=np.float32)
    off = (-buf.ctypes.data % 64) // 4
    return buf[off : off + n]


class _Tiles:
    """The gallery tiles of one query block: `n` BLAS calls of one shape (t, w); tile i scores the
    gallery positions [start(i), start(i) + w) and owns [i * w, min((i + 1) * w, nb)). The last
    tile is shifted left to end at nb (re-scoring fewer than n columns of its neighbour) rather
    than made narrower, so every score of a query comes from calls of the same shape."""

    def __init__(self, nb: int, width: int):
        self.nb = nb
        self.n = -(-nb // max(1, min(width, nb)))
        self.w = -(-nb // self.n)  # balanced widths: n * w - nb < n columns are scored twice

    def start(self, i: int) -> int:
        return min(i * self.w, self.nb - self.w)

    def owned(self, i: int) -> tuple[int, int, int]:
        """(first owned column within the call, first and one-past-last owned gallery position)."""
        lo, hi = i * self.w, min((i + 1) * self.w, self.nb)
        return lo - self.start(i), lo, hi


class _Scan:
    """Shared state of one fused scan; `blocks` runs a group of query blocks start to end (any thread:
    blocks write disjoint rows of the results). The gallery is scanned in the order `perm` (rows grouped by
    their keys, so that a block's relevant rows fall into few tiles): scan position p is row perm[p]
    of xb, and each tile's rows are gathered from xb just before its sgemm (`tile_rows`)."""

    def __init__(self, xq, xb, perm, q: RowKeys, b: RowKeys, k: int, score_budget: int, tile: int, tb0: int):
        self.xq, self.xb, self.perm, self.q = xq, xb, perm, q
        self.in_order = bool((perm == np.arange(len(perm))).all())  # then tiles are slices of xb
        self.pos = np.empty_like(perm)  # gallery row -> its position in the scan order
        self.pos[perm] = np.arange(len(perm))
        self.relevant = Relevant(b)
        self.budget, self.tile, self.tb0 = score_budget, tile, tb0
        nq = xq.shape[0]
        self.top = TopK(nq, k)
        self.ap, self.first = np.full(nq, np.nan), np.full(nq, np.inf)
        self.m = np.zeros(nq, dtype=np.int64)
        self.local = threading.local()  # one reusable score buffer per thread
        self.kind = _sgemm_kind()  # every tile of the scan on one sgemm (resolved here, before the workers start)

    def buffer(self, size: int) -> np.ndarray:
        buf = getattr(self.local, "buf", None)
        if buf is None or buf.size < size:
            buf = self.local.buf = _aligned(max(size, self.budget))
        return buf[:size]

    def tile_rows(self, s0: int, w: int) -> np.ndarray:
        """The gallery rows at scan positions [s0, s0 + w), (w, d): a slice of xb when it is in scan
        order, else gathered into this thread's tile buffer (valid until its next call)."""
        if self.in_order:
            return self.xb[s0 : s0 + w]
        d = self.xb.shape[1]
        buf = getattr(self.local, "rows", None)
        if buf is None or buf.size < w * d:
            buf = self.local.rows = _aligned(w * d)
        out = buf[: w * d].reshape(w, d)
        np.take(self.xb, self.perm[s0 : s0 + w], axis=0, out=out, mode="clip")  # "raise" would buffer a copy
        return out

    def relevant_rows(self, rows: np.ndarray) -> np.ndarray:
        """Gallery rows C (t, mm) int64 relevant to the queries `rows` (sorted by keys), row i holding
        its m_i rows first (then -1); queries with the same keys share one look-up."""
        pairs, labels = self.q.pairs[rows], self.q.labels[rows]
        new = np.ones(len(rows), dtype=bool)
        new[1:] = (pairs[1:] != pairs[:-1]) | (labels[1:] != labels[:-1])
        starts = np.flatnonzero(new)
        ends = np.append(starts[1:], len(rows))
        groups = [(s, e, self.relevant.rows(pairs[s], labels[s])) for s, e in zip(starts, ends, strict=True)]
        C = np.full((len(rows), max((len(c) for *_, c in groups), default=0)), -1, dtype=np.int64)
        for s, e, cols in groups:
            C[s:e, : len(cols)] = cols
        return C

    def scores(self, xq_t: np.ndarray, tiles: _Tiles, i: int, out: np.ndarray | None,
               xb: np.ndarray | None = None) -> np.ndarray:
        """S (t, w) = xq_t @ (tile i of the gallery).T by one BLAS call of the block's shape; calls
        below (MIN_CALL_ROWS, MIN_CALL_COLS) are zero-padded to it (small-matrix kernels round by
        position and alignment; the packed kernels above do not). xb: the tile's rows when the
        caller has them (`tile_rows`), else gathered here."""
        t, (s0, w) = len(xq_t), (tiles.start(i), tiles.w)
        xb = self.tile_rows(s0, w) if xb is None else xb
        if t >= MIN_CALL_ROWS and w >= MIN_CALL_COLS:
            return _sgemm(xq_t, xb, out, self.kind)
        A = np.zeros((max(t, MIN_CALL_ROWS), xq_t.shape[1]), dtype=np.float32)
        B = np.zeros((max(w, MIN_CALL_COLS), xb.shape[1]), dtype=np.float32)
        A[:t], B[:w] = xq_t, xb
        return _sgemm(A, B, kind=self.kind)[:t, :w]

    def blocks(self, groups: list[np.ndarray]) -> None:
        """Scan the query blocks `groups` (each a (t,) array of query rows) together: every gallery
        tile is gathered once for all of them (the gather of a key-ordered tile costs a fifth of its
        sgemm at d = 512), then each block scores, counts and merges it in turn. The blocks have
        one length, so their tiles are those each would have alone: the same calls, the same scores."""
        t = len(groups[0])
        if any(len(rows) != t for rows in groups):
            raise ValueError(f"blocks scanned together must have one length, got {[len(r) for r in groups]}")
        tiles = _Tiles(self.xb.shape[0], min(self.xb.shape[0], self.tile, max(self.tb0, self.budget // t)))
        states = [self._begin(rows, tiles) for rows in groups]
        for i in range(tiles.n):
            xb = None
            for st in states:
                S = st.held.pop(i, None)
                if S is None:
                    if xb is None:
                        xb = self.tile_rows(tiles.start(i), tiles.w)
                    buf = None if self.kind == "onednn" else self.buffer(len(st.rows) * tiles.w).reshape(-1, tiles.w)
                    S = self.scores(st.xq_t, tiles, i, buf, xb)
                self._count_tile(st, tiles, i, S)
        for st in states:
            if st.counter is not None:
                st.counter.finish(st.irr_ge)
            self.ap[st.rows], self.first[st.rows] = _block_ap(st.T, st.m, st.irr_ge)
            self.m[st.rows] = st.m

    def _begin(self, rows: np.ndarray, tiles: _Tiles) -> _Block:
        """A block's relevant scores (read from the tiles holding them, HOLD_TILES of those kept),
        its thresholds and its counters, before the gallery streams past."""
        t = len(rows)
        xq_t = self.xq[rows]  # (t, d)
        C = self.relevant_rows(rows)
        valid = C >= 0
        m = valid.sum(axis=1)
        qi, ci = np.nonzero(valid)
        at = self.pos[C[qi, ci]]  # scan positions of the block's relevant (query, row) entries
        by_pos = np.argsort(at, kind="stable")
        qi, ci, at = qi[by_pos], ci[by_pos], at[by_pos]
        # relevant scores read from the very tile calls that score every other item (bit-identical
        # arithmetic, so exact ties stay ties); the few tiles holding them are kept for the stream below
        S_rel = np.full(C.shape, -np.inf, dtype=np.float32)
        held: dict[int, np.ndarray] = {}
        tile_of = at // tiles.w
        for i in np.unique(tile_of):
            S = self.scores(xq_t, tiles, int(i), None)
            j = np.flatnonzero(tile_of == i)
            S_rel[qi[j], ci[j]] = S[qi[j], at[j] - tiles.start(int(i))]
            if len(held) < HOLD_TILES:
                held[int(i)] = S
        self.top.update(rows, S_rel, C)
        T = np.sort(np.where(valid, S_rel, np.float32(np.inf)), axis=1)  # thresholds, ascending, +inf padded
        if T.shape[1] == 0:
            T = np.full((t, 1), np.inf, dtype=np.float32)
        # the compiled kernel keeps the block's grid and histograms across its tiles (counting.Counter)
        counter = counting.Counter(T, m) if USE_NUMBA else None
        return _Block(rows, xq_t, m, qi, at, held, T, np.zeros(T.shape, dtype=np.int64), counter)

    def _count_tile(self, st: _Block, tiles: _Tiles, i: int, S: np.ndarray) -> None:
        """Tile i's scores S of block st into its counts and the running top-k."""
        off, b0, b1 = tiles.owned(i)
        S = S[:, off:]  # the columns this tile owns: gallery positions [b0, b1)
        lo, hi = np.searchsorted(st.at, [b0, b1])
        S[st.qi[lo:hi], st.at[lo:hi] - b0] = -np.inf  # relevant entries: scored above, not counted here
        if st.counter is not None:  # counts and merges the tile into the top-k lists (in one pass in C)
            st.counter.add(S, st.irr_ge, (st.rows, self.perm[b0:b1], self.top.D, self.top.I))
            return
        counts, S_sorted, row_max = _count(S, st.T, st.m)
        st.irr_ge += counts
        self.top.update(st.rows, S, self.perm[b0:b1], S_sorted, row_max)


@dataclass
class _Block:
    """One query block's state while the gallery streams past (`_Scan.blocks`): its query rows and
    their vectors, relevant counts m, the (query, scan position) of its relevant entries sorted by
    position (qi, at), the score tiles kept from the relevant pass, the thresholds T, the counts
    irr_ge and the compiled counter (None on the numpy paths)."""

    rows: np.ndarray
    xq_t: np.ndarray
    m: np.ndarray
    qi: np.ndarray
    at: np.ndarray
    held: dict
    T: np.ndarray
    irr_ge: np.ndarray
    counter: object


def _one_blas_thread() -> None:
    """Worker initializer: a BLAS on OpenMP keeps its thread count per thread, so set it here too
    (torch's included: a new thread starts with OpenMP's default, all cores, whatever the caller set)."""
    import torch
    from threadpoolctl import ThreadpoolController

    ThreadpoolController().select(user_api="blas").limit(limits=1)  # dies with the thread
    torch.set_num_threads(1)


@contextmanager
def _blas_workers(workers: int | None):
    """Yields how many threads scan query blocks side by side: as many as the BLAS has threads,
    each running a one-thread BLAS meanwhile (sgemm and counting then share the cores with no
    idle BLAS thread waiting on a descheduled one). One worker (BLAS untouched) where threadpoolctl
    finds no BLAS to limit, or `workers` says 1."""
    from threadpoolctl import ThreadpoolController

    blas = ThreadpoolController().select(user_api="blas")
    n = max((c.num_threads for c in blas.lib_controllers), default=1) if workers is None else workers
    if n <= 1 or not blas.lib_controllers:
        yield 1
        return
    import torch  # the tile sgemms run on torch (`_sgemm`): one thread each, too

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with blas.limit(limits=1):
            yield n
    finally:
        torch.set_num_threads(torch_threads)


def fused_scan(
    xq: np.ndarray, xb: np.ndarray, q: RowKeys, b: RowKeys, k: int, score_budget: int, tile: int, query_tile: int,
    workers: int | None = None,
) -> dict[str, np.ndarray]:
    """One pass over all (query block x gallery tile) scores. xq: (nq, d), xb: (nb, d) float32.

    Returns D (nq, k) float32, I (nq, k) int64 (top-k, score desc, index asc among ties), ap (nq,)
    float64 (nan without relevant items), m (nq,) int64, rank (nq,) float64 (pessimistic rank of
    the first relevant item over the whole gallery, inf without relevant items). workers: threads
    scanning blocks side by side (default: the BLAS's threads).
    """
    nq, nb = xq.shape[0], xb.shape[0]
    k = min(k, nb)
    score_budget = min(score_budget, TILE_SCORES)
    m_max = int(relevant_counts(q, b).max(initial=0))
    wide = TILE_PER_RELEVANT * m_max if m_max > COMPARE_MAX else 0
    if USE_NUMBA:
        counting.warm_up()  # the kernel loads while the gallery is reordered and the first tiles are scored
    order = np.lexsort((q.pairs, q.labels))  # queries with the same keys side by side
    perm = np.lexsort((b.pairs, b.labels))  # the gallery in the same key order: relevant rows of a block close
    with _blas_workers(workers) as n:
        # at least BLOCKS_PER_WORKER blocks per worker where the queries allow it, so none idles at the end
        query_tile = min(query_tile, max(MIN_QUERY_BLOCK, -(-nq // (BLOCKS_PER_WORKER * n))))
        if m_max > COMPARE_MAX:  # sorting tile rows: fewer, wider rows make the binary searches cheap
            query_tile = min(query_tile, SORT_QUERY_BLOCK)
        tb0 = min(nb, tile, max(MIN_GALLERY_TILE, score_budget // min(query_tile, nq), wide))
        tq = max(1, min(query_tile, nq, score_budget // tb0, score_budget // max(m_max, 1)))
        scan = _Scan(xq, xb, perm, q, b, k, score_budget, tile, tb0)
        blocks = [order[i : i + tq] for i in range(0, nq, tq)]
        # blocks scanned together share each gathered gallery tile; at least 2 groups per worker
        together = 1 if scan.in_order else max(1, min(GROUP_BLOCKS, len(blocks) // (2 * n)))
        full, last = (blocks[:-1], blocks[-1:]) if len(blocks[-1]) < tq else (blocks, [])
        groups = [full[i : i + together] for i in range(0, len(full), together)] + [last] * bool(last)
        if n == 1:
            for group in groups:
                scan.blocks(group)
        else:
            with ThreadPoolExecutor(n, "embridge-scan", initializer=_one_blas_thread) as pool:
                pending: deque = deque()
                for group in groups:  # at most 2n groups queued
                    if len(pending) >= 2 * n:
                        pending.popleft().result()
                    pending.append(pool.submit(scan.blocks, group))
                while pending:
                    pending.popleft().result()
    return {"D": scan.top.D, "I": scan.top.I, "ap": scan.ap, "m": scan.m, "rank": scan.first}
