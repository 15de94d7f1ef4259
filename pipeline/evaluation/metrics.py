"""Retrieval metrics from one top-kmax search (R@k, MRR@kmax) and full-ranking mAP by counting.

Ties (exact score equalities) are handled deterministically:

- rank of the first relevant item is *pessimistic*: 1 + the number of irrelevant gallery items
  scoring >= the best relevant score (a relevant item tied with irrelevant ones comes after them);
- average precision uses the *threshold* convention of `sklearn.metrics.average_precision_score`:
  a relevant item with score r has precision #relevant(>= r) / #all(>= r), i.e. a tied group is
  taken whole. AP_q = mean of those precisions over q's relevant items.

R@k (hit rate: any relevant item in the top k) and MRR (1/rank, 0 beyond kmax) come from one
top-kmax search; where a tie group straddles position kmax (only with exact ties) the list cannot
tell how many tied irrelevant items lie beyond it, and the rank from the counting pass is used.
mAP counts, for every relevant item, the irrelevant items scoring >= it with a tiled matmul and a
batched searchsorted into the query's sorted relevant scores: O(nb log m) per query, never a sort
of the whole gallery. Queries with no relevant gallery item are left out of every mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.evaluation.relevance import RowKeys, relevance
from pipeline.evaluation.search import GALLERY_TILE, QUERY_TILE, check_search_inputs, knn

SCORE_BUDGET = 1 << 22  # elements of one (queries x gallery) score block in the counting pass


def list_ranks(D: np.ndarray, I: np.ndarray, rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pessimistic rank of the first relevant item within a top-k list.

    D, I: (nq, k) from `knn`; rel: bool (nq, k), relevance of I. Returns rank float64 (nq,)
    (inf when no relevant item is in the list) and r: the best relevant score (nq,) (-inf if none).
    """
    nq = D.shape[0]
    found = rel.any(axis=1)
    p = np.argmax(rel, axis=1)
    r = np.where(found, D[np.arange(nq), p], -np.inf)
    ahead = (~rel & (D >= r[:, None])).sum(axis=1)  # irrelevant items at or above the best relevant score
    return np.where(found, 1.0 + ahead, np.inf), r


