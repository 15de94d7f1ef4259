"""Content checks on embedding arrays and on a table's rows as they stream by (TableChecker).

Every failure raises InputError naming the file, the column, the row (and its id) and what was
expected. FAISS silently returns -1 ids on NaN and raises a bare AssertionError on a dimension
mismatch, so nothing reaches it unchecked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from embridge.config.modalities import REQUIRED_SPLITS, SPLITS
from embridge.errors import InputError
from embridge.rows import row_sumsq
from embridge.store.manifest import Manifest, manifest_path
from embridge.store.reader import embeddings_view


def bad_rows(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices with a NaN/Inf value, and row indices that are all zeros. X: (n, d). Float32 rows
    in one pass in C (their sums of squares, `embridge.rows.row_sumsq`), else numpy."""
    sumsq = row_sumsq(X) if isinstance(X, np.ndarray) else None
    if sumsq is not None:
        finite = np.isfinite(sumsq)
        return np.flatnonzero(~finite), np.flatnonzero(sumsq == 0)
    finite = np.isfinite(X).all(axis=1)
    nonzero = (X != 0).any(axis=1)
    return np.flatnonzero(~finite), np.flatnonzero(finite & ~nonzero)


def check_matrix(X: np.ndarray, where: str, dim: int | None = None, ids=None) -> np.ndarray:
    """Check an in-memory embedding matrix. X: array of shape (n, d) of floats.

    Returns X unchanged. `where` names the source in messages ("audio embeddings", a file path);
    `ids`, when given, names rows by id as well as by index.
    """
    X = np.asarray(X)
    if X.dtype == object or not np.issubdtype(X.dtype, np.number):
        raise InputError(f"{where}: expected a numeric array, got dtype {X.dtype}")
    if X.ndim != 2:
        raise InputError(f"{where}: expected a 2-D array of shape (n, d), got shape {X.shape}")
    if X.shape[0] == 0:
        raise InputError(f"{where}: no rows (shape {X.shape})")
    if X.shape[1] == 0:
        raise InputError(f"{where}: vectors have dimension 0")
    if dim is not None and X.shape[1] != dim:
        raise InputError(f"{where}: vectors have dimension {X.shape[1]}, expected {dim}")
    nonfinite, zero = bad_rows(X)
    for rows, what in ((nonfinite, "NaN or Inf"), (zero, "an all-zero vector")):
        if len(rows):
            r = int(rows[0])
            name = f" (id {ids[r]!r})" if ids is not None else ""
            raise InputError(
                f"{where}: row {r}{name} holds {what}; {len(rows)} such row(s) in all "
                f"(expected finite, non-zero vectors)"
            )
    return X


class TableChecker:
    """Every content check of a table, fed batch by batch in table order (`iter_batches` without a
    split filter), so that a reader can check the rows it reads in the same pass."""

    def __init__(self, table_dir: str | Path, manifest: Manifest):
        self.table_dir, self.manifest = Path(table_dir), manifest
        if manifest.num_rows == 0 or not manifest.shards:
            raise InputError(f"{manifest_path(self.table_dir)}: the table is empty (0 rows); expected at least one row")
        self.seen: dict[str, tuple[str, int]] = {}
        self.split_counts = dict.fromkeys(SPLITS, 0)
        self.total = 0
        self._shards = iter(manifest.shards)
        self._info, self._row = next(self._shards), 0

    def check(self, batch: pa.RecordBatch) -> None:
        """Check one batch of all five columns; raises InputError naming the file, column and row."""
        while self._row >= self._info.num_rows:  # move to the shard this batch belongs to
            self._info, self._row = next(self._shards), 0
        path, row0, manifest = self.table_dir / self._info.file, self._row, self.manifest
        for name in ("id", "split", "embedding"):
            nulls = batch.column(name).null_count
            if nulls:
                r = int(np.flatnonzero(batch.column(name).is_null().to_numpy(zero_copy_only=False))[0])
                raise InputError(f"{path}: column {name!r}, row {row0 + r}: null value; expected a value in every row")
        ids = batch.column("id").to_pylist()
        for r, id_ in enumerate(ids):
            if id_ in self.seen:
                f0, r0 = self.seen[id_]
                raise InputError(
                    f"{path}: column 'id', row {row0 + r}: duplicate id {id_!r} "
                    f"(first seen in {f0}, row {r0}); ids must be unique within a modality"
                )
            self.seen[id_] = (self._info.file, row0 + r)
        split_col = batch.column("split")
        bad_split = pc.invert(pc.is_in(split_col, value_set=pa.array(SPLITS)))
        if pc.any(bad_split).as_py():
            r = int(np.flatnonzero(bad_split.to_numpy(zero_copy_only=False))[0])
            raise InputError(
                f"{path}: column 'split', row {row0 + r}: value {split_col[r].as_py()!r}; "
                f"expected one of {list(SPLITS)}"
            )
        for s in SPLITS:
            self.split_counts[s] += int(pc.sum(pc.equal(split_col, s)).as_py() or 0)
        labels = batch.column("label")
        if pc.any(pc.less(labels, 0)).as_py():
            r = int(np.flatnonzero(pc.fill_null(pc.less(labels, 0), False).to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{path}: column 'label', row {row0 + r}: value {labels[r].as_py()}; expected >= 0 or null")
        if manifest.class_names is not None and pc.any(pc.greater_equal(labels, len(manifest.class_names))).as_py():
            raise InputError(
                f"{path}: column 'label' holds a value >= {len(manifest.class_names)}, "
                f"but {manifest_path(self.table_dir).name} lists {len(manifest.class_names)} class names"
            )
        nonfinite, zero = bad_rows(embeddings_view(batch))
        for rows, what in ((nonfinite, "NaN or Inf"), (zero, "an all-zero vector")):
            if len(rows):
                r = int(rows[0])
                raise InputError(
                    f"{path}: column 'embedding', row {row0 + r} (id {ids[r]!r}) holds {what}; "
                    f"{len(rows)} such row(s) in this row group"
                )
        self._row += batch.num_rows
        self.total += batch.num_rows

    def finish(self, require_splits: tuple[str, ...] = REQUIRED_SPLITS) -> Manifest:
        """The checks that need every row: the row count and the required splits."""
        if self.total != self.manifest.num_rows:
            raise InputError(f"{manifest_path(self.table_dir)}: records {self.manifest.num_rows} rows, the shards hold {self.total}")
        counts = self.split_counts
        for s in require_splits:
            if counts[s] == 0:
                raise InputError(
                    f"{self.table_dir}: split {s!r} has no rows (train: {counts['train']}, val: {counts['val']}, test: {counts['test']}); "
                    f"every modality needs rows in {list(require_splits)}"
                )
        return self.manifest

