"""Modality names, the anchor, and parsing of modality pairs ("image-text")."""

from __future__ import annotations

import re
from collections.abc import Iterable

from embridge.errors import ConfigError

IMAGE = "image"
AUDIO = "audio"
TEXT = "text"
DEPTH = "depth"
THERMAL = "thermal"
VIDEO = "video"
# the modalities of the default benchmark, in report order
DEFAULT_MODALITIES = (IMAGE, AUDIO, TEXT)
DEFAULT_ANCHOR = TEXT
SPLITS = ("train", "val", "test")  # fitting reads train, choices are made on val, test is scored once
REQUIRED_SPLITS = ("test",)  # what import writes and evaluate needs; train only for methods that fit, val for a grid


MODALITY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.]{0,63}$")


def check_modality_name(name: str, where: str = "modality") -> str:
    """A modality name is also a folder name: letters, digits, '_' and '.', not starting with '.',
    at most 64 characters; no '/', no '..', no '-' (it joins pairs). Raises ConfigError."""
    if not isinstance(name, str) or not MODALITY_NAME.match(name):
        raise ConfigError(
            f"{where}: modality name {str(name)[:80]!r} is not allowed; expected letters, digits, '_' or '.' "
            f"(not first), at most 64 characters (it names a folder: no '/', '..' or '-')"
        )
    return name


def pair_key(a: str, b: str) -> str:
    """Canonical, order-free name of a modality pair: sorted, joined by '-' ('audio-text')."""
    return "-".join(sorted((a, b)))


def parse_pairs(pairs: str | Iterable[str], modalities: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Parse "image-text,audio-text" (or a list of such strings) into sorted tuples.

    Raises ConfigError for a malformed pair, a pair of a modality with itself, or (when
    `modalities` is given) a pair naming a modality that does not exist.
    """
    if isinstance(pairs, str):
        items = [p.strip() for p in pairs.split(",") if p.strip()]
    else:
        items = [str(p).strip() for p in pairs]
    known = None if modalities is None else set(modalities)
    out: list[tuple[str, str]] = []
    for item in items:
        parts = item.split("-")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"pair {item!r}: expected two modality names joined by '-', e.g. 'image-text'")
        a, b = parts
        if a == b:
            raise ConfigError(f"pair {item!r}: a modality cannot be paired with itself")
        if known is not None:
            for m in (a, b):
                if m not in known:
                    raise ConfigError(
                        f"pair {item!r} names modality {m!r}, which does not exist; "
                        f"available modalities: {sorted(known)}"
                    )
        key = tuple(sorted((a, b)))
        if key not in out:
            out.append(key)
    return out


def is_paired(a: str, b: str, train_pairs: Iterable[tuple[str, str]]) -> bool:
    """True when (a, b) is one of the pairs allowed for fitting."""
    return tuple(sorted((a, b))) in {tuple(sorted(p)) for p in train_pairs}


def default_pairs(params, tables: Iterable[str], params_path) -> list[str]:
    """The pairs a command uses without --pairs: params.yaml's pairs.train when a file is given, else the
    default pairs.train restricted to the modalities present (fit and evaluate agree on this)."""
    if params_path is not None:
        return list(params.pairs.train)
    present = set(tables)
    return [q for q in params.pairs.train if all(m in present for m in q.split("-"))]
