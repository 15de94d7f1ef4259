"""l2_normalize, modality_mean and collapse_rows work in float64 row blocks; oracle: the one-pass
formulas over the whole table they replaced, which they must equal bit for bit (C, Fortran and
strided input, zero rows, blocks that do not divide the row count)."""

import numpy as np
import pytest
from embridge.methods.base import ROW_BLOCK, l2_normalize
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
