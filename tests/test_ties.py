"""Exact ties between a relevant and an irrelevant gallery row (duplicate vectors) count against the
query on every path: R@1 = 0, MRR = 1/2 and AP = 1/2 for every query (issue 14, cause 5)."""

import numpy as np
import pytest
from embridge.evaluation import scan
from embridge.evaluation.metrics import per_query
from embridge.evaluation.relevance import RowKeys
from embridge.evaluation.search import has_faiss, has_faiss_gpu


def duplicated(seed, nq, n_other, d, pairs):
    """Each query's one relevant gallery row has an exact copy that is irrelevant to it, and both
    score far above every other row. pairs: relevance by pair code, else by label (one class per query)."""
    rng = np.random.default_rng(seed)
    xq = rng.standard_normal((nq, d)).astype(np.float32)
    xq /= np.linalg.norm(xq, axis=1, keepdims=True)
    target = xq + rng.standard_normal((nq, d)).astype(np.float32) / np.sqrt(d)  # cosine about 0.7
    target /= np.linalg.norm(target, axis=1, keepdims=True)
    other = rng.standard_normal((n_other, d)).astype(np.float32)
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    xb = np.concatenate([other[: n_other // 2], target, other[n_other // 2 :], target[rng.permutation(nq)]])
    relevant = np.full(len(xb), -1)  # the query each gallery row is relevant to (-1: none)
    relevant[n_other // 2 : n_other // 2 + nq] = np.arange(nq)
    if pairs:  # the irrelevant copy carries another query's pair code
        q = RowKeys(np.full(nq, -1), np.arange(nq))
        b = RowKeys(np.full(len(xb), -1), np.where(relevant >= 0, relevant, np.arange(len(xb)) + nq))
    else:  # the irrelevant copy is unlabelled, every other row another class
        q = RowKeys(np.arange(nq), np.full(nq, -1))
        b = RowKeys(np.where(relevant >= 0, relevant, -1), np.full(len(xb), -1))
    return xq, xb, q, b


def paths():
    # the fused scan with each of its tile sgemms (scan.SGEMM)
    out = [("fused onednn", {"fused": True, "sgemm": "onednn"}), ("fused mkl", {"fused": True, "sgemm": "mkl"}),
           ("two-pass torch", {"fused": False, "backend": "torch"})]
    if has_faiss():
        out.append(("two-pass faiss", {"fused": False, "backend": "faiss"}))
    import torch

    if torch.cuda.is_available():
        out.append(("gpu", {"fused": False, "device": "cuda", "backend": "faiss-gpu" if has_faiss_gpu() else "torch"}))
    return out


@pytest.mark.parametrize("pairs", [True, False], ids=["pairs", "labels"])
@pytest.mark.parametrize("d,nq,n_other", [(384, 200, 3000), (64, 37, 500), (1024, 3, 40)])
@pytest.mark.parametrize("name,kw", paths(), ids=[p[0] for p in paths()])
def test_duplicate_rows_tie_against_the_query(name, kw, d, nq, n_other, pairs, monkeypatch):
    kw = dict(kw)
    if "sgemm" in kw:
        monkeypatch.setattr(scan, "SGEMM", kw.pop("sgemm"))
    xq, xb, q, b = duplicated(d + nq, nq, n_other, d, pairs)
    per = per_query(xq, xb, q, b, kmax=10, **kw)
    np.testing.assert_array_equal(per["m"], 1)
    np.testing.assert_array_equal(per["rank"], 2.0)  # R@1 = 0, reciprocal rank 1/2 for every query
    np.testing.assert_array_equal(per["ap"], 0.5)


@pytest.mark.parametrize("sgemm", ["onednn", "mkl"])
@pytest.mark.parametrize("workers", [1, 2])
def test_duplicate_rows_tie_with_small_tiles_and_blocks(monkeypatch, workers, sgemm):
    """Many tiles per block (relevant copies in tiles of their own, some scored twice) and blocks of odd sizes."""
    monkeypatch.setattr(scan, "SGEMM", sgemm)
    monkeypatch.setattr(scan, "MIN_GALLERY_TILE", 1)
    monkeypatch.setattr(scan, "MIN_QUERY_BLOCK", 1)
    monkeypatch.setattr(scan, "HOLD_TILES", 1)
    xq, xb, q, b = duplicated(11, 150, 2000, 96, pairs=False)
    got = scan.fused_scan(xq, xb, q, b, 10, score_budget=20_000, tile=700, query_tile=47, workers=workers)
    np.testing.assert_array_equal(got["rank"], 2.0)
    np.testing.assert_array_equal(got["ap"], 0.5)


def test_onednn_is_the_default_sgemm_where_torch_has_it_and_the_environment_picks_mkl(monkeypatch):
    """"auto" takes `embridge.gemm.backend()`'s choice: oneDNN's linear when torch was built with it
    (the CPU wheels are), torch.mm (MKL) with EMBRIDGE_CPU_GEMM=torch; either agrees with the
    float64 product to float32 rounding."""
    import torch
    from embridge import gemm

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    assert scan.SGEMM == "auto" and gemm.MODE == "auto"
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((64, 512), dtype=np.float32), rng.standard_normal((300, 512), dtype=np.float32)
    for setting, kind in ((None, "onednn"), ("torch", "mkl"), ("onednn", "onednn")):
        if setting is None:
            monkeypatch.delenv(gemm.ENV, raising=False)
        else:
            monkeypatch.setenv(gemm.ENV, setting)
        assert scan._sgemm_kind() == kind
        np.testing.assert_allclose(scan._sgemm(A, B), A.astype(np.float64) @ B.T.astype(np.float64), rtol=0, atol=1e-3)

