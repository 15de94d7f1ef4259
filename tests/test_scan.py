"""Fused CPU scan: top-k, ranks and AP equal brute force (with ties) on both counting paths and tilings."""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

import numpy as np
import pytest
from embridge.evaluation import scan
from embridge.evaluation.metrics import per_query
from embridge.evaluation.relevance import RowKeys, relevance
from embridge.evaluation.scan import (
    Relevant,
    count_at_or_above,
    fused_scan,
    relevant_counts,
)
from sklearn.metrics import average_precision_score


def keys(rng, n, n_labels, p_pair, n_pair_codes=40):
    labels = rng.integers(0, n_labels, n)
    labels[rng.random(n) < 0.1] = -1
    pairs = np.where(rng.random(n) < p_pair, rng.integers(0, n_pair_codes, n), -1)
    return RowKeys(labels.astype(np.int64), pairs.astype(np.int64))


def brute(xq, xb, q, b, k):
    S = xq.astype(np.float64) @ xb.astype(np.float64).T
    R = relevance(q, b)
    I = np.argsort(-S, axis=1, kind="stable")[:, :k]  # ties: lower index first
    rank, ap = np.full(len(xq), np.inf), np.full(len(xq), np.nan)
    for i in range(len(xq)):
        if R[i].any():
            rank[i] = 1 + int(((~R[i]) & (S[i] >= S[i][R[i]].max())).sum())
            ap[i] = average_precision_score(R[i], S[i])
    return np.take_along_axis(S, I, axis=1), I, rank, ap, R.sum(axis=1)


@pytest.mark.parametrize("compare_max,use_numba,kernel", [
    (0, True, "c"), (0, True, "numba"), (0, True, "grid"), (0, False, None), (8, True, "c"), (8, True, "numba"),
    (8, True, "grid"), (8, False, None), (10_000, False, None)])
@pytest.mark.parametrize("seed,n_labels,p_pair", [(0, 3, 0.0), (1, 12, 0.5), (2, 5, 1.0)])
@pytest.mark.parametrize("workers", [1, 3])
def test_fused_scan_equals_bruteforce_with_ties(monkeypatch, compare_max, use_numba, kernel, seed, n_labels, p_pair,
                                                workers):
    """kernel (with numba): "c" the comparison rows in the C kernel, "numba" in numba, "grid" the
    kernel's grid for every row (counting.Counter keeps it across a block's tiles)."""
    if kernel == "c" and scan.counting._C_TILE is None:
        pytest.skip("the C counting kernel is not built here, or this CPU lacks AVX-512F")
    monkeypatch.setattr(scan, "COMPARE_MAX", compare_max)
    monkeypatch.setattr(scan, "USE_NUMBA", use_numba)
    monkeypatch.setattr(scan.counting, "USE_C", kernel == "c")
    if kernel == "grid":
        monkeypatch.setattr(scan.counting, "COMPARE_KERNEL_MAX", 0)
    monkeypatch.setattr(scan, "MIN_GALLERY_TILE", 1)
    monkeypatch.setattr(scan, "MIN_QUERY_BLOCK", 1)
    rng = np.random.default_rng(seed)
    xq = rng.integers(-1, 2, size=(45, 5)).astype(np.float32)  # small integers: exact ties
    xb = rng.integers(-1, 2, size=(130, 5)).astype(np.float32)
    q, b = keys(rng, 45, n_labels, p_pair), keys(rng, 130, n_labels, p_pair)
    D_ref, I_ref, rank_ref, ap_ref, m_ref = brute(xq, xb, q, b, 7)
    for budget, tile, query_tile in ((1 << 20, 1 << 20, 4096), (300, 23, 6)):
        got = fused_scan(xq, xb, q, b, 7, score_budget=budget, tile=tile, query_tile=query_tile, workers=workers)
        np.testing.assert_array_equal(got["I"], I_ref)
        np.testing.assert_array_equal(got["D"], D_ref.astype(np.float32))
        np.testing.assert_array_equal(got["m"], m_ref)
        np.testing.assert_array_equal(got["rank"], rank_ref)
        np.testing.assert_allclose(got["ap"], ap_ref, rtol=0, atol=1e-12)


