"""Retrieval metrics (R@k, MRR@kmax, full-ranking mAP) and the top-k lists, by counting, not sorting.

Ties (exact score equalities) are handled deterministically:

- rank of the first relevant item is *pessimistic*: 1 + the number of irrelevant gallery items
  scoring >= the best relevant score (a relevant item tied with irrelevant ones comes after them);
- average precision uses the *threshold* convention of `sklearn.metrics.average_precision_score`:
  a relevant item with score r has precision #relevant(>= r) / #all(>= r), i.e. a tied group is
  taken whole. AP_q = mean of those precisions over q's relevant items.

Two paths give the same numbers:

- CPU (default): `scan.fused_scan`, one sgemm per (query block x gallery tile) score block that
  updates the running top-k and the counts at once; ranks come from the counts over the whole
  gallery, so R@k and MRR never depend on how a tie group straddles position kmax;
- GPU (`device` other than cpu, or backend faiss-gpu): `knn` top-kmax search, then `count_pass`,
  a tiled torch matmul counting, for every relevant item, the irrelevant items scoring >= it
  (comparisons, or a batched searchsorted into the query's sorted relevant scores).

Queries with no relevant gallery item are left out of every mean.
"""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from embridge.errors import InputError
from embridge.evaluation.relevance import RowKeys, relevance
from embridge.evaluation.scan import MIN_CALL_COLS, MIN_CALL_ROWS, fused_scan
from embridge.evaluation.search import (
    GALLERY_TILE,
    QUERY_TILE,
    check_search_inputs,
    knn,
    resolve_backend,
)

SCORE_BUDGET = 1 << 22  # elements of one (queries x gallery) score block in the counting pass
COMPARE_MAX = 32  # up to this many relevant items per query, count by comparisons instead of searchsorted


def _irrelevant_at_or_above(S_irr, pad):
    """irr_ge[q, j] = #{g : S_irr[q, g] >= pad[q, j]}. S_irr: (t, nb) (-inf for relevant items),
    pad: (t, m) sorted ascending (+inf padding). Comparisons for small m, else searchsorted."""
    import torch

    t, m = pad.shape
    if m <= COMPARE_MAX:  # m passes of vectorized comparisons beat a branchy binary search
        return torch.stack([(S_irr >= pad[:, j : j + 1]).sum(dim=1) for j in range(m)], dim=1)
    # idx = #relevant scores <= s for each irrelevant score s: s >= r_j  <=>  idx > j
    idx = torch.searchsorted(pad, S_irr, right=True)  # (t, nb) in [0, m]
    idx += torch.arange(t, device=idx.device)[:, None] * (m + 1)  # one histogram per row
    hist = torch.bincount(idx.reshape(-1), minlength=t * (m + 1)).reshape(t, m + 1)
    tail = torch.flip(torch.cumsum(torch.flip(hist, [1]), 1), [1])  # tail[i] = sum_{i' >= i} hist
    return tail[:, 1:]


