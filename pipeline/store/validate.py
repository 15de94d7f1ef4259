"""`embridge validate`: every check of store.checks run over a whole table folder."""

from __future__ import annotations

from pathlib import Path

from embridge.config.modalities import REQUIRED_SPLITS
from embridge.store.checks import TableChecker
from embridge.store.manifest import Manifest, read_manifest
from embridge.store.reader import iter_batches


def validate_table(
    table_dir: str | Path, manifest: Manifest | None = None, require_splits: tuple[str, ...] = REQUIRED_SPLITS
) -> Manifest:
    """Run every check on one table folder; return its manifest. Raises InputError on the first problem.

    A valid table has test rows (the rule `import` and `evaluate` apply too): an all-test table is
    valid and can be evaluated by a training-free method (raw, collapse with precomputed means)."""
    manifest = manifest or read_manifest(table_dir)
    checker = TableChecker(table_dir, manifest)
    for batch in iter_batches(table_dir, manifest=manifest):
        checker.check(batch)
    return checker.finish(require_splits)
