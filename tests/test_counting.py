"""The compiled counting kernel against brute force: exact counts and row maxima, with ties,
near-equal thresholds (grid rounding), -inf entries, rows without thresholds, strided input; on both
of its paths (the grid, per-threshold comparisons) and with rows of a block taking either; the
comparison rows both in numba and in the AVX-512 C kernel (`kernel` "c", where it is built and runs)."""

import numpy as np
import pytest
from embridge.evaluation import counting

pytestmark = pytest.mark.skipif(not counting.HAVE_NUMBA, reason="numba not installed")


NO_C = "the C counting kernel is not built here, or this CPU lacks AVX-512F"


@pytest.fixture(params=["numba", "c"])
def kernel(request, monkeypatch):
    """The comparison rows in numba, or in the C kernel (skipped where it is not built or not supported)."""
    if request.param == "c" and counting._C_TILE is None:
        pytest.skip(NO_C)
    monkeypatch.setattr(counting, "USE_C", request.param == "c")
    return request.param


@pytest.fixture
def c_kernel(monkeypatch):
    """The comparison rows in the C kernel (skipped where it is not built or not supported)."""
    if counting._C_TILE is None:
        pytest.skip(NO_C)
    monkeypatch.setattr(counting, "USE_C", True)


def brute(S, T, m):
    out = np.zeros(T.shape, dtype=np.int64)
    for i in range(len(S)):
        out[i, : m[i]] = (S[i][None, :] >= T[i, : m[i], None]).sum(axis=1)
    return out


