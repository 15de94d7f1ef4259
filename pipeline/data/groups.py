"""Which test queries are not independent: the group of a row read from the ids the built-in data writes
(text-tNN-c: template NN; espeak-<voice>-r..-p..-c: the voice; fsdd-<speaker>-c-take: the speaker)."""

from __future__ import annotations

import re

import numpy as np

RULES = (
    re.compile(r"^text-(t\d+)-\d+$"),  # prompts: one template
    re.compile(r"^espeak-(.+)-r\d+-p\d+-\d+$"),  # eSpeak NG: one voice (language + variant)
    re.compile(r"^fsdd-(.+)-\d+-\d+$"),  # Free Spoken Digit Dataset: one speaker
)


def row_groups(ids) -> np.ndarray | None:
    """(n,) group names when every id follows one of the built-in layouts, else None (queries independent)."""
    ids = [str(i) for i in ids]
    for rule in RULES:
        found = [rule.match(i) for i in ids]
        if ids and all(found):
            return np.array([f.group(1) for f in found], dtype=object)
    return None
