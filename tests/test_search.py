"""Exact search: FAISS top-k equals numpy top-k (tolerating ties), tiled equals untiled, torch equals FAISS."""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

import numpy as np
import pytest
from embridge.errors import ConfigError, InputError
from embridge.evaluation import search
from embridge.evaluation.search import knn, merge_topk, normalize, resolve_backend


def gaussian(seed, n, d=16):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def tied(seed, n, d=8):
    """Vectors in {-1, 0, 1}^d with no zero row: inner products are small integers, exact in any
    summation order, so ties are real ties on every backend."""
    X = np.random.default_rng(seed).integers(-1, 2, size=(n, d)).astype(np.float32)
    X[~X.any(axis=1), 0] = 1.0
    return X


def numpy_topk(xq, xb, k):
    S = xq.astype(np.float64) @ xb.astype(np.float64).T
    I = np.argsort(-S, axis=1, kind="stable")[:, :k]  # ties: lower index first
    return np.take_along_axis(S, I, axis=1), I


def assert_valid_topk(xq, xb, D, I, k):
    """Tie-tolerant check: scores equal numpy's top-k, ids are distinct and carry those scores,
    and equal scores are listed by increasing id."""
    D_ref, _ = numpy_topk(xq, xb, k)
    np.testing.assert_allclose(D, D_ref, rtol=1e-5, atol=1e-5)
    S_I = np.einsum("qd,qkd->qk", xq.astype(np.float64), xb[I].astype(np.float64))
    np.testing.assert_allclose(S_I, D, rtol=1e-5, atol=1e-5)
    assert all(len(set(row)) == k for row in I)
    same = np.isclose(D[:, 1:], D[:, :-1], rtol=0, atol=1e-6)
    assert (I[:, 1:][same] > I[:, :-1][same]).all()


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_topk_equals_numpy_without_ties(backend):
    xq, xb = gaussian(0, 50), gaussian(1, 400)
    D, I = knn(xq, xb, 10, backend=backend)
    D_ref, I_ref = numpy_topk(xq, xb, 10)
    assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == I.shape == (50, 10)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_topk_with_ties(backend):
    xq, xb = tied(2, 40), tied(3, 300)
    D, I = knn(xq, xb, 12, backend=backend)
    assert_valid_topk(xq, xb, D, I, 12)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
def test_tiled_equals_untiled(backend):
    xq, xb = gaussian(4, 70), gaussian(5, 500)
    D0, I0 = knn(xq, xb, 7, backend=backend)
    D1, I1 = knn(xq, xb, 7, tile=37, query_tile=11, backend=backend)
    np.testing.assert_array_equal(I0, I1)
    np.testing.assert_allclose(D0, D1, rtol=1e-6, atol=1e-6)
    # with ties, tiles of any size still give the exact top-k scores
    xq, xb = tied(6, 30), tied(7, 200)
    D2, I2 = knn(xq, xb, 9, tile=13, query_tile=4, backend=backend)
    assert_valid_topk(xq, xb, D2, I2, 9)


def test_torch_fallback_equals_faiss():
    xq, xb = normalize(gaussian(8, 60, 32)), normalize(gaussian(9, 300, 32))
    Df, If = knn(xq, xb, 10, backend="faiss")
    Dt, It = knn(xq, xb, 10, tile=64, query_tile=16, backend="torch")
    np.testing.assert_array_equal(If, It)
    np.testing.assert_allclose(Df, Dt, rtol=1e-5, atol=1e-6)


def test_auto_without_faiss_uses_torch(monkeypatch):
    monkeypatch.setattr(search, "_faiss", lambda: None)
    assert resolve_backend("auto") == "torch"
    with pytest.raises(ConfigError, match="not importable"):
        resolve_backend("faiss")
    xq, xb = gaussian(10, 5), gaussian(11, 50)
    _, I = knn(xq, xb, 3)
    np.testing.assert_array_equal(I, numpy_topk(xq, xb, 3)[1])


def test_auto_picks_faiss_on_cpu():
    assert resolve_backend("auto") == ("faiss-gpu" if search.has_faiss_gpu() else "faiss")
    with pytest.raises(ConfigError, match="expected one of"):
        resolve_backend("annoy")


def test_k_larger_than_gallery_returns_whole_gallery():
    xq, xb = gaussian(12, 4), gaussian(13, 6)
    D, I = knn(xq, xb, 10)
    assert I.shape == (4, 6)
    assert all(sorted(row) == list(range(6)) for row in I)


def test_merge_topk_equals_topk_of_union():
    rng = np.random.default_rng(14)
    D1, D2 = rng.random((5, 4)).astype(np.float32), rng.random((5, 4)).astype(np.float32)
    D2[:, 0] = D1[:, 0]  # cross-list ties
    I1, I2 = np.tile(np.arange(4), (5, 1)) + 10, np.tile(np.arange(4), (5, 1))
    D, I = merge_topk(D1, I1, D2, I2, 4)
    for q in range(5):
        pool = sorted(zip(-np.r_[D1[q], D2[q]], np.r_[I1[q], I2[q]], strict=True))[:4]
        assert [i for _, i in pool] == list(I[q])


def test_bad_inputs_are_input_errors():
    xb = gaussian(15, 20)
    bad = gaussian(16, 5)
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match=r"queries xq: row 3 holds NaN"):
        knn(bad, xb, 3)
    with pytest.raises(InputError, match=r"queries have dimension 8 but the gallery has dimension 16"):
        knn(gaussian(17, 5, 8), xb, 3)
    with pytest.raises(InputError, match="no rows"):
        knn(np.zeros((0, 16), np.float32), xb, 3)
    with pytest.raises(InputError, match="all-zero"):
        knn(gaussian(18, 5), np.zeros((4, 16), np.float32), 3)
    with pytest.raises(InputError, match="k = 0"):
        knn(gaussian(19, 5), xb, 0)
    with pytest.raises(InputError, match="expected a 2-D array"):
        knn(np.ones(16, np.float32), xb, 3)


def test_normalize_gives_unit_rows():
    Z = normalize(gaussian(20, 30) * 7)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-6)
