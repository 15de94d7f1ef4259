"""The per-seed layout of the pipeline's artifacts: pairs/<n>/seed-<s>.json, unified/seed-<s>/<modality>,
maps/<method>/seed-<s>/ (one run per training seed; a folder without seed-* entries is one plain run)."""

from __future__ import annotations

import re
from pathlib import Path

from embridge.errors import InputError
from embridge.files import read_json
from embridge.pairing import LabelBudget

SEED_RE = re.compile(r"^seed-(\d+)(\.json)?$")


def seed_name(seed: int) -> str:
    return f"seed-{seed}"


def seed_entries(root: str | Path) -> dict[int, Path]:
    """{seed: path} of the seed-<s> folders or seed-<s>.json files directly under root ({} when none)."""
    root = Path(root)
    if not root.is_dir():
        return {}
    out = {}
    for p in root.iterdir():
        m = SEED_RE.match(p.name)
        if m and (p.is_dir() or m.group(2)):
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def load_budget(path: str | Path) -> LabelBudget:
    """One label budget file (as the `pairs` stage writes it)."""
    return LabelBudget.from_json(read_json(path, "expected a label budget written by `embridge pairs`"), str(path))


def budgets(path: str | Path) -> dict[int, LabelBudget]:
    """{seed: budget} from a budget file or a folder of seed-<s>.json files."""
    path = Path(path)
    if path.is_file():
        b = load_budget(path)
        return {b.seed: b}
    found = {s: load_budget(p) for s, p in seed_entries(path).items() if p.is_file()}
    if not found:
        raise InputError(f"{path}: no label budget (expected seed-<s>.json files written by `embridge pairs`)")
    return found
