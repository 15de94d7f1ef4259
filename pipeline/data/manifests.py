"""Dataset readers: manifest files (CSV, Parquet, JSON Lines) and folders (ImageFolder, FSDD names).

Manifest columns: `path` (a file, relative to the manifest's folder) or `text`; optional `id`
(default: the path, or the row number for texts), `label` (class name or integer), `pair_id`, and
`split` (train / val / test; missing: a seeded split stratified by label). Any other column is refused.
Rows are numbered from 0 in file order (for CSV: the first line after the header is row 0).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
from embridge.data.dataset import Dataset, SplitConfig, sha256_bytes, stratified_split
from embridge.errors import InputError

COLUMNS = ("path", "text", "id", "label", "pair_id", "split")
FSDD_RE = re.compile(r"^(\d+)_([A-Za-z0-9-]+)_(\d+)\.wav$")  # {label}_{speaker}_{take}.wav


def _read_table(path: Path) -> pa.Table:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            from pyarrow import csv

            # every column as text: ids like 007 and labels like 1 stay what the user wrote
            names = csv.read_csv(path, read_options=csv.ReadOptions(block_size=1 << 16)).schema.names \
                if path.stat().st_size else []
            return csv.read_csv(path, convert_options=csv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=True))
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if suffix in (".jsonl", ".ndjson"):
            from pyarrow import json

            return json.read_json(path) if path.stat().st_size else pa.table({})
    except (pa.ArrowException, OSError) as exc:
        if "Empty CSV file" in str(exc):
            return pa.table({})
        raise InputError(f"{path}: cannot be read as a {suffix[1:]} manifest ({exc})") from None
    raise InputError(f"{path}: unknown manifest type {suffix!r}; expected .csv, .parquet or .jsonl")


def _labels(values: list, source: str, class_names: list[str] | None) -> tuple[list[int | None], list[str]]:
    """Class names or integers -> class indices and the class list."""
    present = [v for v in values if v is not None and v != ""]
    if not present:
        return [None] * len(values), list(class_names or [])
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in present)
    if ints:
        names = list(class_names) if class_names else [str(c) for c in range(max(present) + 1)]
        out = []
        for r, v in enumerate(values):
            if v is not None and not 0 <= v < len(names):
                raise InputError(f"{source}: row {r}: label {v} outside 0..{len(names) - 1} (class_names has {len(names)})")
            out.append(v)
        return out, names
    found = {str(v) for v in present}
    # sorted by name; numerals ("2" before "10") by value
    names = list(class_names) if class_names else sorted(found, key=lambda n: (0, int(n), "") if n.isdigit() else (1, 0, n))
    index = {n: c for c, n in enumerate(names)}
    out = []
    for r, v in enumerate(values):
        if v is None or v == "":
            out.append(None)
        elif str(v) not in index:
            raise InputError(f"{source}: row {r}: label {v!r} is not a class name; expected one of {names}")
        else:
            out.append(index[str(v)])
    return out, names


def _text_or_none(values: list) -> list[str | None]:
    return [None if v is None or v == "" else str(v) for v in values]


def read_manifest_file(path: Path, split_cfg: SplitConfig, class_names: list[str] | None = None) -> Dataset:
    table = _read_table(path)
    source = str(path)
    unknown = [c for c in table.schema.names if c not in COLUMNS]
    if unknown:
        raise InputError(f"{source}: unknown column(s) {unknown}; expected columns among {list(COLUMNS)}")
    names = set(table.schema.names)
    if table.num_rows == 0:
        raise InputError(f"{source}: no rows (an empty manifest)")
    if ("path" in names) == ("text" in names):
        raise InputError(f"{source}: expected exactly one of the columns 'path' (files) or 'text'; found {sorted(names)}")
    col = lambda n: table.column(n).to_pylist() if n in names else [None] * table.num_rows  # noqa: E731
    n = table.num_rows
    items = col("path") if "path" in names else col("text")
    for r, v in enumerate(items):
        if v is None or v == "":
            raise InputError(f"{source}: row {r}: empty {'path' if 'path' in names else 'text'}")
    ids = col("id")
    ids = [str(v) if v not in (None, "") else (str(items[r]) if "path" in names else str(r)) for r, v in enumerate(ids)]
    label, classes = _labels(col("label"), source, class_names)
    split = col("split")
    if all(s in (None, "") for s in split):
        split = stratified_split(label, split_cfg)
    else:
        for r, s in enumerate(split):
            if s in (None, ""):
                raise InputError(f"{source}: row {r} (id {ids[r]}): no split, while other rows have one; give every row a split or none")
    ds = Dataset(source=source, ids=ids, split=[str(s) for s in split], label=label,
                 pair_id=_text_or_none(col("pair_id")), class_names=classes,
                 fingerprint=sha256_bytes(path.read_bytes()), rows=list(range(n)))
    if "path" in names:
        ds.paths = [(path.parent / str(p)) for p in items]
    else:
        ds.texts, ds.kind = [str(t) for t in items], "text"
    return ds


def _listing_fingerprint(root: Path, files: list[Path]) -> str:
    """sha256 over each file's relative path, size and modification time (not its bytes: folders are large)."""
    lines = [f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}\t{p.stat().st_mtime_ns}" for p in files]
    return sha256_bytes("\n".join(lines).encode())


