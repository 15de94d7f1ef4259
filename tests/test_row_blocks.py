"""l2_normalize, modality_mean and collapse_rows work in float64 row blocks; oracle: the one-pass
formulas over the whole table they replaced, which they must equal bit for bit (C, Fortran and
strided input, zero rows, blocks that do not divide the row count), on any number of threads and in a
forked child."""

import threading

import numpy as np
import pytest
from embridge.methods import base
from embridge.methods.base import ROW_BLOCK, for_row_blocks, l2_normalize
from embridge.methods.c3 import collapse_rows, modality_mean


def one_pass_l2(Z, eps=1e-12):
    Z = np.asarray(Z, dtype=np.float64)
    return (Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), eps)).astype(np.float32)


def one_pass_mean(X):
    Xn = np.asarray(X, dtype=np.float64)
    return (Xn / np.maximum(np.linalg.norm(Xn, axis=1, keepdims=True), 1e-12)).mean(axis=0)


def one_pass_collapse(X, mean, renormalize):
    Z = one_pass_l2(X)
    if mean is None:
        return Z
    Z = Z.astype(np.float64) - mean[None, :]
    return one_pass_l2(Z) if renormalize else Z.astype(np.float32)


@pytest.mark.parametrize("shape,dtype", [((3 * ROW_BLOCK + 17, 96), np.float32), ((1000, 3), np.float16),
                                         ((ROW_BLOCK, 513), np.float64), ((1, 8), np.float32)])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_row_blocks_equal_the_one_pass_formulas(shape, dtype, layout):
    rng = np.random.default_rng(shape[0])
    X = (rng.standard_normal(shape) * rng.uniform(0, 10, (shape[0], 1))).astype(dtype)
    X[0] = 0  # a zero row: divided by eps, not by 0
    X = {"C": X, "F": np.asfortranarray(X), "strided": X[::2]}[layout]
    assert l2_normalize(X).tobytes() == one_pass_l2(X).tobytes()
    mu = one_pass_mean(X)
    assert modality_mean(X).tobytes() == mu.tobytes()
    for mean in (None, mu):
        for renormalize in (True, False):
            assert collapse_rows(X, mean, renormalize).tobytes() == one_pass_collapse(X, mean, renormalize).tobytes()


@pytest.mark.parametrize("n", [0, 1, ROW_BLOCK, 5 * ROW_BLOCK + 3])
def test_for_row_blocks_covers_every_row_once_in_blocks_across_threads(n, monkeypatch):
    monkeypatch.setattr(base, "ROW_THREADS", 3)
    seen, lock = np.zeros(n, dtype=int), threading.Lock()

    def fn(rows):
        assert rows.stop - rows.start <= ROW_BLOCK and rows.start % ROW_BLOCK == 0
        with lock:
            seen[rows] += 1

    for_row_blocks(n, fn)
    assert (seen == 1).all()


def test_for_row_blocks_reraises_a_blocks_error_and_l2_normalize_is_thread_count_invariant(monkeypatch):
    def fn(rows):
        if rows.start == 2 * ROW_BLOCK:
            raise ValueError(f"bad block at row {rows.start}")

    with pytest.raises(ValueError, match=f"bad block at row {2 * ROW_BLOCK}"):
        for_row_blocks(4 * ROW_BLOCK, fn)
    X = np.random.default_rng(1).standard_normal((7 * ROW_BLOCK + 5, 64)).astype(np.float32)
    outs = []
    for k in (1, 2, 5):
        monkeypatch.setattr(base, "ROW_THREADS", k)
        outs.append(l2_normalize(X).tobytes())
    assert outs[0] == outs[1] == outs[2] == one_pass_l2(X).tobytes()


def test_l2_normalize_in_a_forked_child_after_the_pool_exists():
    import multiprocessing as mp

    X = np.random.default_rng(2).standard_normal((4 * ROW_BLOCK, 16)).astype(np.float32)
    want = l2_normalize(X)  # the parent's pool now exists
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:  # the child inherits the pool object but none of its threads
        got = pool.apply_async(l2_normalize, (X,)).get(timeout=60)
    assert got.tobytes() == want.tobytes()
