"""Training pairs between two modalities' train rows: same pair_id where both rows have one, else
same label (class level), only inside the label budget (`LabelBudget`: the paired train rows fitting
may use, at most `pairs_per_class` per class and modality, chosen once per seed)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

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

    def targets(self, Y: np.ndarray, tgt_labels: np.ndarray, dtype=np.float64) -> np.ndarray:
        """Target vector per pair: the partner row, or the mean of the class's target rows among
        `tgt_rows` (e.g. Procrustes pairs a row with its class's anchor mean), the means summed in
        float64 and the result in `dtype`. Y: (n_tgt, d) -> (p, d)."""
        Y = np.asarray(Y)
        out = np.empty((len(self.src), Y.shape[1]), dtype=dtype)
        inst = self.tgt >= 0
        out[inst] = Y[self.tgt[inst]]
        cls_rows = self.tgt_rows[tgt_labels[self.tgt_rows] >= 0]
        for c in np.unique(self.label[~inst]):
            out[(~inst) & (self.label == c)] = Y[cls_rows[tgt_labels[cls_rows] == c]].astype(np.float64).mean(axis=0)
        return out


def pair_rows(
    src: EmbeddingTable, tgt: EmbeddingTable, pairs_per_class: int = 0, seed: int = 0,
    budget: LabelBudget | None = None, cap_instances: bool = False,
) -> Pairing:
    """Pairs between the rows of `src` and `tgt` (pass their train splits), inside a label budget.

    A source row is paired with its instance partner (same pair_id) when the target has one, else
    with the target's rows of its class (same label). Only the rows of `budget` (the `pairs` stage's
    artifact) are read; without one, a budget for this pair alone is chosen with `pairs_per_class`,
    `seed` and `cap_instances` (`choose_budget`: instance pairs are all kept unless `cap_instances`).
    Raises InputError when nothing pairs.
    """
    if budget is None:
        budget = choose_budget({src.modality: src, tgt.modality: tgt}, [(src.modality, tgt.modality)],
                               pairs_per_class, seed, cap_instances)
    ids_s, ids_t = budget.side(src.modality, tgt.modality)
    rows_s, rows_t = _rows_of(src, ids_s, budget), _rows_of(tgt, ids_t, budget)
    pid_s, pid_t = pair_codes(src, tgt)
    lab_s, lab_t = src.labels, tgt.labels
    partner = np.full(int(max(pid_s.max(initial=-1), pid_t.max(initial=-1))) + 2, -1, dtype=np.int64)
    inst_t = rows_t[pid_t[rows_t] >= 0]
    partner[pid_t[inst_t]] = inst_t  # pair_id code -> allowed target row (last one wins on duplicates)
    tgt_of = np.where(pid_s[rows_s] >= 0, partner[np.maximum(pid_s[rows_s], 0)], -1)
    cand = rows_t[lab_t[rows_t] >= 0]
    class_ok = np.isin(lab_s[rows_s], np.unique(lab_t[cand])) & (lab_s[rows_s] >= 0)
    ok = (tgt_of >= 0) | class_ok
    if not ok.any():
        raise InputError(
            f"no training pairs between {src.modality!r} and {tgt.modality!r}: no shared pair_id and "
            f"no shared label among their train rows"
        )
    keep, tgt_idx = rows_s[ok], tgt_of[ok]
    tgt_rows = np.union1d(cand, tgt_idx[tgt_idx >= 0])
    budget.used.setdefault(src.modality, set()).update(str(i) for i in src.ids[keep])
    budget.used.setdefault(tgt.modality, set()).update(str(i) for i in tgt.ids[tgt_rows])
    return Pairing(src=keep, tgt=tgt_idx, label=lab_s[keep], tgt_rows=tgt_rows)


def _rows_of(table: EmbeddingTable, ids: list[str], budget: LabelBudget) -> np.ndarray:
    """Sorted row indices of `ids` in `table`; InputError naming the first id the table lacks."""
    index = {str(i): r for r, i in enumerate(table.ids)}
    missing = [i for i in ids if i not in index]
    if missing:
        raise InputError(f"label budget (seed {budget.seed}) names {table.modality} row {missing[0]!r}, which is "
                         f"not among the table's train rows ({len(missing)} such ids); rerun the pairs stage")
    return np.sort(np.array([index[i] for i in ids], dtype=np.int64))


# ----------------------------------------------------------------------------- the label budget


@dataclass
class LabelBudget:
    """The paired train rows fitting may use, chosen once per seed (the `pairs` stage writes it).

    pairs: {"a-b": {a: [ids], b: [ids]}} per allowed modality pair (sorted names), the train rows of
    each side whose pair_id or label fitting may read. Every method, bind and the sweep pair rows only
    inside it (`pair_rows(..., budget=...)`); `used` collects what they touched ({modality: ids}).
    """

    seed: int
    pairs_per_class: int
    pairs: dict[str, dict[str, list[str]]]
    cap_instances: bool = False
    used: dict[str, set] = field(default_factory=dict, compare=False, repr=False)

    def rows(self) -> dict[str, set[str]]:
        """{modality: ids} of every row the budget allows, over all its pairs."""
        out: dict[str, set[str]] = {}
        for sides in self.pairs.values():
            for m, ids in sides.items():
                out.setdefault(m, set()).update(ids)
        return out

    def side(self, src: str, tgt: str) -> tuple[list[str], list[str]]:
        key = "-".join(sorted((src, tgt)))
        if key not in self.pairs:
            raise InputError(f"label budget (seed {self.seed}): no pair {key!r}; it holds {sorted(self.pairs)}")
        return self.pairs[key][src], self.pairs[key][tgt]

    def counts(self) -> dict[str, dict[str, int]]:
        """{"a-b": {a: n_a, b: n_b}} rows per modality and pair (what `fit` prints)."""
        return {k: {m: len(v) for m, v in sides.items()} for k, sides in self.pairs.items()}

    def to_json(self) -> dict:
        return {"seed": self.seed, "pairs_per_class": self.pairs_per_class, "cap_instances": self.cap_instances,
                "pairs": {k: {m: list(v) for m, v in sides.items()} for k, sides in sorted(self.pairs.items())}}

    @classmethod
    def from_json(cls, data: dict, where: str) -> LabelBudget:
        try:
            pairs = {str(k): {str(m): [str(i) for i in ids] for m, ids in sides.items()} for k, sides in data["pairs"].items()}
            return cls(int(data["seed"]), int(data["pairs_per_class"]), pairs, bool(data.get("cap_instances", False)))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{where}: not a label budget (expected seed, pairs_per_class, pairs: {{a-b: {{a: [ids], b: [ids]}}}}; {exc})") from None


def _class_order(table: EmbeddingTable, seed: int) -> np.ndarray:
    """Rank of every row within its class (rows with label -1: one class): rows with a pair_id first,
    in an order of their pair_ids that every modality shares (so a cap keeps instance partners
    together), then the others in a seeded random order. Depends only on the seed, the modality and
    the table, so budgets at growing caps are nested."""
    rng = np.random.default_rng([seed, zlib.crc32(table.modality.encode()), 104729])
    labels = table.labels
    pid_key = np.array([-1 if p is None else zlib.crc32(f"{seed}:{p}".encode()) for p in table.pair_ids], dtype=np.int64)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        shuffled = rows[rng.permutation(len(rows))]
        has = pid_key[shuffled] >= 0
        ordered = np.concatenate([shuffled[has][np.argsort(pid_key[shuffled[has]], kind="stable")], shuffled[~has]])
        rank[ordered] = np.arange(len(rows))
    return rank


def choose_budget(
    train: dict[str, EmbeddingTable], pairs: list[tuple[str, str]], pairs_per_class: int, seed: int,
    cap_instances: bool = False,
) -> LabelBudget:
    """The label budget over the train tables of the pairs `pairs`: per modality, at most `pairs_per_class`
    rows per class (0 = all) in a seeded order chosen once per modality (the anchor keeps the same rows
    in every pair). Rows with an instance partner (same pair_id) in the other modality are all kept
    unless `cap_instances`, when they count against the per-class cap like any row."""
    if pairs_per_class < 0:
        raise InputError(f"pairs_per_class = {pairs_per_class}: expected >= 0 (0 = all)")
    mods = sorted({m for p in pairs for m in p})
    for m in mods:
        if m not in train:
            raise InputError(f"label budget: pair names modality {m!r}, which has no table; found {sorted(train)}")
    codes = dict(zip(mods, pair_codes(*(train[m] for m in mods)), strict=True))
    capped = {m: (_class_order(train[m], seed) < pairs_per_class) if pairs_per_class > 0
              else np.ones(len(train[m]), dtype=bool) for m in mods}
    out: dict[str, dict[str, list[str]]] = {}
    for a, b in sorted(tuple(sorted(p)) for p in pairs):
        inst = {a: np.isin(codes[a], codes[b][codes[b] >= 0]) & (codes[a] >= 0),
                b: np.isin(codes[b], codes[a][codes[a] >= 0]) & (codes[b] >= 0)}
        allowed = {m: capped[m] | (inst[m] & (not cap_instances)) for m in (a, b)}
        sides = {}
        for m, o in ((a, b), (b, a)):
            lab_o = train[o].labels[allowed[o] & (train[o].labels >= 0)]
            class_ok = (train[m].labels >= 0) & np.isin(train[m].labels, lab_o)
            partner_ok = inst[m] & np.isin(codes[m], codes[o][allowed[o] & inst[o]])
            keep = allowed[m] & (class_ok | partner_ok)
            sides[m] = [str(i) for i in train[m].ids[keep]]
        if not sides[a] or not sides[b]:
            raise InputError(f"no training pairs between {a!r} and {b!r}: no shared pair_id and no shared label among their train rows")
        out[f"{a}-{b}"] = sides
    return LabelBudget(seed, pairs_per_class, out, cap_instances)