def read_folder(root: Path, split_cfg: SplitConfig, class_names: list[str] | None = None) -> Dataset:
    """ROOT/<class>/<file> (ImageFolder; split: seeded, stratified) or {label}_{speaker}_{take}.wav
    files (FSDD; split by speaker, so no test speaker is heard in training)."""
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    subdirs = [p for p in entries if p.is_dir()]
    files = [p for p in entries if p.is_file()]
    if subdirs and not files:
        return _image_folder(root, subdirs, split_cfg, class_names)
    if files and not subdirs:
        return _fsdd(root, files, split_cfg, class_names)
    if not entries:
        raise InputError(f"{root}: an empty folder (expected ROOT/<class>/<file> or {{label}}_{{speaker}}_{{take}}.wav files)")
    raise InputError(f"{root}: mixes files and folders; expected ROOT/<class>/<file> (ImageFolder) "
                     f"or only {{label}}_{{speaker}}_{{take}}.wav files (FSDD)")


def _image_folder(root: Path, subdirs: list[Path], split_cfg: SplitConfig, class_names: list[str] | None) -> Dataset:
    names = list(class_names) if class_names else [d.name for d in subdirs]
    index = {n: c for c, n in enumerate(names)}
    paths, label = [], []
    for d in subdirs:
        if d.name not in index:
            raise InputError(f"{d}: class folder {d.name!r} is not in class_names {names}")
        for p in sorted(q for q in d.rglob("*") if q.is_file() and not q.name.startswith(".")):
            paths.append(p)
            label.append(index[d.name])
    if not paths:
        raise InputError(f"{root}: the class folders hold no files")
    ids = [p.relative_to(root).as_posix() for p in paths]
    return Dataset(source=str(root), ids=ids, split=stratified_split(label, split_cfg), label=label,
                   pair_id=[None] * len(ids), class_names=names, paths=paths,
                   fingerprint=_listing_fingerprint(root, paths), rows=list(range(len(ids))))


def _fsdd(root: Path, files: list[Path], split_cfg: SplitConfig, class_names: list[str] | None) -> Dataset:
    import numpy as np
    from embridge.data.digits import CLASS_NAMES
    from embridge.data.speech import split_groups

    parsed = []
    for i, p in enumerate(files):
        m = FSDD_RE.match(p.name)
        if not m:
            raise InputError(f"{root}: file {i} {p.name!r} does not match {{label}}_{{speaker}}_{{take}}.wav (the FSDD layout)")
        parsed.append((p, int(m.group(1)), m.group(2)))
    names = list(class_names) if class_names else list(CLASS_NAMES)
    for p, y, _ in parsed:
        if not 0 <= y < len(names):
            raise InputError(f"{p}: label {y} outside 0..{len(names) - 1}")
    rng = np.random.default_rng([split_cfg.seed, 2])
    by_speaker = split_groups([s for _, _, s in parsed], split_cfg.test_fraction, rng, f"{root}: speakers",
                              val_fraction=split_cfg.val_fraction)  # {speaker: train | val | test}
    paths = [p for p, _, _ in parsed]
    return Dataset(source=str(root), ids=[p.stem for p in paths],
                   split=[by_speaker[s] for _, _, s in parsed],
                   label=[y for _, y, _ in parsed], pair_id=[None] * len(paths), class_names=names,
                   paths=paths, fingerprint=_listing_fingerprint(root, paths), rows=list(range(len(paths))), kind="audio")