def test_fused_equals_two_pass_on_continuous_data():
    rng = np.random.default_rng(3)
    xq, xb = rng.standard_normal((60, 16)).astype(np.float32), rng.standard_normal((500, 16)).astype(np.float32)
    q, b = keys(rng, 60, 7, 0.3), keys(rng, 500, 7, 0.3)
    a = per_query(xq, xb, q, b, kmax=10, fused=True, score_budget=2000, tile=90, query_tile=16)
    c = per_query(xq, xb, q, b, kmax=10, fused=False)
    np.testing.assert_array_equal(a["I"], c["I"])
    np.testing.assert_array_equal(a["m"], c["m"])
    np.testing.assert_array_equal(a["rank"][a["m"] > 0], c["rank"][c["m"] > 0])
    np.testing.assert_allclose(a["ap"], c["ap"], rtol=0, atol=1e-12)


def test_parallel_scan_limits_blas_and_matches_serial(monkeypatch):
    """Workers run a one-thread BLAS while they scan (restored after); results agree with one worker."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    rng = np.random.default_rng(7)
    xq, xb = rng.standard_normal((300, 32)).astype(np.float32), rng.standard_normal((3000, 32)).astype(np.float32)
    q, b = keys(rng, 300, 20, 0.2, n_pair_codes=500), keys(rng, 3000, 20, 0.2, n_pair_codes=500)
    before = blas_threads()
    serial = fused_scan(xq, xb, q, b, 10, score_budget=5000, tile=1000, query_tile=64, workers=1)
    seen = []
    update = scan.TopK.update

    def spy(self, *a, **kw):
        seen.append(blas_threads())
        return update(self, *a, **kw)

    monkeypatch.setattr(scan.TopK, "update", spy)
    parallel = fused_scan(xq, xb, q, b, 10, score_budget=5000, tile=1000, query_tile=64, workers=2)
    # the same numbers up to float32 rounding (BLAS rounding depends on its threads and the tile shapes)
    np.testing.assert_array_equal(parallel["m"], serial["m"])
    np.testing.assert_allclose(parallel["D"], serial["D"], rtol=1e-5)
    np.testing.assert_allclose(parallel["ap"], serial["ap"], rtol=0, atol=1e-5)
    assert (parallel["I"] == serial["I"]).mean() > 0.99
    assert (parallel["rank"] == serial["rank"]).mean() > 0.99
    assert seen and all(set(s.values()) == {1} for s in seen)
    assert blas_threads() == before


@pytest.mark.parametrize("compare_max,use_numba", [(0, True), (0, False), (10_000, False)])
def test_count_at_or_above_with_ties_and_signed_zeros(monkeypatch, compare_max, use_numba):
    monkeypatch.setattr(scan, "COMPARE_MAX", compare_max)
    monkeypatch.setattr(scan, "USE_NUMBA", use_numba)
    rng = np.random.default_rng(4)
    S = rng.integers(-3, 4, size=(6, 50)).astype(np.float32)
    S[:, :5] = -0.0  # equal to +0.0 as a score
    S[:, 5] = -np.inf  # not counted
    T = np.sort(rng.integers(-3, 4, size=(6, 12)).astype(np.float32), axis=1)
    T[:, -2:] = np.inf
    ref = (S[:, None, :] >= T[:, :, None]).sum(axis=2)
    np.testing.assert_array_equal(count_at_or_above(S, T), ref)
    np.testing.assert_array_equal(count_at_or_above(S, T, np.full(6, 10)), ref)


def test_relevant_rows_follow_relevance():
    rng = np.random.default_rng(5)
    for p_pair in (0.0, 0.5, 1.0):
        q, b = keys(rng, 40, 6, p_pair), keys(rng, 300, 6, p_pair)
        index = Relevant(b)
        R = relevance(q, b)
        for i in range(len(q)):
            np.testing.assert_array_equal(index.rows(q.pairs[i], q.labels[i]), np.flatnonzero(R[i]))


def test_relevant_counts_equal_relevance_sums():
    rng = np.random.default_rng(6)
    for p_pair in (0.0, 0.5, 1.0):
        q, b = keys(rng, 30, 6, p_pair), keys(rng, 200, 9, p_pair, n_pair_codes=60)
        np.testing.assert_array_equal(relevant_counts(q, b), relevance(q, b).sum(axis=1))


def test_the_gallery_is_gathered_tile_by_tile_not_copied():
    """A gallery out of key order is scanned in key order through one gathered tile per thread, not
    a reordered copy of the whole gallery (first-touch memory is what a small scan pays most for):
    its scan's peak allocation exceeds that of the same gallery already in key order by less than
    half the gallery (one 4,096-row tile: 2 MB; a copy would be 10.2 MB), and the results are equal
    (permuted back)."""
    import tracemalloc

    rng = np.random.default_rng(5)
    nq, nb, d = 64, 20_000, 128
    xq = rng.standard_normal((nq, d), dtype=np.float32)
    xb = rng.standard_normal((nb, d), dtype=np.float32)
    q = RowKeys(rng.integers(0, 50, nq), np.full(nq, -1))
    b = RowKeys(rng.integers(0, 50, nb), np.full(nb, -1))
    order = np.lexsort((b.pairs, b.labels))
    xb_o, b_o = xb[order], RowKeys(b.labels[order], b.pairs[order])

    def run(x, keys):
        return fused_scan(xq, x, q, keys, 10, score_budget=1 << 16, tile=4096, query_tile=64, workers=1)

    run(xb, b)  # lazy imports (torch's sgemm, the counting kernel) allocate on the first call, not the scan
    peaks, outs = [], []
    for x, keys in ((xb, b), (xb_o, b_o)):
        tracemalloc.start()
        try:
            outs.append(run(x, keys))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert peaks[0] - peaks[1] < xb.nbytes / 2, (peaks, xb.nbytes)
    out, ref = outs
    assert np.array_equal(out["D"], ref["D"]) and np.array_equal(out["I"], order[ref["I"]])
    for key in ("ap", "m", "rank"):
        np.testing.assert_array_equal(out[key], ref[key])


@pytest.mark.skipif(not scan.counting.HAVE_NUMBA, reason="numba not installed")
def test_compiled_topk_merge_equals_the_numpy_merge(monkeypatch):
    """counting.merge_topk (the compiled TopK.update) against the numpy union-and-sort it replaces:
    tiles of small integers (ties at the cut-off, broken by index), -inf entries, rows that start
    empty, per-row (2-D) gallery indices, strided tiles and given row maxima."""
    nq, k = 20, 6
    tops = {}
    for use_numba in (False, True):
        monkeypatch.setattr(scan, "USE_NUMBA", use_numba)
        top = scan.TopK(nq, k)
        rng_u = np.random.default_rng(6)
        for step in range(12):
            rows = np.sort(rng_u.choice(nq, 8, replace=False)).astype(np.int64)
            S = rng_u.integers(-3, 4, (8, 40)).astype(np.float32)
            S[rng_u.random(S.shape) < 0.2] = -np.inf
            if step % 3 == 0:  # per-row gallery indices, as the relevant scores are merged
                cols = rng_u.permutation(1000)[: 8 * 40].reshape(8, 40).astype(np.int64)
                top.update(rows, S, cols)
            else:
                cols = (step * 100 + rng_u.permutation(40)).astype(np.int64)
                S_view = np.concatenate([S, np.zeros((8, 3), np.float32)], axis=1)[:, :40]  # strided rows
                top.update(rows, S_view, cols, row_max=S.max(axis=1) if step % 2 else None)
        tops[use_numba] = (top.D.copy(), top.I.copy())
    np.testing.assert_array_equal(tops[True][0], tops[False][0])
    np.testing.assert_array_equal(tops[True][1], tops[False][1])
    assert (tops[True][1] >= 0).all()  # every row filled


@pytest.mark.parametrize("use_numba", [True, False])
def test_blocks_scanned_together_give_the_results_of_blocks_alone(monkeypatch, use_numba):
    """fused_scan groups query blocks (GROUP_BLOCKS) so that each gathered gallery tile serves all of
    them; the tiles, calls and so the scores are those of each block alone: every output is equal,
    bit for bit, to the ungrouped scan's (continuous scores, an out-of-order gallery, a short last
    block, class and pair relevance), and to brute force."""
    monkeypatch.setattr(scan, "USE_NUMBA", use_numba and scan.counting.HAVE_NUMBA)
    monkeypatch.setattr(scan, "MIN_GALLERY_TILE", 1)
    monkeypatch.setattr(scan, "MIN_QUERY_BLOCK", 1)
    rng = np.random.default_rng(9)
    xq = rng.standard_normal((203, 16)).astype(np.float32)
    xb = rng.standard_normal((997, 16)).astype(np.float32)
    q, b = keys(rng, 203, 7, 0.5), keys(rng, 997, 7, 0.5)
    outs = {}
    for group in (1, 2, 4, 10):  # 21 blocks: 10 together is the most that leaves one worker 2 groups
        monkeypatch.setattr(scan, "GROUP_BLOCKS", group)
        outs[group] = fused_scan(xq, xb, q, b, 5, score_budget=2_000, tile=100, query_tile=10, workers=1)
    for group in (2, 4, 10):
        for key in ("D", "I", "ap", "m", "rank"):
            np.testing.assert_array_equal(outs[group][key], outs[1][key], err_msg=f"{key}, {group} blocks together")
    D_ref, I_ref, rank_ref, ap_ref, m_ref = brute(xq, xb, q, b, 5)
    np.testing.assert_array_equal(outs[10]["I"], I_ref)
    np.testing.assert_array_equal(outs[10]["rank"], rank_ref)
    np.testing.assert_allclose(outs[10]["ap"], ap_ref, rtol=0, atol=1e-12)


def test_scan_blocks_refuses_blocks_of_different_lengths():
    rng = np.random.default_rng(0)
    xq, xb = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal((9, 4)).astype(np.float32)
    q, b = keys(rng, 6, 2, 0.0), keys(rng, 9, 2, 0.0)
    s = scan._Scan(xq, xb, np.arange(9), q, b, 3, 1 << 20, 1 << 20, 9)
    with pytest.raises(ValueError, match="one length"):
        s.blocks([np.arange(4), np.arange(4, 6)])


def test_the_first_scan_of_a_process_rounds_as_every_later_one(slow_onednn_probe):
    """The scan's workers asked `gemm.onednn_available()` at their first tile; while one worker's
    probe ran, the other was told False and scored its first tiles with torch.mm, so the first
    scan of a process could differ from the next ones in its last bits (an AP of the default
    pipeline moved by 5e-5). The scan now resolves its sgemm once, before its workers start."""
    from embridge import gemm

    rng = np.random.default_rng(3)
    xq = rng.standard_normal((300, 384)).astype(np.float32)  # long dot products: torch.mm rounds them otherwise
    xb = rng.standard_normal((2_000, 384)).astype(np.float32)
    q, b = keys(rng, 300, 20, 0.0), keys(rng, 2_000, 20, 0.0)
    first = fused_scan(xq, xb, q, b, 10, score_budget=1 << 16, tile=1 << 20, query_tile=64, workers=2)  # probes
    assert gemm._AVAILABLE is not None
    later = fused_scan(xq, xb, q, b, 10, score_budget=1 << 16, tile=1 << 20, query_tile=64, workers=2)
    for k in ("D", "I", "ap", "rank"):
        np.testing.assert_array_equal(first[k], later[k])
