"""Who is relevant to whom: same pair_id where both rows have one, else same label (design section 3).

Row metadata become integer codes (`RowKeys`) so that relevance of a (queries x gallery) block is
a few vectorized comparisons. Also builds the row pairs the gap diagnostics need: instance pairs
joined on pair_id, or class-level pairs (each row with a row of its class, deterministically).
"""
# ruff: noqa: E741  (I is FAISS's name for neighbour ids: D, I = search(...))

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from embridge.errors import InputError
from embridge.pairing import pair_codes
from embridge.store import EmbeddingTable


@dataclass
class RowKeys:
    """labels: int64 (n,), -1 = none; pairs: int64 (n,), -1 = none (codes shared with the other side)."""

    labels: np.ndarray
    pairs: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx) -> RowKeys:
        return RowKeys(self.labels[idx], self.pairs[idx])


def row_keys(a: EmbeddingTable, b: EmbeddingTable) -> tuple[RowKeys, RowKeys]:
    """Keys of two tables (queries a, gallery b) with pair codes in a shared space."""
    pa_, pb_ = pair_codes(a, b)
    return RowKeys(a.labels.astype(np.int64), pa_), RowKeys(b.labels.astype(np.int64), pb_)


def relevance(q: RowKeys, b: RowKeys, I: np.ndarray | slice | None = None) -> np.ndarray:
    """Boolean relevance. Without I: block (nq, nb). With I (nq, k) gallery indices: (nq, k).

    Rule: where both rows carry a pair_id, relevant iff the pair_ids are equal; otherwise
    relevant iff both carry a label (>= 0) and the labels are equal.
    """
    if I is None or isinstance(I, slice):
        sl = slice(None) if I is None else I
        lb, pb = b.labels[sl][None, :], b.pairs[sl][None, :]
    else:
        lb, pb = b.labels[I], b.pairs[I]
    lq, pq = q.labels[:, None], q.pairs[:, None]
    both = (pq >= 0) & (pb >= 0)
    return np.where(both, pq == pb, (lq == lb) & (lq >= 0))


class _Groups:
    """Rows grouped by an integer code (codes < 0 left out): `rows(c)`, sorted, in O(log n)."""

    def __init__(self, codes: np.ndarray):
        keep = np.flatnonzero(codes >= 0)
        self.order = keep[np.argsort(codes[keep], kind="stable")]
        self.codes = codes[self.order]

    def rows(self, code: int) -> np.ndarray:
        if code < 0:
            return self.order[:0]
        lo, hi = np.searchsorted(self.codes, [code, code + 1])
        return self.order[lo:hi]


class Relevant:
    """The gallery rows relevant to a query, by the rule of `relevance`, from an index of the
    gallery keys built once: rows by pair code, by label, and by label among the unpaired rows."""

    def __init__(self, b: RowKeys):
        self.by_pair = _Groups(b.pairs)
        self.by_label = _Groups(b.labels)
        self.by_free_label = _Groups(np.where(b.pairs < 0, b.labels, -1))

    def rows(self, pair: int, label: int) -> np.ndarray:
        """Sorted gallery rows relevant to a query with these keys (-1 = none)."""
        if pair < 0:
            return self.by_label.rows(label)
        return np.sort(np.concatenate([self.by_pair.rows(pair), self.by_free_label.rows(label)]))


def relevant_counts(q: RowKeys, b: RowKeys) -> np.ndarray:
    """m (nq,) int64: relevant gallery rows per query, from the keys alone (no scores)."""
    def counts(codes):  # count of each code >= 0, looked up by code
        return np.bincount(codes[codes >= 0], minlength=int(max(q.labels.max(initial=0), q.pairs.max(initial=0))) + 1)

    by_pair = counts(b.pairs)
    by_label = counts(b.labels)
    by_label_free = counts(np.where(b.pairs < 0, b.labels, -1))
    lq, pq = np.maximum(q.labels, 0), np.maximum(q.pairs, 0)
    labelled = q.labels >= 0
    paired = np.where(q.pairs >= 0, by_pair[pq] + np.where(labelled, by_label_free[lq], 0), 0)
    free = np.where((q.pairs < 0) & labelled, by_label[lq], 0)
    return (paired + free).astype(np.int64)


def check_label_spaces(tables: Mapping[str, EmbeddingTable]) -> None:
    """Labels are compared across modalities, so tables that name their classes must agree."""
    named = {m: t.class_names for m, t in tables.items() if t.class_names is not None}
    if len({tuple(v) for v in named.values()}) > 1:
        first = next(iter(named))
        for m, names in named.items():
            if names != named[first]:
                raise InputError(
                    f"class names differ between modality {first!r} ({named[first][:5]}...) and {m!r} "
                    f"({names[:5]}...): labels are compared across modalities, so expected the same class list"
                )


def row_pairs(a: EmbeddingTable, b: EmbeddingTable) -> tuple[np.ndarray, np.ndarray, str]:
    """Paired rows of two tables: (ia, ib, kind), ia/ib int64 (p,), kind 'instance' or 'class'.

    Instance pairs (rows with the same pair_id) when at least one exists. Otherwise class-level
    pairs: for each class c with n_a rows in a and n_b rows in b (table order), pair
    (a_c[i mod n_a], b_c[i mod n_b]) for i < max(n_a, n_b), so every labelled row is used.
    Raises InputError when neither instance nor class pairs exist.
    """
    pa_, pb_ = pair_codes(a, b)
    if (pa_ >= 0).any() and (pb_ >= 0).any():
        pos_b = np.full(int(max(pa_.max(), pb_.max())) + 1, -1, dtype=np.int64)
        rows_b = np.flatnonzero(pb_ >= 0)
        pos_b[pb_[rows_b][::-1]] = rows_b[::-1]  # first row of b carrying each pair_id
        ia = np.flatnonzero(pa_ >= 0)
        ib = pos_b[pa_[ia]]
        keep = ib >= 0
        if keep.any():
            return ia[keep], ib[keep], "instance"
    la, lb = a.labels, b.labels
    ia_parts, ib_parts = [], []
    for c in np.intersect1d(la[la >= 0], lb[lb >= 0]):
        ra, rb = np.flatnonzero(la == c), np.flatnonzero(lb == c)
        i = np.arange(max(len(ra), len(rb)))
        ia_parts.append(ra[i % len(ra)])
        ib_parts.append(rb[i % len(rb)])
    if not ia_parts:
        raise InputError(
            f"modalities {a.modality!r} and {b.modality!r} share no pair_id and no label: "
            f"the gap diagnostics need paired rows (instance or class level)"
        )
    return np.concatenate(ia_parts), np.concatenate(ib_parts), "class"
