"""Training pairs between two modalities' train rows: same pair_id where both rows have one, else
same label (class level), at most `pairs_per_class` paired rows per class per modality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from embridge.errors import InputError
from embridge.store import EmbeddingTable


def relevance(pid_q, lab_q, pid_g, lab_g) -> np.ndarray:
    """The relevance rule as a boolean matrix (nq, ng): same pair_id where both rows have one,
    else same label (labels < 0 match nothing). pid_*: int codes (-1 = none); lab_*: int (-1 = none)."""
    pid_q, lab_q = np.asarray(pid_q)[:, None], np.asarray(lab_q)[:, None]
    pid_g, lab_g = np.asarray(pid_g)[None, :], np.asarray(lab_g)[None, :]
    both = (pid_q >= 0) & (pid_g >= 0)
    return np.where(both, pid_q == pid_g, (lab_q >= 0) & (lab_q == lab_g))


def pair_codes(*tables: EmbeddingTable) -> list[np.ndarray]:
    """pair_id strings of several tables as int codes over one shared vocabulary (-1 = none)."""
    vocab: dict[str, int] = {}
    out = []
    for t in tables:
        out.append(np.array([-1 if p is None else vocab.setdefault(p, len(vocab)) for p in t.pair_ids], dtype=np.int64))
    return out


def cap_per_class(labels: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices keeping at most `cap` rows per label value (0 = keep all), drawn with `rng`.
    Rows with label -1 form one group of their own."""
    idx = np.arange(len(labels))
    if cap <= 0:
        return idx
    keep = []
    for c in np.unique(labels):
        rows = idx[labels == c]
        keep.append(rows if len(rows) <= cap else np.sort(rng.choice(rows, size=cap, replace=False)))
    return np.sort(np.concatenate(keep)) if keep else idx[:0]


@dataclass
class Pairing:
    """Paired train rows of a source and a target table.

    src: (p,) row indices into the source table; tgt: (p,) row indices into the target table, -1
    where the pair is class level; label: (p,) the class of each pair (-1 none); tgt_rows: (q,)
    target rows usable as positives/negatives (instance partners plus the class-level candidates).
    """

    src: np.ndarray
    tgt: np.ndarray
    label: np.ndarray
    tgt_rows: np.ndarray

    def __len__(self) -> int:
        return len(self.src)

    @property
    def n_instance(self) -> int:
        return int((self.tgt >= 0).sum())

    def targets(self, Y: np.ndarray, tgt_labels: np.ndarray) -> np.ndarray:
        """Target vector per pair: the partner row, or the mean of the class's target rows among
        `tgt_rows` (e.g. Procrustes pairs a row with its class's anchor mean). Y: (n_tgt, d) -> (p, d)."""
        Y = np.asarray(Y, dtype=np.float64)
        out = np.empty((len(self.src), Y.shape[1]))
        inst = self.tgt >= 0
        out[inst] = Y[self.tgt[inst]]
        cls_rows = self.tgt_rows[tgt_labels[self.tgt_rows] >= 0]
        for c in np.unique(self.label[~inst]):
            out[(~inst) & (self.label == c)] = Y[cls_rows[tgt_labels[cls_rows] == c]].mean(axis=0)
        return out


def pair_rows(src: EmbeddingTable, tgt: EmbeddingTable, pairs_per_class: int = 0, seed: int = 0) -> Pairing:
    """Pairs between the rows of `src` and `tgt` (pass their train splits).

    A source row is paired with its instance partner (same pair_id) when the target has one, else
    with the target's rows of its class (same label). At most `pairs_per_class` source rows per
    class are kept, and at most as many target rows per class serve as class-level candidates
    (0 = all), drawn deterministically from `seed`. Raises InputError when nothing pairs.
    """
    if pairs_per_class < 0:
        raise InputError(f"pairs_per_class = {pairs_per_class}: expected >= 0 (0 = all)")
    rng = np.random.default_rng([seed, 104729])
    pid_s, pid_t = pair_codes(src, tgt)
    lab_s, lab_t = src.labels, tgt.labels
    partner = np.full(int(max(pid_s.max(initial=-1), pid_t.max(initial=-1))) + 2, -1, dtype=np.int64)
    has_t = pid_t >= 0
    partner[pid_t[has_t]] = np.flatnonzero(has_t)  # pair_id code -> target row (last one wins on duplicates)
    tgt_of = np.where(pid_s >= 0, partner[np.maximum(pid_s, 0)], -1)
    tgt_of[pid_s < 0] = -1
    cand = cap_per_class(lab_t, pairs_per_class, rng)
    cand = cand[lab_t[cand] >= 0]
    class_ok = np.isin(lab_s, np.unique(lab_t[cand])) & (lab_s >= 0)
    usable = np.flatnonzero((tgt_of >= 0) | class_ok)
    if len(usable) == 0:
        raise InputError(
            f"no training pairs between {src.modality!r} and {tgt.modality!r}: no shared pair_id and "
            f"no shared label among their train rows"
        )
    keep = usable[cap_per_class(lab_s[usable], pairs_per_class, rng)]
    tgt_idx = tgt_of[keep]
    tgt_rows = np.union1d(cand, tgt_idx[tgt_idx >= 0])
    return Pairing(src=keep, tgt=tgt_idx, label=lab_s[keep], tgt_rows=tgt_rows)
