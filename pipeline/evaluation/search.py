"""Exact inner-product k-nearest-neighbour search, tiled over queries and gallery (FAISS vocabulary).

`knn(xq, xb, k)` returns (D, I): D float32 (nq, k) inner products, I int64 (nq, k) gallery row
indices, each row ordered by score descending and, among equal scores, by gallery index ascending.
Backends, in the order "auto" tries them:

- "faiss-gpu": `faiss.knn_gpu` per gallery tile, when faiss was built with GPU support and
  `faiss.get_num_gpus() > 0` (install the `gpu` extra on a machine with a GPU);
- "faiss": a `faiss.IndexFlatIP` per gallery tile (exact, BLAS on the CPU);
- "torch": matmul + topk per (query tile, gallery tile), on `device`, when faiss is not importable.

Every tile's top-k is merged into the running top-k, so memory is bounded by
`query_tile * gallery_tile` scores plus (nq, 2k) for the merge, whatever the gallery size.
Inputs are validated first: FAISS itself returns -1 ids on NaN and raises a bare AssertionError
on a dimension mismatch.
"""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

from __future__ import annotations

from typing import Literal

import numpy as np
from embridge.errors import ConfigError, InputError
from embridge.store.checks import bad_rows, check_matrix

Backend = Literal["auto", "faiss", "faiss-gpu", "torch"]
BACKENDS = ("auto", "faiss", "faiss-gpu", "torch")
QUERY_TILE = 4096  # queries per tile
GALLERY_TILE = 262_144  # gallery rows per tile (an IndexFlatIP of 262k x 1024 float32 is 1 GiB)
CHECK_ROWS = 16_384  # rows validated at a time (the NaN/zero checks make (rows, d) temporaries)


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def has_faiss() -> bool:
    return _faiss() is not None


def has_faiss_gpu() -> bool:
    """faiss built with GPU support and at least one GPU visible to it."""
    faiss = _faiss()
    return faiss is not None and hasattr(faiss, "knn_gpu") and faiss.get_num_gpus() > 0


def resolve_backend(backend: str = "auto") -> str:
    """'auto' -> 'faiss-gpu' if usable, else 'faiss' if importable, else 'torch'."""
    if backend not in BACKENDS:
        raise ConfigError(f"search backend = {backend!r}: expected one of {list(BACKENDS)}")
    if backend == "auto":
        return "faiss-gpu" if has_faiss_gpu() else "faiss" if has_faiss() else "torch"
    if backend == "faiss" and not has_faiss():
        raise ConfigError("search backend = 'faiss', but faiss is not importable; install faiss-cpu or use 'torch'")
    if backend == "faiss-gpu" and not has_faiss_gpu():
        raise ConfigError("search backend = 'faiss-gpu', but faiss has no GPU support or sees no GPU; use 'auto'")
    return backend


def check_rows(X: np.ndarray, where: str) -> np.ndarray:
    """`check_matrix` in chunks of CHECK_ROWS rows, so that its temporaries stay small. X: (n, d)."""
    X = np.asarray(X)
    if X.ndim != 2 or len(X) <= CHECK_ROWS:
        return check_matrix(X, where)
    check_matrix(X[:CHECK_ROWS], where)  # dtype, shape, and the first rows
    found: dict[str, list] = {"NaN or Inf": [], "an all-zero vector": []}
    for r0 in range(CHECK_ROWS, len(X), CHECK_ROWS):
        nonfinite, zero = bad_rows(X[r0 : r0 + CHECK_ROWS])
        found["NaN or Inf"] += list(r0 + nonfinite)
        found["an all-zero vector"] += list(r0 + zero)
    for what, rows in found.items():
        if rows:
            raise InputError(
                f"{where}: row {int(rows[0])} holds {what}; {len(rows)} such row(s) in all "
                f"(expected finite, non-zero vectors)"
            )
    return X


