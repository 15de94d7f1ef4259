"""The compiled counting kernel against brute force: exact counts and row maxima, with ties,
near-equal thresholds (grid rounding), -inf entries, rows without thresholds, strided input; on both
of its paths (the grid, per-threshold comparisons) and with rows of a block taking either."""

import numpy as np
import pytest
from embridge.evaluation import counting

pytestmark = pytest.mark.skipif(not counting.HAVE_NUMBA, reason="numba not installed")


def brute(S, T, m):
    out = np.zeros(T.shape, dtype=np.int64)
    for i in range(len(S)):
        out[i, : m[i]] = (S[i][None, :] >= T[i, : m[i], None]).sum(axis=1)
    return out


@pytest.mark.parametrize("path", ["grid", "compare", "mixed"])
@pytest.mark.parametrize("case", ["continuous", "ties", "near", "tiny_range"])
def test_count_rows_equals_bruteforce(case, path):
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
def test_a_block_counted_tile_by_tile_equals_bruteforce_over_all_its_tiles(compare_max):
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
