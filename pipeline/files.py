"""Files written whole or not at all: atomic writes through a temp file and a rename, and JSON reads
whose errors name the file. The ground floor: the store, maps, metrics and reports all write this way."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embridge.errors import InputError


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it to `path`, on any
    error (or interruption) delete it. A half-written file never carries the final name."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_json(path: str | Path, missing: str) -> dict:
    """A JSON object from `path`; InputError naming the file when it is missing (`missing`
    says what the folder then is not), not JSON, or not an object."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing; {missing}")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise InputError(f"{path}: expected a JSON object")
    return d
