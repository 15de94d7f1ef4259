"""Files and folders written whole or not at all: atomic writes through a temp file (or temp folder)
and a rename, checks of output paths before any work, and JSON reads whose errors name the file.
The ground floor: the store, maps, metrics and reports all write this way."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from embridge.errors import InputError, OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _umask_mode() -> int:
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it to `path`, on any
    error (or interruption) delete it. A half-written file never carries the final name."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(f"{path}: could not be written ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk (ENOSPC), a quota, a read-only folder: one line naming the file
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: could not be written ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on `folder` itself; the kernel drops it when the process dies."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a new temp folder beside `path`; on success it replaces `path` whole, on any error it is
    deleted and `path` is left as it was. Writers of one `path` swap their folders in one at a
    time (a lock on the parent folder), so the result is always one writer's complete output,
    never a mix. The previous `path` is removed only once the new one is complete."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as exc:
        raise OutputError(f"{path}: could not be written ({exc.strerror or exc})") from None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0o700; a folder made by mkdir would follow the umask
        with _locked(path.parent):
            old = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.old"
            had = path.exists() or path.is_symlink()
            if had:
                os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                if had:
                    os.rename(old, path)
                raise
        if had:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{path}: could not be written ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _inside(a: Path, b: Path) -> bool:
    """True when path a is b or lies inside b."""
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def check_no_input_inside(
    out: str | Path, inputs: Iterable[str | Path], flag: str = "--out", nested: bool = False
) -> None:
    """An input is never an output: refuse an `out` that is one of `inputs` or holds one (writing it
    would replace the input); with `nested`, also an `out` inside an input folder."""
    out = Path(out)
    for inp in inputs:
        inp = Path(inp)
        if _inside(inp, out) or (nested and _inside(out, inp)):
            raise OutputError(
                f"{inp}: is an input of this command and {flag} {out} would write over it; "
                f"choose an {flag} outside the inputs"
            )


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """Before any work: `path` can become a file (it is not a folder, and no parent is a file)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; {flag} must name a file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{parent}: is a file, so {flag} {path} cannot be written")
            break
    return path


def check_output_dir(path: str | Path, ours: Callable[[str], bool], overwrite: bool = False, flag: str = "--out") -> Path:
    """Before any work: `path` is absent, an empty folder, or a folder holding only files this tool
    writes there (names for which `ours` is true, e.g. a previous run's output); else, unless
    `overwrite`, OutputError listing what it holds."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; {flag} must name a folder")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{parent}: is a file, so {flag} {path} cannot be written")
            break
    if path.is_dir() and not overwrite:
        foreign = sorted(p.name for p in path.iterdir() if not ours(p.name))
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise OutputError(
                f"{path}: holds files embridge did not write there ({shown}); choose another {flag} "
                f"or pass --overwrite to replace the folder"
            )
    return path


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
