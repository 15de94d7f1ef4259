"""Retrieval metrics and zero-shot accuracy against brute-force references (numpy, scikit-learn), with ties."""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

import numpy as np
import polars as pl
import pytest
from embridge.evaluation.metrics import per_query, retrieval_metrics
from embridge.evaluation.relevance import RowKeys, relevance, row_keys, row_pairs
from embridge.evaluation.zeroshot import class_ranks, prototypes, zeroshot_accuracy
from embridge.store import EmbeddingTable
from sklearn.metrics import average_precision_score


def keys(rng, n, n_labels=4, p_pair=0.4, n_pair_codes=30, p_unlabelled=0.1):
    labels = rng.integers(0, n_labels, n)
    labels[rng.random(n) < p_unlabelled] = -1
    pairs = np.where(rng.random(n) < p_pair, rng.integers(0, n_pair_codes, n), -1)
    return RowKeys(labels.astype(np.int64), pairs.astype(np.int64))


def naive_relevant(q: RowKeys, b: RowKeys, i: int, j: int) -> bool:
    if q.pairs[i] >= 0 and b.pairs[j] >= 0:
        return q.pairs[i] == b.pairs[j]
    return q.labels[i] >= 0 and q.labels[i] == b.labels[j]


def reference(xq, xb, q, b, ks, kmax):
    """Brute force: full score matrix, relevance by loops, pessimistic first rank, sklearn AP."""
    S = xq.astype(np.float64) @ xb.astype(np.float64).T
    hits = {k: [] for k in ks}
    rr, aps = [], []
    for i in range(len(xq)):
        rel = np.array([naive_relevant(q, b, i, j) for j in range(len(xb))])
        if not rel.any():
            continue
        best = S[i][rel].max()
        rank = 1 + int(((~rel) & (S[i] >= best)).sum())
        for k in ks:
            hits[k].append(rank <= k)
        rr.append(1.0 / rank if rank <= kmax else 0.0)
        aps.append(average_precision_score(rel, S[i]))
    out = {f"R@{k}": float(np.mean(v)) for k, v in hits.items()}
    return {**out, "MRR": float(np.mean(rr)), "mAP": float(np.mean(aps)), "queries": len(aps)}


def tied(rng, n, d=6):
    X = rng.integers(-1, 2, size=(n, d)).astype(np.float32)
    X[~X.any(axis=1), 0] = 1.0
    return X


def test_relevance_rule_block_and_gather():
    rng = np.random.default_rng(0)
    q, b = keys(rng, 15), keys(rng, 25)
    R = relevance(q, b)
    for i in range(15):
        for j in range(25):
            assert R[i, j] == naive_relevant(q, b, i, j)
    I = rng.integers(0, 25, size=(15, 4))
    np.testing.assert_array_equal(relevance(q, b, I), np.take_along_axis(R, I, axis=1))
    np.testing.assert_array_equal(relevance(q, b, slice(5, 12)), R[:, 5:12])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_metrics_match_bruteforce_with_ties(seed):
    """Integer-valued vectors: exact score ties everywhere, including at the kmax cut-off."""
    rng = np.random.default_rng(seed)
    xq, xb = tied(rng, 60), tied(rng, 200)
    q, b = keys(rng, 60), keys(rng, 200)
    ref = reference(xq, xb, q, b, (1, 5, 10), 10)
    for tiles in ({}, {"tile": 17, "query_tile": 7, "score_budget": 450}):
        got = retrieval_metrics(xq, xb, q, b, ks=(1, 5, 10), kmax=10, **tiles)
        assert got["queries"] == ref["queries"] and got["gallery"] == 200
        for name in ("R@1", "R@5", "R@10", "MRR", "mAP"):
            assert got[name] == pytest.approx(ref[name], abs=1e-12), name


def test_metrics_match_bruteforce_continuous_and_torch_backend():
    rng = np.random.default_rng(4)
    xq, xb = rng.standard_normal((50, 12)).astype(np.float32), rng.standard_normal((150, 12)).astype(np.float32)
    q, b = keys(rng, 50, p_pair=0.0), keys(rng, 150, p_pair=0.0)
    ref = reference(xq, xb, q, b, (1, 3), 5)
    for backend in ("faiss", "torch"):
        got = retrieval_metrics(xq, xb, q, b, ks=(1, 3), kmax=5, backend=backend)
        for name in ("R@1", "R@3", "MRR", "mAP"):
            assert got[name] == pytest.approx(ref[name], abs=1e-9), (backend, name)


def test_instance_pairs_r1_equals_argmax():
    """One relevant item per query (its pair): R@1 is the share of queries whose argmax is the pair,
    and AP equals reciprocal rank, so mAP equals MRR when kmax covers the gallery."""
    rng = np.random.default_rng(5)
    xq = rng.standard_normal((80, 10)).astype(np.float32)
    perm = rng.permutation(80)  # gallery row j is the partner of query perm[j]
    xb = xq[perm] + 0.8 * rng.standard_normal((80, 10)).astype(np.float32)
    q = RowKeys(np.full(80, -1), np.arange(80))
    b = RowKeys(np.full(80, -1), perm.astype(np.int64))
    got = retrieval_metrics(xq, xb, q, b, ks=(1,), kmax=80)
    r1 = np.mean(perm[np.argmax(xq @ xb.T, axis=1)] == np.arange(80))
    assert got["R@1"] == pytest.approx(r1)
    assert got["mAP"] == pytest.approx(got["MRR"], abs=1e-12)


