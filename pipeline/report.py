"""The report: every metrics/<method>.json gathered into reports/summary.md, summary.json and plots.

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
from embridge.store import atomic_write_bytes

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


def table(rows: list[str], columns: list[str], cells: dict[tuple[str, str], float | None],
          base: dict[str, float | None] | None, decimals: int, base_name: str | None = None,
          bold: bool = True) -> str:
    """Markdown table; each cell 'value (+delta vs base)' (not on the base row), the highest per column in bold."""
    lines = ["| method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    best = {}
    for c in columns:
        vals = [cells.get((r, c)) for r in rows]
        vals = [round(v, decimals) for v in vals if v is not None]
        best[c] = max(vals) if vals and bold else None
    for r in rows:
        out = []
        for c in columns:
            v = cells.get((r, c))
            if v is None:
                out.append("–")
                continue
            s = str(v) if isinstance(v, int) else f"{v:.{decimals}f}"
            if best[c] is not None and round(v, decimals) == best[c] and len(rows) > 1:
                s = f"**{s}**"
            b = None if base is None else base.get(c)
            if b is not None and r != base_name:
                s += f" ({v - b:+.{decimals}f})"
            out.append(s)
        lines.append(f"| {r} | " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(metrics: dict[str, dict], cfg: ReportConfig) -> str:
    names = method_order(metrics, cfg.baseline)
    base = metrics.get(cfg.baseline)
    pairs = pair_order(metrics)
    keys = metric_keys(metrics)
    d, h = cfg.decimals, cfg.headline
    tag = {True: "paired", False: "unpaired"}
    parts = ["# embridge summary\n",
             f"Methods: {', '.join(names)}. Cells: value on the test split "
             + (f"(change against `{cfg.baseline}`); " if base else f"(no `{cfg.baseline}` metrics: no changes shown); ")
             + "best per column in **bold**. Unpaired pairs (never used in fitting) come first.\n"]

    cols = [f"{k} ({tag[p]})" for k, p in pairs] + ["mean unpaired", "mean paired"]
    cells = {}
    for n in names:
        for k, p in pairs:
            cells[(n, f"{k} ({tag[p]})")] = value(metrics[n], "retrieval", k, h)
        means = headline_means(metrics[n], pairs, h)
        cells[(n, "mean unpaired")], cells[(n, "mean paired")] = means["unpaired"], means["paired"]
    base_row = {c: cells.get((cfg.baseline, c)) for c in cols} if base else None
    parts += [f"## Retrieval {h}, every pair\n", table(names, cols, cells, base_row, d, cfg.baseline)]

    parts.append("## Retrieval by pair\n")
    for k, p in pairs:
        cells = {(n, c): value(metrics[n], "retrieval", k, c) for n in names for c in keys}
        base_row = {c: value(base, "retrieval", k, c) for c in keys} if base else None
        parts += [f"### {k.replace('->', ' → ')} ({tag[p]})\n", table(names, keys, cells, base_row, d, cfg.baseline)]

    zs = sorted({(m, o) for x in metrics.values() for m, inner in x["zeroshot"].items() for o in (inner or {})},
                key=lambda mo: (dict(pairs).get(f"{mo[0]}->{mo[1]}", True), mo))
    top_keys = sorted({t for x in metrics.values() for inner in x["zeroshot"].values() for acc in (inner or {}).values()
                       for t in (acc or {})}, key=lambda t: int(t[3:]))
    for t in top_keys:
        cols = [f"{m} vs {o}" + ("" if dict(pairs).get(f"{m}->{o}", True) else " (unpaired)") for m, o in zs]
        cells = {(n, c): value(metrics[n], "zeroshot", m, o, t) for n in names for c, (m, o) in zip(cols, zs, strict=True)}
        base_row = {c: value(base, "zeroshot", m, o, t) for c, (m, o) in zip(cols, zs, strict=True)} if base else None
        parts += [f"## Zero-shot classification {t} (test rows of the first modality against class prototypes of the second)\n",
                  table(names, cols, cells, base_row, d, cfg.baseline)]

    parts.append("## Gap diagnostics (test split; no best marked, no changes shown)\n")
    gcols = [c for c in GAP_COLUMNS if any(value(x, "gap", k, c) is not None for x in metrics.values() for k in x["gap"])]
    for k, p in pair_order(metrics, "gap"):
        kinds = {x["gap"].get(k, {}).get("pairs") for x in metrics.values()} - {None}
        cells = {(n, c): value(metrics[n], "gap", k, c) for n in names for c in gcols}
        lines = table(names, gcols, cells, None, d, bold=False)
        parts += [f"### {k} ({tag[p]}; {'/'.join(sorted(kinds)) or '?'} pairs)\n", lines]
    return "\n".join(parts)


def summary(metrics: dict[str, dict], sweep: dict[int, dict[str, dict]], cfg: ReportConfig) -> dict:
    """Machine-readable summary (for `dvc metrics`): per method, mean retrieval over unpaired / paired pairs."""
    pairs = pair_order(metrics)
    keys = metric_keys(metrics)
    out: dict = {"baseline": cfg.baseline, "headline": cfg.headline, "methods": {}, "sweep": {}}
    for n in method_order(metrics, cfg.baseline):
        entry = {}
        for group, flag in (("unpaired", False), ("paired", True)):
            entry[group] = {k: mean_or_none(value(metrics[n], "retrieval", pk, k) for pk, p in pairs if p == flag) for k in keys}
        out["methods"][n] = entry
    for ppc in sweep_order(sweep):
        ms = sweep[ppc]
        sp = pair_order(ms)
        out["sweep"][str(ppc)] = {n: headline_means(ms[n], sp, cfg.headline)["unpaired"] for n in method_order(ms, cfg.baseline)}
    return out


def build_report(metrics_dir: str | Path, out_dir: str | Path, cfg: ReportConfig | None = None) -> list[Path]:
    """Write out_dir/summary.md, out_dir/summary.json and (cfg.plots) out_dir/plots/*.png. Returns the paths."""
    cfg = cfg or ReportConfig()
    cfg.check()
    metrics = load_metrics(metrics_dir)
    sweep = load_sweep(metrics_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = render_markdown(metrics, cfg)
    if sweep:
        md += "\n## pairs_per_class sweep (mean unpaired " + cfg.headline + ")\n\n"
        md += sweep_table(sweep, cfg)
    written = [out_dir / "summary.md", out_dir / "summary.json"]
    atomic_write_bytes(written[0], md.encode())
    atomic_write_bytes(written[1], (json.dumps(summary(metrics, sweep, cfg), indent=2, sort_keys=True) + "\n").encode())
    if cfg.plots:
        from embridge.plots import render_plots

        written += render_plots(metrics, sweep, out_dir / "plots", cfg)
    return written


def sweep_table(sweep: dict[int, dict[str, dict]], cfg: ReportConfig) -> str:
    names = method_order({n for ms in sweep.values() for n in ms}, cfg.baseline)
    order = sweep_order(sweep)
    cols = [("all" if p == 0 else str(p)) for p in order]
    cells = {}
    for p, c in zip(order, cols, strict=True):
        for n in names:
            if n in sweep[p]:
                cells[(n, c)] = headline_means(sweep[p][n], pair_order(sweep[p]), cfg.headline)["unpaired"]
    return table(names, cols, cells, None, cfg.decimals)
