"""The row norms and checks in C (embridge.rows, _rowsc.c) against numpy's formulas they replace,
bit for bit: the float64 sums of squares (numpy's pairwise summation in np.add.reduce), the unit rows
of l2_normalize and C^3's collapse, and the NaN/Inf and zero rows that bad_rows reports; on every
row length around numpy's summation blocks (8, 128), extreme scales, NaN, Inf, zero and subnormal
rows, strided views, and the inputs C leaves to numpy (float16, float64, column-major)."""

from __future__ import annotations

import platform
import shutil

import numpy as np
import pytest
from embridge import rows
from embridge.methods.base import l2_normalize
from embridge.methods.c3 import collapse_rows, modality_mean
from embridge.store.checks import bad_rows

DIMS = [1, 3, 7, 8, 9, 15, 16, 17, 100, 127, 128, 129, 136, 255, 256, 257, 512, 768, 1024, 1537, 4096, 10_000]

needs_c = pytest.mark.skipif(not rows.USE_C, reason="embridge._rowsc is not built here")


def numpy_l2(Z, eps=1e-12):
    Z = np.asarray(Z, dtype=np.float64)
    return (Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), eps)).astype(np.float32)


def numpy_collapse(X, mean, renormalize):
    Z = numpy_l2(X).astype(np.float64) - mean[None, :]
    return numpy_l2(Z) if renormalize else Z.astype(np.float32)


def numpy_bad_rows(X):
    finite = np.isfinite(X).all(axis=1)
    return np.flatnonzero(~finite), np.flatnonzero(finite & ~(X != 0).any(axis=1))


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """The same float32 bits, NaN where the other has NaN (its payload aside)."""
    nan = np.isnan(a)
    return a.shape == b.shape and bool((nan == np.isnan(b)).all()) and a[~nan].tobytes() == b[~nan].tobytes()


def rows_at_every_scale(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-30, 30, (n, 1))
    X = (rng.standard_normal((n, d)) * scale).astype(np.float32)
    X[0] = 0.0
    X[1, : max(1, d // 2)] = np.float32(1e-45)  # float32 subnormals: their squares are float64 normals
    X[2] = np.float32(3.4e38)  # the largest float32s: their squares do not overflow float64
    return X


def test_the_c_kernel_is_built_where_a_compiler_is():
    if platform.machine() != "x86_64" or not shutil.which("cc"):
        pytest.skip("no C compiler here: numpy computes the rows")
    assert rows.USE_C, "embridge._rowsc was not built or did not load"


@needs_c
@pytest.mark.parametrize("d", DIMS)
def test_sums_of_squares_are_numpys_pairwise_sums(d):
    X = rows_at_every_scale(40, d, d)
    X64 = X.astype(np.float64)
    assert rows.row_sumsq(X).tobytes() == np.add.reduce(X64 * X64, axis=1).tobytes()


@needs_c
@pytest.mark.parametrize("d", DIMS)
def test_unit_rows_and_collapse_are_numpys_bits(d, monkeypatch):
    X = rows_at_every_scale(300, d, d)
    mean = modality_mean(X[3:])
    want_l2 = numpy_l2(X)
    got = l2_normalize(X)
    assert same(got, want_l2)
    for renormalize in (True, False):
        assert same(collapse_rows(X, mean, renormalize), numpy_collapse(X, mean, renormalize))
    assert same(collapse_rows(X, mean.astype(np.float32), True), numpy_collapse(X, mean.astype(np.float32), True))
    monkeypatch.setattr(rows, "USE_C", False)  # numpy's own blocks: the same bits again
    assert same(l2_normalize(X), got)


@needs_c
def test_nan_and_inf_rows_come_out_as_numpys():
    X = rows_at_every_scale(6, 300, 0)
    X[3, 7], X[4, 0], X[5, 299] = np.nan, np.inf, -np.inf
    assert same(l2_normalize(X), numpy_l2(X))
    for got, want in zip(bad_rows(X), numpy_bad_rows(X), strict=True):
        assert got.tolist() == want.tolist()
    assert bad_rows(X)[0].tolist() == [3, 4, 5] and bad_rows(X)[1].tolist() == [0]


@needs_c
@pytest.mark.parametrize("layout", ["rows apart", "columns cut", "column-major", "float16", "float64", "one row"])
def test_every_layout_gives_numpys_bits(layout, monkeypatch):
    base = rows_at_every_scale(700, 130, 7)
    X = {"rows apart": base[::3], "columns cut": base[:, 5:120], "column-major": np.asfortranarray(base),
         "float16": base.astype(np.float16), "float64": base.astype(np.float64), "one row": base[9:10]}[layout]
    runs_in_c = rows.row_sumsq(X) is not None
    assert runs_in_c == (layout in ("rows apart", "columns cut", "one row"))
    mean = modality_mean(np.asarray(X, dtype=np.float32)[3:] if layout != "float16" else X[3:])
    got = (l2_normalize(X), collapse_rows(X, mean, True), bad_rows(X))
    assert same(got[0], numpy_l2(X))
    assert same(got[1], numpy_collapse(X, mean, True))
    assert [r.tolist() for r in got[2]] == [r.tolist() for r in numpy_bad_rows(X)]
    monkeypatch.setattr(rows, "USE_C", False)
    assert rows.row_sumsq(X) is None
    assert same(l2_normalize(X), got[0]) and same(collapse_rows(X, mean, True), got[1])


@needs_c
def test_what_c_cannot_take_is_left_to_numpy():
    X = np.ones((4, 6), dtype=np.float32)
    out = np.empty((4, 6), dtype=np.float32)
    assert not rows.unit_rows_c(X, out[:, ::-1], None, True, 1e-12)  # out not contiguous
    assert not rows.unit_rows_c(X, out.astype(np.float64), None, True, 1e-12)
    assert not rows.unit_rows_c(X[::-1], out, None, True, 1e-12)  # rows backwards
    assert not rows.unit_rows_c(X, out, np.ones(5), True, 1e-12)  # a mean of the wrong length: numpy's error
    with pytest.raises(ValueError, match="broadcast"):
        collapse_rows(X, np.ones(5), True)
    assert rows.unit_rows_c(X, out, None, True, 1e-12)
    assert np.allclose(out, 1 / np.sqrt(6))
    assert len(l2_normalize(np.empty((0, 6), dtype=np.float32))) == 0
    assert bad_rows(np.empty((0, 6), dtype=np.float32))[0].tolist() == []
