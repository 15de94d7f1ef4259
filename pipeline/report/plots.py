"""PNG plots of the report, rendered offline with matplotlib's Agg backend (deterministic file bytes),
and sweep.csv, the sweep as data for `dvc plots` (dvc.yaml's top-level `plots:`).

Error bars come from the seed spread where the metrics carry it (the seed loop adds, per retrieval
pair, `ci: {metric: [lo, hi]}` and/or `seed_std: {metric: std}`; `<metric>_ci` / `<metric>_seed_std`
are read too); without it the plots have no bars. Titles give the query counts behind each value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from embridge.report.tables import (
    ReportConfig,
    headline_means,
    method_order,
    pair_order,
    sweep_order,
    value,
)

PNG_META = {"Software": None}  # no version string in the file: reruns give identical bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata=PNG_META)
    fig.clf()
    return path


def spread(entry: dict | None, metric: str) -> tuple[float, float] | None:
    """(below, above) error-bar lengths of `metric` in one retrieval entry: its interval `ci` when present,
    else +-`seed_std`; None when the entry carries neither."""
    if not isinstance(entry, dict) or value(entry, metric) is None:
        return None
    v = float(entry[metric])
    ci = entry.get("ci", {}).get(metric) if isinstance(entry.get("ci"), dict) else entry.get(f"{metric}_ci")
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(c, int | float) for c in ci):
        return max(v - float(ci[0]), 0.0), max(float(ci[1]) - v, 0.0)
    std = entry.get("seed_std", {}).get(metric) if isinstance(entry.get("seed_std"), dict) else entry.get(f"{metric}_seed_std")
    if isinstance(std, int | float) and not isinstance(std, bool):
        return float(std), float(std)
    return None


def mean_spread(entries: list[dict | None], metric: str) -> tuple[float, float] | None:
    """Error bar of a mean over pairs: the mean of the pairs' bar lengths (None unless every pair has one)."""
    bars = [spread(e, metric) for e in entries]
    if not bars or any(b is None for b in bars):
        return None
    return float(np.mean([b[0] for b in bars])), float(np.mean([b[1] for b in bars]))


def _yerr(bars: list[tuple[float, float] | None]):
    """matplotlib's yerr (2, n) from per-point bars, or None when no point has one (missing ones as 0)."""
    if all(b is None for b in bars):
        return None
    return np.array([[0.0, 0.0] if b is None else b for b in bars]).T


def query_counts(metrics: dict[str, dict], pairs: list[str] | None = None) -> str:
    """'600 queries' or '600-1000 queries' over the retrieval pairs (all, or `pairs`) of every method."""
    qs = sorted({int(r["queries"]) for m in metrics.values() for k, r in m["retrieval"].items()
                 if (pairs is None or k in pairs) and isinstance(r.get("queries"), int)})
    if not qs:
        return ""
    return f"{qs[0]} queries" if len(qs) == 1 else f"{qs[0]}-{qs[-1]} queries"


def retrieval_bars(metrics: dict[str, dict], path: Path, cfg: ReportConfig) -> Path:
    """Grouped bars: the headline metric per ordered pair (unpaired first), one bar per method."""
    plt = _pyplot()
    names, pairs = method_order(metrics, cfg.baseline), pair_order(metrics)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(pairs) + 2), 4))
    width = 0.8 / len(names)
    x = np.arange(len(pairs))
    for i, n in enumerate(names):
        ys = [value(metrics[n], "retrieval", k, cfg.headline) for k, _ in pairs]
        yerr = _yerr([spread(metrics[n]["retrieval"].get(k), cfg.headline) for k, _ in pairs])
        ax.bar(x + (i - (len(names) - 1) / 2) * width, [np.nan if y is None else y for y in ys], width, label=n,
               yerr=yerr, capsize=1.5, error_kw={"elinewidth": 0.6})
    ax.set_xticks(x, [k.replace("->", "→") + ("" if p else "\n(unpaired)") for k, p in pairs], fontsize=8)
    ax.set_ylabel(f"{cfg.headline} (test)")
    ax.set_ylim(0, 1.2)
    counts = query_counts(metrics)
    ax.set_title(f"Retrieval {cfg.headline} per modality pair" + (f" (test, {counts} per pair)" if counts else ""),
                 fontsize=10)
    ax.legend(fontsize=7, ncol=min(5, len(names)), loc="upper center")
    fig.tight_layout()
    return _save(fig, path)


MARKERS = "osD^vP*Xh<>p"


def gap_points(metrics: dict[str, dict], cfg: ReportConfig) -> list[dict]:
    """One point per (method, unpaired pair): centroid gap, the headline retrieval averaged over both
    directions, its error bar (mean of the two directions' bars, or None) and the query count."""
    points = []
    for n in method_order(metrics, cfg.baseline):
        for k in [k for k, p in pair_order(metrics, "gap") if not p]:
            a, b = k.split("|")
            entries = [metrics[n]["retrieval"].get(f"{s}->{t}") for s, t in ((a, b), (b, a))]
            r = [value(e, cfg.headline) for e in entries]
            g = value(metrics[n], "gap", k, "centroid_gap")
            if g is None or any(v is None for v in r):
                continue
            points.append({"method": n, "pair": k, "gap": float(g), "y": float(np.mean(r)),
                           "bar": mean_spread(entries, cfg.headline),
                           "queries": sum(int(e.get("queries", 0)) for e in entries)})
    return points