def _pad_rows(X: np.ndarray, n: int) -> np.ndarray:
    """X (r, d) as C-contiguous float32 with at least n rows (zeros appended)."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    return X if len(X) >= n else np.concatenate([X, np.zeros((n - len(X), X.shape[1]), np.float32)])


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
    # one call shape for every score of a query, tiny calls zero-padded (small-matrix kernels round by
    # position, so a relevant item and its irrelevant duplicate could score 1 ulp apart)
    xb_t = torch.from_numpy(_pad_rows(xb, MIN_CALL_COLS)).to(dev)
    ap = np.full(nq, np.nan)
    m_all = np.zeros(nq, dtype=np.int64)
    first = np.full(nq, np.inf)
    with torch.no_grad():
        for q0 in range(0, nq, tq):
            q1 = min(q0 + tq, nq)
            S = (torch.from_numpy(_pad_rows(xq[q0:q1], MIN_CALL_ROWS)).to(dev) @ xb_t.T)[: q1 - q0, :nb]  # (t, nb)
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
            irr_ge = _irrelevant_at_or_above(S.masked_fill(rel, float("-inf")), pad)  # (t, m_max)
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
    where: str = "retrieval",
    fused: bool | None = None,
    scan=None,
    per_out: dict | None = None,
    per_query: bool = False,
) -> dict:
    """R@k for k in ks, MRR (cut off at kmax) and mAP of queries xq (nq, d) against gallery xb (nb, d).

    scan: None (this process), or an executor with the signature of `per_query` as its
    `per_query` method (`distributed.RayScan`); the metrics are reduced here either way.
    per_out: a dict that receives the per-query results (rank, ap, m), for the bootstrap.
    Returns {"R@1": .., ..., "MRR": .., "mAP": .., "queries": evaluated queries, "gallery": nb}; with
    per_query=True also "per_query": `query_outcomes` (the per-query values the means are taken
    over, for a bootstrap over queries; no extra cost).
    """
    if scan is not None:
        xq, xb = check_search_inputs(xq, xb, kmax, where=where)
        per = scan.per_query(xq, xb, q, b, kmax, tile=tile, query_tile=query_tile, score_budget=score_budget,
                             backend=backend, device=device, where=where, fused=fused)
    else:
        per = _per_query(xq, xb, q, b, kmax, tile, query_tile, score_budget, backend, device, where, fused)
    if per_out is not None:
        per_out.update({k: per[k] for k in ("rank", "ap", "m")})
    outcomes = query_outcomes(per, ks, kmax)
    valid = outcomes["valid"]
    out: dict = {"queries": int(valid.sum()), "gallery": int(xb.shape[0])}
    if per_query:
        out["per_query"] = outcomes
    if not valid.any():
        return {**out, **{f"R@{k}": None for k in ks}, "MRR": None, "mAP": None}
    for k in ks:
        out[f"R@{k}"] = float(np.mean(outcomes[f"R@{k}"][valid]))
    out["MRR"] = float(np.mean(outcomes["RR"][valid]))
    out["mAP"] = float(np.mean(outcomes["AP"][valid]))
    return out


def query_outcomes(per: dict[str, np.ndarray], ks: Sequence[int] = (1, 5, 10), kmax: int = 10) -> dict[str, np.ndarray]:
    """Per-query values from `per_query`'s output, each (nq,): "R@k" float64 1.0 / 0.0 (a relevant
    item within the top k), "RR" the reciprocal rank (0 beyond kmax), "AP" average precision,
    "rank" the pessimistic rank of the first relevant item, "valid" bool (the query has a relevant
    item; the metrics are means over the valid queries, the other entries are 0 / nan)."""
    valid = per["m"] > 0
    rank = per["rank"]
    out = {f"R@{k}": np.where(valid, (rank <= k).astype(np.float64), 0.0) for k in ks}
    out["RR"] = np.where(valid & (rank <= kmax), 1.0 / rank, 0.0)
    out["AP"] = np.where(valid, per["ap"], np.nan)
    out["rank"] = rank
    out["valid"] = valid
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
    where: str = "retrieval",
    fused: bool | None = None,
) -> dict[str, np.ndarray]:
    """Per-query results: rank (first relevant, pessimistic, inf where none), ap, m (relevant count),
    and the top-kmax lists D (nq, kmax) float32, I (nq, kmax) int64.

    fused: None = the fused CPU scan unless `device` is not the CPU or the backend is faiss-gpu;
    True / False force the fused scan / the two-pass GPU path (search, then counting).
    """
    xq, xb = check_search_inputs(xq, xb, kmax, where=where)
    if len(q) != len(xq) or len(b) != len(xb):
        raise InputError(f"{where}: {len(q)} query keys for {len(xq)} queries, {len(b)} gallery keys for {len(xb)} rows")
    if fused is None:
        fused = str(device) == "cpu" and resolve_backend(backend) != "faiss-gpu"
    if fused:
        return fused_scan(xq, xb, q, b, kmax, score_budget=score_budget, tile=tile, query_tile=query_tile)
    D, I = knn(xq, xb, kmax, tile=tile, query_tile=query_tile, backend=backend, device=device)
    ap, m, first = count_pass(xq, xb, q, b, score_budget=score_budget, device=device)
    return {"rank": first, "ap": ap, "m": m, "D": D, "I": I}


_per_query = per_query  # retrieval_metrics' `per_query` flag shadows the function's name there