@pytest.mark.parametrize("path", ["grid", "compare", "mixed"])
@pytest.mark.parametrize("case", ["continuous", "ties", "near", "tiny_range"])
def test_count_rows_equals_bruteforce(case, path, kernel):
    rng = np.random.default_rng(["continuous", "ties", "near", "tiny_range"].index(case))
    t, w, mm = 40, 700, 25
    if case == "ties":  # small integers: many scores equal to thresholds
        S = rng.integers(-4, 5, (t, w + 3)).astype(np.float32)
        T = rng.integers(-4, 5, (t, mm)).astype(np.float32)
    else:
        S = rng.standard_normal((t, w + 3)).astype(np.float32)
        T = rng.standard_normal((t, mm)).astype(np.float32)
    if case == "near":  # thresholds 1 ulp apart, scores equal to them and to their neighbours
        base = rng.standard_normal((t, 1)).astype(np.float32)
        T = np.nextafter(base, np.float32(np.inf)) * np.ones((1, mm), np.float32)
        T[:, ::2] = base
        S[:, :50] = np.repeat(T[:, :1], 50, axis=1)
        S[:, 50:100] = np.nextafter(T[:, :1], np.float32(-np.inf))
    if case == "tiny_range":  # thresholds spanning a few ulps of a large value
        T = (np.float32(0.9) + np.arange(mm, dtype=np.float32)[None, :] * np.float32(6e-8)).repeat(t, 0)
        S[:, :200] = np.float32(0.9) + rng.integers(-3, mm + 3, (t, 200)).astype(np.float32) * np.float32(6e-8)
    T = np.sort(T, axis=1)
    m = rng.integers(0, mm + 1, t)
    m[:3] = (0, 1, mm)
    T[np.arange(mm)[None, :] >= m[:, None]] = np.inf
    S[rng.random(S.shape) < 0.05] = -np.inf
    S = S[:, 3:]  # strided rows
    out = np.zeros((t, mm), dtype=np.int64)
    compare_max = {"grid": 0, "compare": mm, "mixed": mm // 2}[path]
    row_max = counting.count_rows(S, T, m, out, compare_max)
    np.testing.assert_array_equal(out, brute(S, T, m))
    np.testing.assert_array_equal(row_max, S.max(axis=1))
    out2 = out.copy()
    counting.count_rows(S, T, m, out2, compare_max)  # adds to what is there
    np.testing.assert_array_equal(out2, 2 * out)


@pytest.mark.parametrize("compare_max", [0, 12, 96])
def test_a_block_counted_tile_by_tile_equals_bruteforce_over_all_its_tiles(compare_max, kernel):
    """counting.Counter keeps a block's grid and bin histograms across its tiles: the counts after
    the last tile equal brute force over the whole row, whatever the tiles' widths and strides,
    with thresholds equal to scores of other tiles, thresholds in one bin, and -inf entries."""
    rng = np.random.default_rng(11)
    t, mm = 30, 40
    S = rng.standard_normal((t, 3_000)).astype(np.float32)
    T = np.sort(rng.choice(S.ravel(), (t, mm)), axis=1)  # thresholds that some scores equal exactly
    T[:4] = np.sort(np.float32(0.5) + rng.integers(0, 3, (4, mm)).astype(np.float32) * np.float32(6e-8), axis=1)
    S[:4, :300] = np.float32(0.5) + rng.integers(-2, 5, (4, 300)).astype(np.float32) * np.float32(6e-8)
    S[rng.random(S.shape) < 0.05] = -np.inf
    m = rng.integers(0, mm + 1, t)
    m[:4] = mm
    T[np.arange(mm)[None, :] >= m[:, None]] = np.inf
    counter = counting.Counter(T, m, compare_max)
    out = np.zeros((t, mm), dtype=np.int64)
    maxima = []
    for a, b in ((0, 700), (700, 701), (701, 2_000), (2_000, 3_000)):
        maxima.append(counter.add(S[:, a:b], out))  # column slices: strided rows
    counter.finish(out)
    np.testing.assert_array_equal(out, brute(S, T, m))
    np.testing.assert_array_equal(np.max(maxima, axis=0), S.max(axis=1))


@pytest.mark.parametrize("w", [1, 15, 16, 17, 511, 512, 513, 1_000, 1_536])
@pytest.mark.parametrize("every", [1, 3, 8, 100])
@pytest.mark.parametrize("mm", [128, 1_500])
def test_the_c_kernel_compacting_every_few_thresholds_equals_bruteforce(w, every, mm, c_kernel, monkeypatch):
    """The C kernel compacts each 512-score chunk to the scores >= the next threshold every
    `COMPACT_EVERY` thresholds, on rows of up to 128 and 1,500 thresholds (mm): exact at every
    chunk and vector tail (w around 16 and 512), with
    scores equal to the thresholds a compaction keys on, thresholds repeated across a compaction's
    boundary, -inf entries, rows of 0 thresholds and of mm, and rows of any stride."""
    monkeypatch.setattr(counting, "COMPACT_EVERY", every)
    monkeypatch.setattr(counting, "C_TREE_MIN", 10**9)  # every row by comparisons, none placed in a tree
    rng = np.random.default_rng(w * 101 + every + mm)
    t = 12
    S = rng.integers(-20, 21, (t, w + 5)).astype(np.float32) / np.float32(4)  # many exact ties
    T = np.sort(rng.integers(-24, 25, (t, mm)).astype(np.float32) / np.float32(4), axis=1)
    T[1, 5:20] = T[1, 5]  # one value repeated across the boundaries at 8 and 16
    m = rng.integers(1, mm + 1, t)
    m[:3] = (0, mm, 40)
    T[np.arange(mm)[None, :] >= m[:, None]] = np.inf
    S[rng.random(S.shape) < 0.1] = -np.inf
    S = S[:, 5:]
    out = np.full((t, mm), 7, dtype=np.int64)  # adds to what is there
    row_max = counting.count_rows(S, T, m, out, compare_max=mm)
    np.testing.assert_array_equal(out - 7, brute(S, T, m))
    np.testing.assert_array_equal(row_max, S.max(axis=1))


@pytest.mark.parametrize("mm", [1, 16, 17, 256, 257, 4_096, 4_097, 20_000])
@pytest.mark.parametrize("tree_min", [0, 100])
def test_the_c_kernel_placing_scores_in_a_tree_of_thresholds_equals_bruteforce(mm, tree_min, c_kernel, monkeypatch):
    """Rows of more than `C_TREE_MIN` thresholds place each score in a tree of 16-wide levels of
    their thresholds (1 to 4 levels: mm around 16, 256 and 4,096) and count from its histogram: the
    brute-force counts, with scores equal to thresholds at every level's boundaries, runs of equal
    thresholds across them, -inf thresholds and scores, +inf and NaN scores, rows of every length
    up to mm (the others by comparisons where tree_min is 100), in one call and tile by tile."""
    monkeypatch.setattr(counting, "C_TREE_MIN", tree_min)
    rng = np.random.default_rng(mm + tree_min)
    t, w = 9, 1_300
    T = np.sort(rng.integers(-3_000, 3_000, (t, mm)).astype(np.float32) / np.float32(64), axis=1)
    T[1, 10:40] = T[1, min(10, mm - 1)]  # a run across the level boundaries at 16 and 32
    T[2, : min(3, mm - 1)] = -np.inf
    S = rng.integers(-3_200, 3_200, (t, w)).astype(np.float32) / np.float32(64)
    for i in range(t):  # scores equal to the thresholds at the levels' boundaries and around them
        picks = T[i, [j for j in (0, 15, 16, 255, 256, 4_095, 4_096, mm - 1) if j < mm]]
        S[i, : 4 * len(picks)] = np.repeat(picks, 4)
    S[rng.random(S.shape) < 0.05] = -np.inf
    S[:, 100] = np.inf
    S[3, ::9] = np.nan
    m = rng.integers(1, mm + 1, t)
    m[:4] = mm
    m[4] = 0
    T[np.arange(mm)[None, :] >= m[:, None]] = np.inf
    expected = brute(np.nan_to_num(S, nan=-np.inf, posinf=np.inf, neginf=-np.inf), T, m)
    out = np.zeros((t, mm), dtype=np.int64)
    row_max = counting.count_rows(S, T, m, out, compare_max=mm)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(row_max, np.nanmax(S, axis=1))
    counter = counting.Counter(T, m, compare_max=mm)
    out = np.full((t, mm), 3, dtype=np.int64)
    for a, b in ((0, 17), (17, 600), (600, w)):
        counter.add(S[:, a:b], out)
    counter.finish(out)
    np.testing.assert_array_equal(out - 3, expected)


def test_the_c_kernel_leaves_nan_scores_out_of_counts_and_maxima(c_kernel):
    """A NaN score counts for no threshold (as `s >= t` is false) and is not a row's maximum; the
    other scores of its chunk count as they would without it."""
    rng = np.random.default_rng(5)
    S = rng.standard_normal((6, 700)).astype(np.float32)
    S[:, ::7] = np.nan
    T = np.sort(rng.standard_normal((6, 20)).astype(np.float32), axis=1)
    m = np.full(6, 20)
    out = np.zeros((6, 20), dtype=np.int64)
    row_max = counting.count_rows(S, T, m, out)
    np.testing.assert_array_equal(out, brute(np.nan_to_num(S, nan=-np.inf), T, m))
    np.testing.assert_array_equal(row_max, np.nanmax(S, axis=1))


def test_tiles_the_c_kernel_does_not_take_are_counted_by_numba_exactly(c_kernel, monkeypatch):
    """A tile with a column stride never goes to the C kernel, and one it declines (it returns
    nonzero, as when it cannot allocate its work space) goes to numba instead: the same counts as
    brute force either way, on the comparison rows and the grid rows of one block."""
    calls = []
    rng = np.random.default_rng(9)
    S = rng.standard_normal((5, 2_000)).astype(np.float32)
    T = np.sort(rng.standard_normal((5, 30)).astype(np.float32), axis=1)
    m = np.array([30, 30, 4, 0, 12])
    T[np.arange(30)[None, :] >= m[:, None]] = np.inf
    for tile, declines in ((S[:, ::2], False), (S, True)):
        monkeypatch.setattr(counting, "_C_TILE", lambda *a: calls.append(a) or -3)
        out = np.zeros((5, 30), dtype=np.int64)
        counting.count_rows(tile, T, m, out, compare_max=10)  # rows 0, 1: the grid; 2, 4: comparisons
        np.testing.assert_array_equal(out, brute(tile, T, m))
        assert len(calls) == declines  # the strided tile never asked


def test_the_c_kernel_is_built_and_used_where_a_compiler_and_avx512_are():
    """setup.py's extension is optional (an install without a compiler goes on): here, where gcc and
    an AVX-512 CPU are, the install must have built it and the scan must count with it."""
    import platform
    import shutil

    flags = ""
    if platform.system() == "Linux":
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    if platform.machine() != "x86_64" or " avx512f" not in flags or not shutil.which("cc"):
        pytest.skip("no C compiler or no AVX-512F here: the numba kernel counts")
    assert counting._C_TILE is not None, "embridge.evaluation._countc was not built or did not load"
    assert counting.USE_C


def topk_of_union(seen: list[tuple[float, int]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top k of (score, gallery index) pairs by (score desc, index asc), -inf and NaN left out,
    padded with (-inf, -1): what the running lists must hold after merging them all."""
    kept = sorted((-s, c) for s, c in seen if s > -np.inf)[:k]
    D = np.full(k, -np.inf, dtype=np.float32)
    I = np.full(k, -1, dtype=np.int64)
    D[: len(kept)] = [-s for s, _ in kept]
    I[: len(kept)] = [c for _, c in kept]
    return D, I


@pytest.mark.parametrize("k", [1, 6, 700])
def test_the_c_kernel_merges_tiles_into_the_topk_lists_as_merge_topk_does(k, c_kernel):
    """`Counter.add` with the top-k lists: the C kernel merges each tile in its counting pass. Against
    the union of every score seen (sorted by score desc, index asc) and against numba's
    `merge_topk`: tiles of small integers (ties at the cut-off, broken by the lower index), -inf and
    NaN entries (neither enters), rows that start empty, column slices (strided rows) at every
    chunk and vector tail, k = 1, k above the tile width, and blocks of rows in any order. Counts
    and row maxima as without the lists."""
    rng = np.random.default_rng(k)
    nq, t = 30, 9
    D, I = np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
    D_nb, I_nb = D.copy(), I.copy()
    seen = [[] for _ in range(nq)]
    next_col = 0
    for step, w in enumerate((17, 512, 513, 1, 1_100, 40)):
        rows = rng.choice(nq, t, replace=False).astype(np.int64)
        S = (rng.integers(-6, 7, (t, w + 3)).astype(np.float32) / np.float32(2))[:, 3:]  # strided rows
        S[rng.random(S.shape) < 0.1] = -np.inf
        S[rng.random(S.shape) < 0.03] = np.nan
        cols = (next_col + rng.permutation(w)).astype(np.int64)  # each gallery index seen once
        next_col += w
        T = np.sort(rng.integers(-6, 7, (t, 5)).astype(np.float32) / np.float32(2), axis=1)
        m = np.full(t, 5)
        counter = counting.Counter(T, m)
        out = np.zeros((t, 5), dtype=np.int64)
        row_max = counter.add(S, out, (rows, cols, D, I))
        counter.finish(out)
        np.testing.assert_array_equal(out, brute(np.nan_to_num(S, nan=-np.inf), T, m))
        np.testing.assert_array_equal(row_max, np.nanmax(S, axis=1))
        counting.merge_topk(S, cols, rows, D_nb, I_nb, row_max)
        for r, q in enumerate(rows):
            seen[q] += list(zip(S[r].tolist(), cols.tolist(), strict=True))
        np.testing.assert_array_equal(D, D_nb, err_msg=f"step {step}")
        np.testing.assert_array_equal(I, I_nb, err_msg=f"step {step}")
    for q in range(nq):
        D_ref, I_ref = topk_of_union(seen[q], k)
        np.testing.assert_array_equal(D[q], D_ref)
        np.testing.assert_array_equal(I[q], I_ref)
    # a tile of NaN and -inf alone leaves every list as it was (full or not)
    S = np.where(rng.random((nq, 600)) < 0.5, np.float32(np.nan), np.float32(-np.inf)).astype(np.float32)
    before = D.copy(), I.copy()
    counting.Counter(np.zeros((nq, 1), np.float32), np.ones(nq)).add(
        S, np.zeros((nq, 1), dtype=np.int64), (np.arange(nq), np.arange(600), D, I))
    np.testing.assert_array_equal(D, before[0])
    np.testing.assert_array_equal(I, before[1])


def test_topk_lists_the_c_kernel_cannot_take_are_merged_by_numba_after_it(c_kernel, monkeypatch):
    """Per-row gallery indices (t, w), or lists of another layout, go to `merge_topk` after the C
    kernel's counting: the same lists as merging without the counter."""
    calls = []
    real = counting._C_TILE
    monkeypatch.setattr(counting, "_C_TILE", lambda *a: calls.append(a[13]) or real(*a))
    rng = np.random.default_rng(3)
    S = rng.standard_normal((4, 600)).astype(np.float32)
    T = np.sort(rng.standard_normal((4, 3)).astype(np.float32), axis=1)
    rows = np.array([3, 0, 2, 1], dtype=np.int64)
    for cols in (rng.permutation(4 * 600).reshape(4, 600).astype(np.int64), np.arange(1_200, dtype=np.int64)[::2]):
        D, I = np.full((4, 5), -np.inf, dtype=np.float32), np.full((4, 5), -1, dtype=np.int64)
        D_ref, I_ref = D.copy(), I.copy()
        counting.Counter(T, np.full(4, 3)).add(S, np.zeros((4, 3), dtype=np.int64), (rows, cols, D, I))
        counting.merge_topk(S, cols, rows, D_ref, I_ref)
        np.testing.assert_array_equal(D, D_ref)
        np.testing.assert_array_equal(I, I_ref)
    assert calls == [None, None]  # the C kernel counted both tiles, merging neither