def count_pass(
    xq: np.ndarray, xb: np.ndarray, q: RowKeys, b: RowKeys, score_budget: int = SCORE_BUDGET, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-ranking counts per query. xq: (nq, d), xb: (nb, d), keys of both sides.

    Returns ap float64 (nq,) (nan where no relevant item), m int64 (nq,) the number of relevant
    gallery items, and first_rank float64 (nq,) the pessimistic rank of the best relevant item
    (inf where none). Memory: one block of `score_budget` scores (and its masks) at a time.
    """
    import torch

    dev = torch.device(device)
    nq, nb = xq.shape[0], xb.shape[0]
    tq = max(1, score_budget // nb)
    xb_t = torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)).to(dev)
    ap = np.full(nq, np.nan)
    m_all = np.zeros(nq, dtype=np.int64)
    first = np.full(nq, np.inf)
    with torch.no_grad():
        for q0 in range(0, nq, tq):
            q1 = min(q0 + tq, nq)
            S = torch.from_numpy(np.ascontiguousarray(xq[q0:q1], dtype=np.float32)).to(dev) @ xb_t.T  # (t, nb)
            rel = torch.from_numpy(relevance(q.take(slice(q0, q1)), b)).to(dev)  # (t, nb) bool
            m = rel.sum(dim=1)  # (t,) relevant items per query
            m_all[q0:q1] = m.cpu().numpy()
            m_max = int(m.max())
            if m_max == 0:
                continue
            # sorted relevant scores, padded with +inf: (t, m_max), row i holds m_i finite values first
            rows, cols = torch.nonzero(rel, as_tuple=True)
            offsets = torch.cumsum(m, 0) - m
            pad = torch.full((q1 - q0, m_max), float("inf"), device=dev)
            pad[rows, torch.arange(len(rows), device=dev) - offsets[rows]] = S[rows, cols]
            pad, _ = torch.sort(pad, dim=1)
            # idx = #relevant scores <= s for each irrelevant score s (-inf for relevant: idx 0)
            idx = torch.searchsorted(pad, S.masked_fill(rel, float("-inf")), right=True)  # (t, nb)
            hist = torch.zeros((q1 - q0, m_max + 1), dtype=torch.int64, device=dev)
            hist.scatter_add_(1, idx, torch.ones_like(idx))
            tail = torch.flip(torch.cumsum(torch.flip(hist, [1]), 1), [1])  # tail[i] = sum_{i' >= i} hist
            irr_ge = tail[:, 1:]  # (t, m_max): irrelevant items scoring >= r_j
            rel_ge = m[:, None] - torch.searchsorted(pad, pad, right=False)  # relevant items scoring >= r_j
            valid = torch.arange(m_max, device=dev)[None, :] < m[:, None]
            prec = torch.where(valid, rel_ge.double() / (rel_ge + irr_ge).clamp(min=1).double(), 0.0)
            has = m > 0
            ap_t = (prec.sum(1) / m.clamp(min=1).double()).cpu().numpy()
            last = (m - 1).clamp(min=0)
            first_t = (1 + irr_ge.gather(1, last[:, None])[:, 0]).double().cpu().numpy()
            has_np = has.cpu().numpy()
            ap[q0:q1] = np.where(has_np, ap_t, np.nan)
            first[q0:q1] = np.where(has_np, first_t, np.inf)
    return ap, m_all, first


def retrieval_metrics(
    xq: np.ndarray,
    xb: np.ndarray,
    q: RowKeys,
    b: RowKeys,
    ks: Sequence[int] = (1, 5, 10),
    kmax: int = 10,
    tile: int = GALLERY_TILE,
    query_tile: int = QUERY_TILE,
    score_budget: int = SCORE_BUDGET,
    backend: str = "auto",
    device: str = "cpu",
) -> dict:
    """R@k for k in ks, MRR (cut off at kmax) and mAP of queries xq (nq, d) against gallery xb (nb, d).

    Returns {"R@1": .., ..., "MRR": .., "mAP": .., "queries": evaluated queries, "gallery": nb}.
    """
    per = per_query(xq, xb, q, b, kmax, tile, query_tile, score_budget, backend, device)
    valid = per["m"] > 0
    out: dict = {"queries": int(valid.sum()), "gallery": int(xb.shape[0])}
    if not valid.any():
        return {**out, **{f"R@{k}": None for k in ks}, "MRR": None, "mAP": None}
    rank = per["rank"][valid]
    for k in ks:
        out[f"R@{k}"] = float(np.mean(rank <= k))
    out["MRR"] = float(np.mean(np.where(rank <= kmax, 1.0 / rank, 0.0)))
    out["mAP"] = float(np.mean(per["ap"][valid]))
    return out


def per_query(
    xq: np.ndarray,
    xb: np.ndarray,
    q: RowKeys,
    b: RowKeys,
    kmax: int = 10,
    tile: int = GALLERY_TILE,
    query_tile: int = QUERY_TILE,
    score_budget: int = SCORE_BUDGET,
    backend: str = "auto",
    device: str = "cpu",
) -> dict[str, np.ndarray]:
    """Per-query results: rank (first relevant, pessimistic, inf beyond the list), ap, m (relevant count)."""
    xq, xb = check_search_inputs(xq, xb, kmax, where="retrieval")
    D, I = knn(xq, xb, kmax, tile=tile, query_tile=query_tile, backend=backend, device=device)
    rank, r = list_ranks(D, I, relevance(q, b, I))
    ap, m, first = count_pass(xq, xb, q, b, score_budget=score_budget, device=device)
    # a tie group reaching the end of a truncated list may continue beyond it: trust the count
    straddle = np.isfinite(rank) & (D.shape[1] < xb.shape[0]) & (D[:, -1] >= r)
    rank = np.where(straddle, first, rank)
    return {"rank": rank, "ap": ap, "m": m, "D": D, "I": I}
