"""A dataset to extract: one row per item (id, split, label, pair_id, and a file, a text or a decoded array).

`read_dataset(path)` reads any of the layouts the extract stage takes:
  - a manifest file (.csv, .parquet, .jsonl): see embridge.data.manifests;
  - a folder in ImageFolder layout (ROOT/<class name>/<file>) or FSDD layout ({label}_{speaker}_{take}.wav);
  - a prepared raw folder of the built-in benchmark (data/raw: manifest.json + <modality>.parquet).
The built-in digits are one dataset among the others: their rows carry decoded arrays instead of paths.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from embridge.data.decode import DecodeError, decode, resample
from embridge.errors import InputError

SPLITS = ("train", "val", "test")
BUILTIN_RATE = 16_000  # the raw audio table's PCM rate (embridge.data.raw)


@dataclass
class SplitConfig:
    """How rows without a `split` are split: seeded, stratified by label."""

    seed: int = 0  # same seed -> same split
    test_fraction: float = 0.2  # share of each class held out as test
    val_fraction: float = 0.0  # share of each class held out as val (0: none)


@dataclass
class Dataset:
    """Rows of one modality. Exactly one of paths / texts / arrays holds the items."""

    source: str  # the manifest file or folder (named in every error)
    ids: list[str]
    split: list[str]
    label: list[int | None]  # class index into class_names, or None for every row (no labels)
    pair_id: list[str | None]
    class_names: list[str]
    fingerprint: str  # sha256 over what determines the items (manifest bytes or the folder listing)
    paths: list[Path] | None = None  # one file per row
    texts: list[str] | None = None  # one text per row
    arrays: list[np.ndarray] | None = None  # decoded items (built-in digits: (28, 28) uint8 or int16 PCM)
    rows: list[int] = field(default_factory=list)  # row in the manifest (or index in the listing), for errors
    kind: str | None = None  # the items' own kind, when fixed by the layout (text, image, audio)

    def __len__(self) -> int:
        return len(self.ids)

    def where(self, i: int) -> str:
        """'<source>: row <r> (id <id>)': how errors name an item."""
        return f"{self.source}: row {self.rows[i] if self.rows else i} (id {self.ids[i]})"

    def item(self, i: int, kind: str, rate: int = 16_000, n_frames: int = 8):
        """Row i decoded for an encoder input `kind`; raises DecodeError naming the file and row."""
        if kind == "text":
            if self.texts is None:
                raise InputError(f"{self.source}: the encoder reads text, but this dataset has no `text` column")
            return self.texts[i]
        if self.texts is not None:
            raise InputError(f"{self.source}: the encoder reads {kind}, but this dataset holds texts (a `text` column)")
        if self.arrays is not None:
            x = self.arrays[i]
            if kind == "audio" and rate != BUILTIN_RATE:  # int16 PCM at 16 kHz -> float32 at the encoder's rate
                return resample(x.astype(np.float32) / 32768.0, BUILTIN_RATE, rate)
            return x
        try:
            return decode(self.paths[i], kind, rate=rate, n_frames=n_frames)
        except DecodeError as exc:
            raise DecodeError(f"{exc} ({self.where(i)})") from None

    def select(self, keep: list[int]) -> Dataset:
        """The rows `keep`, in that order (the same fingerprint: it names the source, not the subset)."""
        pick = lambda xs: None if xs is None else [xs[i] for i in keep]  # noqa: E731
        return Dataset(
            source=self.source, ids=pick(self.ids), split=pick(self.split), label=pick(self.label),
            pair_id=pick(self.pair_id), class_names=self.class_names, fingerprint=self.fingerprint,
            paths=pick(self.paths), texts=pick(self.texts), arrays=pick(self.arrays),
            rows=pick(self.rows) if self.rows else list(keep), kind=self.kind,
        )


def check_rows(ds: Dataset) -> Dataset:
    """Refuse an empty dataset, duplicate ids, split values other than train/val/test, and labels
    present in some rows but not others; each error names the source and the row."""
    if len(ds) == 0:
        raise InputError(f"{ds.source}: no rows (an empty dataset)")
    seen: dict[str, int] = {}
    for i, id_ in enumerate(ds.ids):
        if id_ in seen:
            raise InputError(f"{ds.where(i)}: duplicate id {id_!r} (first at row {ds.rows[seen[id_]] if ds.rows else seen[id_]}); ids must be unique")
        seen[id_] = i
    for i, s in enumerate(ds.split):
        if s not in SPLITS:
            raise InputError(f"{ds.where(i)}: split {s!r}; expected one of {list(SPLITS)}")
    missing = [i for i, y in enumerate(ds.label) if y is None]
    if missing and len(missing) < len(ds):
        raise InputError(f"{ds.where(missing[0])}: no label, while other rows have one "
                         f"({len(missing)} of {len(ds)} rows lack a label); label every row or none")
    return ds


def stratified_split(label: list[int | None], cfg: SplitConfig) -> list[str]:
    """Per class (or over all rows when unlabelled): a seeded shuffle, the first round(f * n) rows
    test, the next round(v * n) val, the rest train (at least one train row per class)."""
    rng = np.random.default_rng(cfg.seed)
    out = ["train"] * len(label)
    groups: dict[int | None, list[int]] = {}
    for i, y in enumerate(label):
        groups.setdefault(y, []).append(i)
    for key in sorted(groups, key=lambda k: -1 if k is None else k):
        rows = np.asarray(groups[key])[rng.permutation(len(groups[key]))]
        n = len(rows)
        n_test = min(round(cfg.test_fraction * n), n - 1)
        n_val = min(round(cfg.val_fraction * n), n - 1 - n_test)
        for r in rows[:n_test]:
            out[r] = "test"
        for r in rows[n_test:n_test + n_val]:
            out[r] = "val"
    return out


def sha256_bytes(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()


def read_builtin(raw_dir: Path, modality: str) -> Dataset:
    """The built-in benchmark's prepared folder (data/raw), one modality, as a Dataset."""
    from embridge.data.raw import INPUT_COLUMNS, MODALITY_FILES, read_raw, read_raw_manifest

    manifest = read_raw_manifest(raw_dir)
    if modality not in MODALITY_FILES:
        raise InputError(f"{raw_dir}: the built-in dataset has the modalities {sorted(MODALITY_FILES)}, not {modality!r}")
    table = read_raw(raw_dir, modality)
    column = table.column(INPUT_COLUMNS[modality]).combine_chunks()
    ds = Dataset(
        source=str(raw_dir / MODALITY_FILES[modality]), ids=table.column("id").to_pylist(),
        split=table.column("split").to_pylist(), label=table.column("label").to_pylist(),
        pair_id=[None] * table.num_rows, class_names=list(manifest["class_names"]),
        fingerprint=sha256_bytes((raw_dir / MODALITY_FILES[modality]).read_bytes()), kind=modality,
    )
    if modality == "text":
        ds.texts = column.to_pylist()
    elif modality == "image":
        side = int(round(column.type.list_size ** 0.5))
        ds.arrays = list(column.flatten().to_numpy(zero_copy_only=False).reshape(-1, side, side))  # (28, 28) uint8
    else:
        values = column.flatten().to_numpy(zero_copy_only=False)
        ds.arrays = np.split(values, np.cumsum(column.value_lengths().to_numpy(zero_copy_only=False))[:-1])  # int16 PCM
    return check_rows(ds)


def read_dataset(path: str | Path, modality: str, split_cfg: SplitConfig | None = None,
                 class_names: list[str] | None = None) -> Dataset:
    """Read `path` (a manifest file, an ImageFolder / FSDD folder, or a prepared raw folder) as a Dataset.

    class_names: the class list every modality shares (labels given as names map to its indices);
    None: the sorted names found here. Raises InputError naming the file and row on bad input.
    """
    from embridge.data import manifests

    path = Path(path)
    split_cfg = split_cfg or SplitConfig()
    if not path.exists():
        raise InputError(f"{path}: dataset not found (expected a .csv/.parquet/.jsonl manifest or a folder)")
    if path.is_dir():
        if (path / "manifest.json").is_file() and (path / f"{modality}.parquet").is_file():
            return read_builtin(path, modality)
        return check_rows(manifests.read_folder(path, split_cfg, class_names))
    return check_rows(manifests.read_manifest_file(path, split_cfg, class_names))
