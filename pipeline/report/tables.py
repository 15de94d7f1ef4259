"""The report's inputs: metrics/<method>.json (and the sweep) loaded, checked and put in order.

Layout read: `metrics/<method>.json` (one per method, as `embridge evaluate` writes them) and,
optionally, the `pairs_per_class` sweep as `metrics/sweep/<pairs_per_class>/<method>.json`
(an integer folder name; 0 means all pairs). Retrieval tables list the unpaired modality pairs
first; each cell shows the value and its change against the baseline method (`raw`), and the
best value of each column is in bold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from embridge.errors import ConfigError, InputError

SECTIONS = ("retrieval", "zeroshot", "gap")
GAP_COLUMNS = ("centroid_gap", "gap_length", "direction_consistency", "orthogonality", "residual_noise",
               "effective_dim_a", "effective_dim_b", "mutual_knn", "mutual_knn_shuffled")


@dataclass
class ReportConfig:
    """The `report:` section of params.yaml."""

    headline: str = "R@1"  # retrieval metric of the headline table and the plots (R@k, MRR or mAP)
    baseline: str = "raw"  # method every cell is compared against (its change is shown in brackets)
    decimals: int = 3  # decimals shown in summary.md
    plots: bool = True  # render PNG plots into <out>/plots/

    def check(self) -> None:
        if not (self.headline.startswith("R@") or self.headline in ("MRR", "mAP")):
            raise ConfigError(f"headline = {self.headline!r}: expected R@<k>, MRR or mAP")
        if not 0 <= self.decimals <= 6:
            raise ConfigError(f"decimals = {self.decimals}: expected 0..6")


# ----------------------------------------------------------------------------- loading


def read_metrics(path: Path) -> dict:
    """One metrics JSON, checked for the sections the report needs."""
    try:
        data = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    missing = [k for k in ("method", *SECTIONS) if not isinstance(data, dict) or k not in data]
    if missing:
        raise InputError(f"{path}: missing key(s) {missing}; expected the output of `embridge evaluate`")
    for section in SECTIONS:
        entries = data[section]
        if not isinstance(entries, dict) or not all(isinstance(v, dict) for v in entries.values()):
            raise InputError(f"{path}: {section!r} is a {type(entries).__name__} (or holds non-mappings); expected a "
                             f"mapping of pair -> metrics, the output of `embridge evaluate`")
    return data


def load_metrics(metrics_dir: str | Path) -> dict[str, dict]:
    """{method: metrics} from every *.json directly under `metrics_dir` (sorted by file name)."""
    metrics_dir = Path(metrics_dir)
    if not metrics_dir.is_dir():
        raise InputError(f"{metrics_dir}: not a folder of metrics/<method>.json files")
    out: dict[str, dict] = {}
    seen: dict[str, Path] = {}
    for path in sorted(metrics_dir.glob("*.json")):
        data = read_metrics(path)
        name = str(data["method"])
        if name in out:
            raise InputError(f"{path}: method {name!r} was already read from {seen[name]}; expected one file per method")
        out[name], seen[name] = data, path
    if not out:
        raise InputError(f"{metrics_dir}: no metrics JSON files (expected <method>.json from `embridge evaluate`)")
    return out


def load_sweep(metrics_dir: str | Path) -> dict[int, dict[str, dict]]:
    """{pairs_per_class: {method: metrics}} from metrics_dir/sweep/<int>/<method>.json ({} if absent)."""
    root = Path(metrics_dir) / "sweep"
    if not root.is_dir():
        return {}
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        if not d.name.isdigit():
            raise InputError(f"{d}: sweep folders must be named by pairs_per_class (an integer >= 0)")
        if any(d.glob("*.json")):
            out[int(d.name)] = load_metrics(d)
    return out


# ----------------------------------------------------------------------------- ordering and values


def sweep_order(sweep) -> list[int]:
    """pairs_per_class values in increasing order, 0 (all pairs) last."""
    return sorted(p for p in sweep if p > 0) + ([0] if 0 in sweep else [])


def method_order(names, baseline: str) -> list[str]:
    return ([baseline] if baseline in names else []) + sorted(n for n in names if n != baseline)


def pair_order(metrics: dict[str, dict], section: str = "retrieval") -> list[tuple[str, bool]]:
    """Ordered pairs of a section ("retrieval" or "gap") as (key, paired), unpaired first, each group
    sorted by name."""
    flags: dict[str, bool] = {}
    for m in metrics.values():
        for key, r in m[section].items():
            flags.setdefault(key, bool(r.get("paired", False)))
    return sorted(flags.items(), key=lambda kv: (kv[1], kv[0]))


def metric_keys(metrics: dict[str, dict]) -> list[str]:
    """R@k columns in increasing k, then MRR and mAP, as present in the files."""
    keys = {k for m in metrics.values() for r in m["retrieval"].values() for k in r}
    rk = sorted((k for k in keys if k.startswith("R@")), key=lambda k: int(k[2:]))
    return rk + [k for k in ("MRR", "mAP") if k in keys]


def value(m: dict, *path):
    for p in path:
        if not isinstance(m, dict) or p not in m:
            return None
        m = m[p]
    return m if isinstance(m, int | float) and not isinstance(m, bool) else None


def mean_or_none(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def headline_means(m: dict, pairs: list[tuple[str, bool]], metric: str) -> dict[str, float | None]:
    return {
        "unpaired": mean_or_none(value(m, "retrieval", k, metric) for k, p in pairs if not p),
        "paired": mean_or_none(value(m, "retrieval", k, metric) for k, p in pairs if p),
    }


# ----------------------------------------------------------------------------- markdown
