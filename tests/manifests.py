"""Editing a table's manifest in place, as a corrupting or careless tool would (the manifest is the
footer of `_manifest.parquet`, not a text file to rewrite)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from embridge.store import read_manifest_dict, write_manifest_dict


def edit_manifest(table_dir: str | Path, edit: Callable[[dict], None]) -> Path:
    """Apply `edit` to the stored manifest dict of `table_dir` and write it back unchecked; returns its file."""
    path, d = read_manifest_dict(table_dir)
    edit(d)
    write_manifest_dict(table_dir, d)
    return path


def manifest_dict(table_dir: str | Path) -> dict:
    return read_manifest_dict(table_dir)[1]
