"""The raw data set on disk: one Parquet file per modality plus manifest.json, written atomically.

data/raw/image.parquet  id, split, label, pixels  (fixed_size_list<uint8>[784], 28 x 28 row-major)
data/raw/audio.parquet  id, split, label, source, voice, rate, pitch, waveform (list<int16>, 16 kHz PCM)
data/raw/text.parquet   id, split, label, template, text
data/raw/manifest.json  class names, counts per modality and split, test voices/templates, config, versions
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from embridge.errors import InputError
from embridge.files import atomic_write_bytes, read_json

RAW_MANIFEST = "manifest.json"
RAW_FORMAT_VERSION = 1
MODALITY_FILES = {"image": "image.parquet", "audio": "audio.parquet", "text": "text.parquet"}
# the column each modality's encoder reads
INPUT_COLUMNS = {"image": "pixels", "audio": "waveform", "text": "text"}
BASE_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("label", pa.int32(), nullable=False),
]
SCHEMAS = {
    "image": pa.schema([*BASE_FIELDS, pa.field("pixels", pa.list_(pa.uint8(), 28 * 28), nullable=False)]),
    "audio": pa.schema([
        *BASE_FIELDS,
        pa.field("source", pa.string(), nullable=False),  # espeak | fsdd
        pa.field("voice", pa.string(), nullable=False),  # eSpeak language+variant, or the FSDD speaker
        pa.field("rate", pa.int32()),  # eSpeak words per minute; null for recordings
        pa.field("pitch", pa.int32()),  # eSpeak base pitch 0..100; null for recordings
        pa.field("waveform", pa.list_(pa.int16()), nullable=False),  # PCM at 16 kHz, scale 1/32768
    ]),
    "text": pa.schema([
        *BASE_FIELDS,
        pa.field("template", pa.int32(), nullable=False),  # index into manifest["templates"]
        pa.field("text", pa.string(), nullable=False),
    ]),
}


def write_parquet(path: Path, table: pa.Table) -> None:
    """Write `table` to `path` atomically; the bytes depend only on the table (no timestamps)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", compression_level=3, row_group_size=8192)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def image_table(ids: list[str], split: list[str], label: np.ndarray, pixels: np.ndarray) -> pa.Table:
    """pixels: uint8 array of shape (n, 28, 28)."""
    n = len(ids)
    flat = pa.array(np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1), type=pa.uint8())
    cols = [pa.array(ids, pa.string()), pa.array(split, pa.string()),
            pa.array(np.asarray(label, dtype=np.int32)), pa.FixedSizeListArray.from_arrays(flat, 28 * 28)]
    assert all(len(c) == n for c in cols)
    return pa.Table.from_arrays(cols, schema=SCHEMAS["image"])


def audio_table(clips) -> pa.Table:
    """clips: embridge.data.speech.Clips (pcm: list of int16 arrays)."""
    lengths = np.fromiter((len(x) for x in clips.pcm), dtype=np.int32, count=len(clips))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = pa.array(np.concatenate(clips.pcm) if len(clips) else np.zeros(0, np.int16), type=pa.int16())
    cols = [
        pa.array(clips.ids, pa.string()), pa.array(clips.split, pa.string()),
        pa.array(np.asarray(clips.label, dtype=np.int32)), pa.array(clips.source, pa.string()),
        pa.array(clips.voice, pa.string()), pa.array(clips.rate, pa.int32()), pa.array(clips.pitch, pa.int32()),
        pa.ListArray.from_arrays(pa.array(offsets), values),
    ]
    return pa.Table.from_arrays(cols, schema=SCHEMAS["audio"])


def text_table(ids: list[str], split: list[str], label: list[int], template: list[int], text: list[str]) -> pa.Table:
    cols = [pa.array(ids, pa.string()), pa.array(split, pa.string()), pa.array(label, pa.int32()),
            pa.array(template, pa.int32()), pa.array(text, pa.string())]
    return pa.Table.from_arrays(cols, schema=SCHEMAS["text"])


def read_raw_manifest(raw_dir: str | Path) -> dict:
    path = Path(raw_dir) / RAW_MANIFEST
    d = read_json(path, f"{raw_dir} is not a prepared raw data folder (run `embridge prepare`)")
    for key in ("class_names", "counts", "files"):
        if key not in d:
            raise InputError(f"{path}: missing key {key!r}")
    return d


def read_raw(raw_dir: str | Path, modality: str) -> pa.Table:
    """One modality's raw table, with its schema checked. Raises InputError naming the file."""
    if modality not in MODALITY_FILES:
        raise InputError(f"modality {modality!r}: the raw data set has {sorted(MODALITY_FILES)}")
    path = Path(raw_dir) / MODALITY_FILES[modality]
    if not path.is_file():
        raise InputError(f"{path}: missing; run `embridge prepare` (or set prepare.audio_source) first")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: corrupt or truncated Parquet file ({exc})") from None
    want = SCHEMAS[modality]
    for f in want:
        if f.name not in table.schema.names:
            raise InputError(f"{path}: missing column {f.name!r}; expected columns {want.names}")
        if table.schema.field(f.name).type != f.type:
            raise InputError(f"{path}: column {f.name!r} has type {table.schema.field(f.name).type}, expected {f.type}")
    if table.num_rows == 0:
        raise InputError(f"{path}: no rows")
    return table
