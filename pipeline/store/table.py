"""One modality's table in memory (EmbeddingTable), read whole or by split with every row checked
in the pass that reads it, and the folder of tables (one subfolder per modality)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from embridge.errors import InputError
from embridge.store.checks import TableChecker
from embridge.store.manifest import (
    MANIFEST,
    META_COLUMNS,
    Manifest,
    has_manifest,
    looks_like_table,
    manifest_path,
    read_manifest,
)
from embridge.store.reader import embeddings_view, iter_batches


@dataclass
class EmbeddingTable:
    """One modality's rows in memory. X: array of shape (n, d); meta: polars frame (id, split, label, pair_id)."""

    modality: str
    X: np.ndarray
    meta: pl.DataFrame
    manifest: Manifest | None = None

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        return self.X.shape[1]

    @property
    def ids(self) -> np.ndarray:
        return self.meta["id"].to_numpy()

    @property
    def labels(self) -> np.ndarray:
        """int64 array of shape (n,), -1 where the row has no label."""
        return self.meta["label"].fill_null(-1).cast(pl.Int64).to_numpy()

    @property
    def pair_ids(self) -> np.ndarray:
        """object array of shape (n,), None where the row has no pair."""
        return self.meta["pair_id"].to_numpy()

    @property
    def split(self) -> np.ndarray:
        return self.meta["split"].to_numpy()

    @property
    def class_names(self) -> list[str] | None:
        return self.manifest.class_names if self.manifest else None

    def subset(self, mask: np.ndarray) -> EmbeddingTable:
        mask = np.asarray(mask)
        return EmbeddingTable(self.modality, self.X[mask], self.meta.filter(pl.Series(mask)) if mask.dtype == bool
                              else self.meta[mask], self.manifest)

    def select_split(self, split: str) -> EmbeddingTable:
        return self.subset(self.split == split)


def read_table(
    table_dir: str | Path, split: str | None = None, dtype: str | None = "float32", validate: bool = True
) -> EmbeddingTable:
    """Read a whole table (or one split) into memory.

    dtype: "float32" (default) converts float16 tables; None keeps the stored dtype. With one
    row group of float32 and no split filter the returned X is a zero-copy view of Arrow memory.
    validate: run the full content checks of `embridge.store.validate` (NaN/Inf, zero rows, duplicate ids)
    on every row, in the same pass that reads them.
    """
    table_dir = Path(table_dir)
    manifest = read_manifest(table_dir)
    checker = TableChecker(table_dir, manifest) if validate else None
    meta_parts, X_parts = [], []
    # with validation every row is read (and checked); the split is then filtered here
    for batch in iter_batches(table_dir, split=None if checker else split, manifest=manifest):
        if checker:
            checker.check(batch)
            if split is not None:
                batch = batch.filter(pc.equal(batch.column("split"), split))
        meta_parts.append(pa.Table.from_batches([batch]).select(list(META_COLUMNS)))
        X_parts.append(embeddings_view(batch))
    if checker:
        checker.finish(require_splits=())
    if not X_parts or sum(len(x) for x in X_parts) == 0:
        where = f"split {split!r} of " if split else ""
        raise InputError(f"{table_dir}: {where}table has no rows")
    target = np.dtype(dtype) if dtype else X_parts[0].dtype
    if len(X_parts) == 1 and X_parts[0].dtype == target:
        X = X_parts[0]
    else:
        X = np.empty((sum(len(x) for x in X_parts), manifest.dim), dtype=target)
        i = 0
        for part in X_parts:
            X[i : i + len(part)] = part
            i += len(part)
    meta = pl.from_arrow(pa.concat_tables(meta_parts))
    return EmbeddingTable(manifest.modality, X, meta, manifest)


def list_tables(root: str | Path) -> dict[str, Path]:
    """Modality name -> table folder, for every subfolder of `root` that holds a manifest.

    One name rules: a table's folder name must be the modality its manifest records. A subfolder
    that looks like a table without its manifest (shards or a writer's temp files: an interrupted
    write) is an error, not skipped. Hidden entries (a writer's temp folders) are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder of embedding tables (one subfolder per modality)")
    found = {}
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or not p.is_dir():
            continue
        if has_manifest(p):
            modality = read_manifest(p).modality
            if modality != p.name:
                raise InputError(
                    f"{p}: the folder is named {p.name!r} but its {manifest_path(p).name} records modality {modality!r}; "
                    f"one name must rule: rename the folder to {modality!r} or re-import with --modality {p.name}"
                )
            found[p.name] = p
        elif looks_like_table(p):
            raise InputError(
                f"{p}: incomplete table: shards or temp files but no {MANIFEST} (an interrupted write?); "
                f"re-run the command that writes it, or remove the folder"
            )
    if not found:
        raise InputError(f"{root}: no embedding tables found (expected subfolders holding {MANIFEST})")
    return found


def check_pair_ids(tables: dict[str, EmbeddingTable], where: dict[str, Path]) -> None:
    """Pair ids name one row per modality and match across modalities: a pair id repeated inside one
    modality, or a modality whose pair ids occur in no other modality, is an InputError with counts
    (fit would otherwise fall back to class pairs silently, and evaluation would find no query)."""
    ids = {}
    for m, t in tables.items():
        col = t.meta["pair_id"]
        present = col.drop_nulls()
        if len(present) == 0:
            continue
        counts = present.value_counts()
        dups = counts.filter(pl.col("count") > 1)
        if len(dups):
            first = dups["pair_id"][0]
            rows = np.flatnonzero(col.to_numpy() == first)[:2]
            raise InputError(
                f"{where[m]}: duplicate pair id {first!r} at rows {rows[0]} and {rows[1]} "
                f"({len(dups)} pair id(s) repeated in all); a pair id names one row per modality"
            )
        ids[m] = set(present.to_list())
    if len(tables) < 2:
        return
    for m, own in ids.items():
        others = set().union(*(v for k, v in ids.items() if k != m))
        if not own & others:
            raise InputError(
                f"{where[m]}: {len(own)} pair ids, but no other modality ({', '.join(sorted(set(tables) - {m}))}) "
                f"holds any of them; fit would fall back to class pairs and evaluation would find no instance "
                f"partner. Check the --pair-ids given to import"
            )


def load_tables(
    root: str | Path, modalities: Sequence[str] | None = None, split: str | None = None, validate: bool = True
) -> dict[str, EmbeddingTable]:
    """Read every table under `root` (one subfolder per modality), or just `modalities`; pair ids
    are checked across them (`check_pair_ids`)."""
    found = list_tables(root)
    if modalities is not None:
        missing = [m for m in modalities if m not in found]
        if missing:
            raise InputError(f"{root}: no table for modality {missing}; found {sorted(found)}")
        found = {m: found[m] for m in modalities}
    tables = {m: read_table(p, split=split, validate=validate) for m, p in found.items()}
    if validate and split is None:
        check_pair_ids(tables, found)
    return tables