def test_queries_without_relevant_items_are_left_out():
    rng = np.random.default_rng(6)
    xq, xb = rng.standard_normal((6, 4)), rng.standard_normal((9, 4))
    q = RowKeys(np.array([0, 1, -1, 7, 0, 1]), np.full(6, -1))
    b = RowKeys(np.array([0, 1, 0, 1, 2, 2, 0, 1, 2]), np.full(9, -1))
    per = per_query(xq, xb, q, b, kmax=3)
    np.testing.assert_array_equal(per["m"], [3, 3, 0, 0, 3, 3])
    assert np.isnan(per["ap"][[2, 3]]).all() and np.isinf(per["rank"][[2, 3]]).all()
    assert retrieval_metrics(xq, xb, q, b, ks=(1,), kmax=3)["queries"] == 4
    none = retrieval_metrics(xq, xb, RowKeys(np.full(6, -1), np.full(6, -1)), b, ks=(1,), kmax=3)
    assert none["queries"] == 0 and none["R@1"] is None and none["mAP"] is None


def _table(modality, labels, pair_ids):
    n = len(labels)
    meta = pl.DataFrame({"id": [f"{modality}{i}" for i in range(n)], "split": ["test"] * n,
                         "label": labels, "pair_id": pair_ids},
                        schema={"id": pl.String, "split": pl.String, "label": pl.Int32, "pair_id": pl.String})
    return EmbeddingTable(modality, np.ones((n, 2), np.float32), meta)


def test_row_keys_share_pair_codes_and_row_pairs():
    a = _table("a", [0, 1, 1, None], ["x", "y", None, "z"])
    b = _table("b", [1, 0, 0], ["z", "x", None])
    qa, kb = row_keys(a, b)
    assert qa.pairs[0] == kb.pairs[1] and qa.pairs[3] == kb.pairs[0] and qa.pairs[2] == -1
    ia, ib, kind = row_pairs(a, b)
    assert kind == "instance" and list(zip(ia, ib, strict=True)) == [(0, 1), (3, 0)]
    a2 = _table("a", [0, 1, 1, 0, 2], [None] * 5)
    b2 = _table("b", [1, 0, 0, 0], [None] * 4)
    ia, ib, kind = row_pairs(a2, b2)
    assert kind == "class"
    assert (a2.labels[ia] == b2.labels[ib]).all()
    assert set(ia) == {0, 1, 2, 3} and set(ib) == {0, 1, 2, 3}  # every labelled row of a shared class


def test_prototypes_and_zeroshot_against_bruteforce():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 5))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = rng.integers(0, 4, 40)
    y[:3] = -1
    P, classes = prototypes(X, y)
    np.testing.assert_array_equal(classes, [0, 1, 2, 3])
    for c in classes:
        mu = X[y == c].mean(axis=0)
        np.testing.assert_allclose(P[c], mu / np.linalg.norm(mu), atol=1e-6)
    Xt = rng.integers(-1, 2, size=(30, 5)).astype(np.float32)  # ties between class scores
    Pt = rng.integers(-1, 2, size=(3, 5)).astype(np.float32)
    Pt[2] = Pt[1]  # two identical prototypes: always tied
    yt = rng.integers(0, 4, 30)  # class 3 has no prototype
    ranks = class_ranks(Xt, yt, Pt, np.array([0, 1, 2]))
    for i in range(30):
        if yt[i] == 3:
            assert ranks[i] == 3
            continue
        s = Xt[i] @ Pt.T
        assert ranks[i] == int((s >= s[yt[i]]).sum()) - 1  # pessimistic: ties rank first
    acc = zeroshot_accuracy(Xt, yt, Pt, np.array([0, 1, 2]), ks=(1, 2))
    assert acc == {"top1": float(np.mean(ranks < 1)), "top2": float(np.mean(ranks < 2))}
    assert zeroshot_accuracy(Xt, np.full(30, -1), Pt, np.array([0, 1, 2])) is None


def test_comparison_and_searchsorted_paths_agree(monkeypatch):
    from embridge.evaluation import metrics

    rng = np.random.default_rng(8)
    xq, xb = tied(rng, 40), tied(rng, 120)
    q, b = keys(rng, 40, n_labels=12), keys(rng, 120, n_labels=12)
    ap0, m0, first0 = metrics.count_pass(xq, xb, q, b, score_budget=500)
    for compare_max in (0, 10_000):  # searchsorted only, comparisons only
        monkeypatch.setattr(metrics, "COMPARE_MAX", compare_max)
        ap, m, first = metrics.count_pass(xq, xb, q, b, score_budget=500)
        np.testing.assert_array_equal(m, m0)
        np.testing.assert_array_equal(first, first0)
        np.testing.assert_allclose(ap, ap0, rtol=0, atol=1e-12)


def test_per_query_outcomes_average_to_the_metrics():
    """per_query=True returns the per-query values whose means over valid queries are the metrics
    (what a bootstrap over queries resamples); checked against the brute-force reference."""
    rng = np.random.default_rng(21)
    xq, xb = tied(rng, 40), tied(rng, 90)
    q, b = keys(rng, 40), keys(rng, 90)
    got = retrieval_metrics(xq, xb, q, b, ks=(1, 5), kmax=5, per_query=True)
    ref = reference(xq, xb, q, b, (1, 5), 5)
    pq = got["per_query"]
    valid = pq["valid"]
    assert valid.sum() == ref["queries"] == got["queries"]
    for key, name in (("R@1", "R@1"), ("R@5", "R@5"), ("RR", "MRR"), ("AP", "mAP")):
        assert pq[key].shape == (40,)
        assert np.mean(pq[key][valid]) == pytest.approx(ref[name], abs=1e-12)
        assert got[name] == pytest.approx(ref[name], abs=1e-12)
    assert np.isnan(pq["AP"][~valid]).all()