def gap_scatter(metrics: dict[str, dict], path: Path, cfg: ReportConfig) -> Path | None:
    """Centroid gap of each unpaired pair against its retrieval (mean of both directions), per method.

    The y-axis spans 0..1 (a narrow automatic range made differences of 0.01 look large); every point
    is labelled, and methods whose points coincide (to 3 decimals) share one marker and one label.
    """
    points = gap_points(metrics, cfg)
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((p["pair"], round(p["gap"], 3), round(p["y"], 3)), []).append(p)
    pairs = sorted({p["pair"] for p in points})
    by_x = sorted(groups, key=lambda key: key[1])  # labels of neighbours along x alternate above and below
    for i, ((pair, _, _), members) in enumerate(sorted(groups.items(), key=lambda kv: (kv[0][0], -kv[0][2]))):
        first = members[0]
        yerr = None if first["bar"] is None else np.array([[first["bar"][0]], [first["bar"][1]]])
        ax.errorbar([first["gap"]], [first["y"]], yerr=yerr, fmt=MARKERS[pairs.index(pair) % len(MARKERS)],
                    ms=6, capsize=2, color=f"C{i % 10}", elinewidth=0.8)
        label = ", ".join(m["method"] for m in members) + ("" if len(pairs) == 1 else f" ({pair})")
        dy = (0, 14, -14, 28, -28)[by_x.index((pair, round(first["gap"], 3), round(first["y"], 3))) % 5]
        ax.annotate(label, (first["gap"], first["y"]), xytext=(6, dy), textcoords="offset points", fontsize=7,
                    va="center", arrowprops=None if dy == 0 else {"arrowstyle": "-", "lw": 0.4, "color": "0.5"})
    xs = [p["gap"] for p in points]
    pad = max(0.05, 0.15 * (max(xs) - min(xs)))
    ax.set_xlim(max(0.0, min(xs) - pad), max(xs) + 4 * pad)  # room for the labels on the right
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("centroid gap ||mu_a - mu_b|| (test)")
    ax.set_ylabel(f"emergent retrieval {cfg.headline} (mean of both directions)")
    queries = sorted({p["queries"] for p in points})
    ax.set_title(f"Modality gap vs. retrieval, unpaired {', '.join(pairs)} "
                 f"({'/'.join(map(str, queries))} queries, both directions)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def sweep_points(sweep: dict[int, dict[str, dict]], cfg: ReportConfig) -> dict[str, list]:
    """{method: [(pairs_per_class, mean unpaired headline, bar or None)]} in sweep order (0 = all, last)."""
    out: dict[str, list] = {}
    names = method_order({n for ms in sweep.values() for n in ms}, cfg.baseline)
    for n in names:
        for ppc in sweep_order(sweep):
            if n not in sweep[ppc]:
                continue
            pairs = pair_order(sweep[ppc])
            y = headline_means(sweep[ppc][n], pairs, cfg.headline)["unpaired"]
            entries = [sweep[ppc][n]["retrieval"].get(k) for k, p in pairs if not p]
            out.setdefault(n, []).append((ppc, y, mean_spread(entries, cfg.headline)))
    return out


def sweep_csv(sweep: dict[int, dict[str, dict]], path: Path, cfg: ReportConfig) -> Path | None:
    """The sweep for `dvc plots`: `pairs_per_class,<method>,...` with the mean unpaired headline, one row
    per pairs_per_class > 0 (the all-pairs point, 0, has no place on a numeric axis; it is in sweep.png)."""
    if not sweep:
        return None
    pts = sweep_points(sweep, cfg)
    names = list(pts)
    rows = [f"pairs_per_class,{','.join(names)}"]
    for ppc in [p for p in sweep_order(sweep) if p > 0]:
        vals = {n: y for n in names for q, y, _ in pts[n] if q == ppc}
        rows.append(f"{ppc}," + ",".join("" if vals.get(n) is None else f"{vals[n]:.6g}" for n in names))
    from embridge.files import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, ("\n".join(rows) + "\n").encode())
    return path


def sweep_lines(sweep: dict[int, dict[str, dict]], path: Path, cfg: ReportConfig) -> Path | None:
    """Mean unpaired headline metric against pairs_per_class (0 = all, drawn last), one line per method,
    with the seed spread as error bars where the metrics carry it."""
    if not sweep:
        return None
    plt = _pyplot()
    order = sweep_order(sweep)
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(order))
    for n, pts in sweep_points(sweep, cfg).items():
        by = {q: (y, bar) for q, y, bar in pts}
        ys = [np.nan if by.get(p, (None,))[0] is None else by[p][0] for p in order]
        ax.errorbar(x, ys, yerr=_yerr([by.get(p, (None, None))[1] for p in order]), marker="o", capsize=2,
                    label=n)
    ax.set_xticks(x, ["all" if p == 0 else str(p) for p in order])
    ax.set_xlabel("paired train rows per class (pairs_per_class)")
    ax.set_ylabel(f"mean unpaired {cfg.headline}")
    counts = query_counts({f"{p}/{n}": m for p, ms in sweep.items() for n, m in ms.items()},
                          [k for ms in sweep.values() for k, p in pair_order(ms) if not p])
    ax.set_title("Sparse pairing sweep" + (f" (test, {counts} per unpaired pair)" if counts else ""), fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def render_plots(metrics: dict[str, dict], sweep: dict[int, dict[str, dict]], out_dir: str | Path,
                 cfg: ReportConfig) -> list[Path]:
    """Write retrieval.png, gap_vs_retrieval.png and (with a sweep) sweep.png and sweep.csv; return their paths."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    paths = [
        retrieval_bars(metrics, out_dir / "retrieval.png", cfg),
        gap_scatter(metrics, out_dir / "gap_vs_retrieval.png", cfg),
        sweep_lines(sweep, out_dir / "sweep.png", cfg),
        sweep_csv(sweep, out_dir / "sweep.csv", cfg),
    ]
    plt.close("all")
    return [p for p in paths if p is not None]