def check_search_inputs(xq: np.ndarray, xb: np.ndarray, k: int, where: str = "search") -> tuple[np.ndarray, np.ndarray]:
    """Validate before any search; return float32 C-contiguous copies/views. xq: (nq, d), xb: (nb, d)."""
    xq = check_rows(xq, f"{where}: queries xq")
    xb = check_rows(xb, f"{where}: gallery xb")
    if xq.shape[1] != xb.shape[1]:
        raise InputError(
            f"{where}: queries have dimension {xq.shape[1]} but the gallery has dimension {xb.shape[1]}; "
            f"expected the same dimension"
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise InputError(f"{where}: k = {k!r}, expected a positive integer")
    return np.ascontiguousarray(xq, dtype=np.float32), np.ascontiguousarray(xb, dtype=np.float32)


def merge_topk(D1: np.ndarray, I1: np.ndarray, D2: np.ndarray, I2: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of the union of two result lists, per row. D*, I*: (nq, k*). Order: score desc, index asc."""
    D = np.concatenate([D1, D2], axis=1)
    I = np.concatenate([I1, I2], axis=1)
    order = np.lexsort((I, -D), axis=-1)[:, :k]  # last key is primary: -D, then I
    return np.take_along_axis(D, order, axis=1), np.take_along_axis(I, order, axis=1)


class _GpuSearcher:
    """faiss.knn_gpu with one set of GPU resources reused over tiles (runs only where a GPU exists)."""

    def __init__(self, faiss):
        self.faiss = faiss
        self.res = faiss.StandardGpuResources()

    def __call__(self, xq: np.ndarray, xb_tile: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.faiss.knn_gpu(self.res, xq, xb_tile, k, metric=self.faiss.METRIC_INNER_PRODUCT)


def _tile_torch(xq_t, xb_t, k: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        S = xq_t @ xb_t.T  # (tq, tb) inner products
        D, I = torch.topk(S, k, dim=1)
    return D.cpu().numpy(), I.cpu().numpy().astype(np.int64)


def knn(
    xq: np.ndarray,
    xb: np.ndarray,
    k: int,
    tile: int = GALLERY_TILE,
    query_tile: int = QUERY_TILE,
    backend: Backend = "auto",
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact maximum-inner-product search. xq: (nq, d), xb: (nb, d) -> D (nq, k') float32, I (nq, k') int64.

    k' = min(k, nb): asking for more neighbours than the gallery holds returns the whole gallery.
    tile: gallery rows per tile; query_tile: queries per tile. The vectors are searched as given:
    L2-normalize them first for cosine similarity. Ties are ordered by gallery index; which of
    several items tied at the k-th score is kept depends on the backend (tests tolerate ties).
    """
    xq, xb = check_search_inputs(xq, xb, k)
    if tile < 1 or query_tile < 1:
        raise ConfigError(f"search tile = {tile}, query_tile = {query_tile}: expected positive integers")
    backend = resolve_backend(backend)
    nq, nb = xq.shape[0], xb.shape[0]
    k = int(min(k, nb))
    D = np.full((nq, k), -np.inf, dtype=np.float32)
    I = np.full((nq, k), -1, dtype=np.int64)
    if backend == "torch":
        import torch

        dev = torch.device(device)
        xq_t = torch.from_numpy(xq).to(dev)
    elif backend == "faiss-gpu":
        searcher = _GpuSearcher(_faiss())
    for b0 in range(0, nb, tile):
        xb_tile = xb[b0 : b0 + tile]
        kt = min(k, xb_tile.shape[0])
        if backend == "torch":
            xb_t = torch.from_numpy(xb_tile).to(dev)
        elif backend == "faiss":
            index = _faiss().IndexFlatIP(xb.shape[1])
            index.add(xb_tile)  # copies the tile: memory bounded by tile * d
        for q0 in range(0, nq, query_tile):
            q1 = min(q0 + query_tile, nq)
            if backend == "torch":
                Dt, It = _tile_torch(xq_t[q0:q1], xb_t, kt)
            elif backend == "faiss":
                Dt, It = index.search(xq[q0:q1], kt)
            else:
                Dt, It = searcher(xq[q0:q1], xb_tile, kt)
            if (It < 0).any():  # cannot happen on validated input; never let -1 ids through silently
                raise InputError(f"search: {backend} returned -1 ids on a gallery tile at row {b0}")
            D[q0:q1], I[q0:q1] = merge_topk(D[q0:q1], I[q0:q1], Dt.astype(np.float32), It.astype(np.int64) + b0, k)
    return D, I


def normalize(X: np.ndarray, where: str = "embeddings") -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32. X: (n, d) finite, no zero rows (checked)."""
    X = np.asarray(check_matrix(X, where), dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))[:, None]  # (n, 1), float64 accumulation
    return (X / norms).astype(np.float32)
