"""Labels and splits of imported rows: class indices from integer or named labels (mapped to given
class names by name), a class-names file, and the seeded stratified train/val/test split."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from embridge.errors import InputError

_INT_RE = re.compile(r"^[+-]?[0-9]+$")
MAX_LABEL_SLACK = 1024  # a class index may exceed the number of distinct labels by at most this (or 16x)


def _class_indices(raw: np.ndarray, path: Path, names: list[str] | None, names_path: Path | None) -> np.ndarray:
    ints = [int(v) for v in raw]  # Python ints: no overflow before the range checks
    for r, v in enumerate(ints):
        if v < 0:
            raise InputError(f"{path}: label at row {r} is {v}; expected a non-negative class index")
    top = max(ints, default=0)
    r = ints.index(top) if ints else 0
    if names is not None:
        if top >= len(names):
            raise InputError(f"{names_path}: {len(names)} class names, but the label at row {r} of {path} is {top}")
    elif top >= max(MAX_LABEL_SLACK, 16 * len(set(ints))):
        raise InputError(
            f"{path}: label at row {r} is {top}, far beyond the {len(set(ints))} distinct labels present; "
            f"expected class indices 0..C-1 (renumber them, or give class names as strings)"
        )
    return np.array(ints, dtype=np.int64)


def encode_labels(
    raw: np.ndarray, path: Path, names: list[str] | None = None, names_path: Path | None = None
) -> tuple[np.ndarray, list[str]]:
    """Class indices (n,) and the class names.

    Integer labels (also integers written in a .txt/.csv) stay integers: label c is class c, named
    names[c] when `names` is given, else '0', '1', .... String labels map to `names` by name (a
    label not among them is an error naming its row); without `names`, to their sorted set.
    """
    if raw.dtype.kind == "f":
        if not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
            r = int(np.flatnonzero(~np.isfinite(raw) | (raw != np.round(raw)))[0])
            raise InputError(f"{path}: label at row {r} is {raw[r]}; expected an integer class index or a class name")
    elif raw.dtype.kind not in "iu":
        text = [str(v) for v in raw]
        if not all(_INT_RE.match(v) for v in text):
            if names is None:
                names = sorted(set(text))
            index = {c: i for i, c in enumerate(names)}
            for r, v in enumerate(text):
                if v not in index:
                    raise InputError(
                        f"{path}: row {r} has label {v[:80]!r}, which is not one of the {len(names)} class names "
                        f"in {names_path}"
                    )
            return np.array([index[v] for v in text], dtype=np.int64), names
        raw = np.array(text, dtype=object)
    labels = _class_indices(raw, path, names, names_path)
    return labels, names if names is not None else [str(c) for c in range(int(labels.max(initial=0)) + 1)]


def read_class_names(path: Path) -> list[str]:
    """One class name per line (blank lines skipped); InputError for a missing file or a repeated name."""
    if not path.is_file():
        raise InputError(f"{path}: file does not exist (--class-names: one class name per line)")
    names = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    if not names:
        raise InputError(f"{path}: no class names (expected one per line)")
    seen: dict[str, int] = {}
    for i, c in enumerate(names):
        if c in seen:
            raise InputError(f"{path}: class name {c[:80]!r} appears twice (names {seen[c]} and {i})")
        seen[c] = i
    return names


def stratified_split(labels: np.ndarray | None, n: int, test_fraction: float, seed: int,
                     val_fraction: float = 0.0) -> np.ndarray:
    """'train'/'val'/'test' per row; per class round(test_fraction * n_c) rows go to test and, of a
    seeded order, the next round(val_fraction * n_c) to val (seeded)."""
    if not 0 < test_fraction < 1:
        raise InputError(f"--test-fraction {test_fraction}: expected a number strictly between 0 and 1")
    if not 0 <= val_fraction < 1 - test_fraction:
        raise InputError(f"--val-fraction {val_fraction}: expected 0 <= val_fraction < 1 - test_fraction ({1 - test_fraction})")
    rng = np.random.default_rng(seed)
    split = np.full(n, "train", dtype=object)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for rows in groups:
        n_test = int(round(test_fraction * len(rows)))
        if len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)
        order = rng.permutation(rows)
        n_val = min(int(round(val_fraction * len(rows))), max(len(rows) - n_test - 1, 0))
        split[order[:n_test]] = "test"
        split[order[n_test : n_test + n_val]] = "val"
    return split
