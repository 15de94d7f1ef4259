"""The few numbers DVC shows as metrics: one short file per method beside the full metrics/<method>.json.

`dvc metrics show`, `dvc metrics diff` and `dvc exp show` read every key of every metrics file as a column.
The full `metrics/<method>.json` (design section 6: the evaluation config, per-pair bookkeeping, zero-shot
and gap sections, and what the seed loop adds) stays the contract of the report and the library, declared
to DVC as a plain output; DVC reads only this file, `metrics/dvc/<method>.json`:

    {"unpaired": {"R@1": 0.6123}}

the headline: the mean over the unpaired ordered modality pairs (those never used in fitting) of the
headline metric, or, when a run has no unpaired pair, the mean over the paired ones ({"paired": {...}}).
Every method's file holds the same key, so `dvc metrics show` prints one short line per method and
`dvc exp show --only-changed` one column per changed method (its path before the key), and after one
`-S` change the table fits in 120 columns. The per-pair values are a DVC plot beside it,
`metrics/dvc/<method>.pairs.csv` (pair, headline metric; unpaired pairs first, marked), which
`dvc plots diff` draws as bars per revision.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from embridge.errors import InputError
from embridge.files import atomic_write_bytes

HEADLINE = "R@1"  # the metric DVC shows (the report's default headline)


def headline(metrics: dict, metric: str = HEADLINE, decimals: int = 4) -> dict[str, dict[str, float]]:
    """{"unpaired": {metric: mean}} over the unpaired pairs of `metrics["retrieval"]` ("paired" when there
    are none), rounded to `decimals`. Raises InputError when no pair carries `metric`."""
    retrieval = metrics.get("retrieval") if isinstance(metrics, dict) else None
    if not isinstance(retrieval, dict) or not retrieval:
        raise InputError(f"metrics of {metrics.get('method', '?') if isinstance(metrics, dict) else '?'}: "
                         "no 'retrieval' section; expected the output of `embridge evaluate`")
    groups: dict[str, list[float]] = {"unpaired": [], "paired": []}
    for _, r in sorted(retrieval.items()):
        v = r.get(metric) if isinstance(r, dict) else None
        if isinstance(v, int | float) and not isinstance(v, bool):
            groups["paired" if r.get("paired") else "unpaired"].append(float(v))
    group = "unpaired" if groups["unpaired"] else "paired"
    if not groups[group]:
        raise InputError(f"metrics of {metrics.get('method', '?')}: no retrieval pair has {metric!r}; "
                         f"keys: {sorted({k for r in retrieval.values() for k in r})}")
    return {group: {metric: round(float(np.mean(groups[group])), decimals)}}


def pair_rows(metrics: dict, metric: str = HEADLINE) -> list[tuple[str, float]]:
    """[(pair label, value)] for every retrieval pair carrying `metric`: unpaired pairs first (their label
    ends in " (unpaired)"), each group sorted by name."""
    rows = []
    for pair, r in metrics.get("retrieval", {}).items():
        v = r.get(metric) if isinstance(r, dict) else None
        if isinstance(v, int | float) and not isinstance(v, bool):
            rows.append((bool(r.get("paired")), pair, float(v)))
    return [(pair if paired else f"{pair} (unpaired)", v) for paired, pair, v in sorted(rows)]


def write_pair_plot(metrics: dict, path: str | Path, metric: str = HEADLINE) -> Path:
    """CSV `pair,<metric>` (one row per ordered pair, see pair_rows) for a DVC bar plot. Returns the path."""
    rows = pair_rows(metrics, metric)
    if not rows:
        raise InputError(f"metrics of {metrics.get('method', '?')}: no retrieval pair has {metric!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"pair,{metric}\n" + "".join(f"{p},{v:.6g}\n" for p, v in rows)
    atomic_write_bytes(path, text.encode())
    return path


def write_dvc_metrics(metrics: dict, path: str | Path, metric: str = HEADLINE) -> Path:
    """Write headline(metrics) to `path` atomically (parent folders created). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(headline(metrics, metric), indent=2, sort_keys=True) + "\n").encode())
    return path
