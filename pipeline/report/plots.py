"""PNG plots of the report, rendered offline with matplotlib's Agg backend (deterministic file bytes)."""

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


def retrieval_bars(metrics: dict[str, dict], path: Path, cfg: ReportConfig) -> Path:
    """Grouped bars: the headline metric per ordered pair (unpaired first), one bar per method."""
    plt = _pyplot()
    names, pairs = method_order(metrics, cfg.baseline), pair_order(metrics)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(pairs) + 2), 4))
    width = 0.8 / len(names)
    x = np.arange(len(pairs))
    for i, n in enumerate(names):
        ys = [value(metrics[n], "retrieval", k, cfg.headline) for k, _ in pairs]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, [np.nan if y is None else y for y in ys], width, label=n)
    ax.set_xticks(x, [k.replace("->", "→") + ("" if p else "\n(unpaired)") for k, p in pairs], fontsize=8)
    ax.set_ylabel(f"{cfg.headline} (test)")
    ax.set_ylim(0, 1.2)
    ax.set_title(f"Retrieval {cfg.headline} per modality pair")
    ax.legend(fontsize=7, ncol=min(5, len(names)), loc="upper center")
    fig.tight_layout()
    return _save(fig, path)


def gap_scatter(metrics: dict[str, dict], path: Path, cfg: ReportConfig) -> Path | None:
    """Centroid gap of each unpaired pair against its retrieval (mean of both directions), per method."""
    plt = _pyplot()
    unpaired = [k for k, p in pair_order(metrics, "gap") if not p]
    if not unpaired:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for n in method_order(metrics, cfg.baseline):
        xs, ys = [], []
        for k in unpaired:
            a, b = k.split("|")
            r = [value(metrics[n], "retrieval", f"{s}->{t}", cfg.headline) for s, t in ((a, b), (b, a))]
            g = value(metrics[n], "gap", k, "centroid_gap")
            if g is not None and all(v is not None for v in r):
                xs.append(g)
                ys.append(float(np.mean(r)))
        ax.scatter(xs, ys, label=n, s=30)
    ax.set_xlabel("centroid gap ||mu_a - mu_b|| (test)")
    ax.set_ylabel(f"emergent retrieval {cfg.headline} (mean of both directions)")
    ax.set_title("Modality gap vs. retrieval on unpaired pairs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def sweep_lines(sweep: dict[int, dict[str, dict]], path: Path, cfg: ReportConfig) -> Path | None:
    """Mean unpaired headline metric against pairs_per_class (0 = all, drawn last), one line per method."""
    if not sweep:
        return None
    plt = _pyplot()
    order = sweep_order(sweep)
    names = method_order({n for ms in sweep.values() for n in ms}, cfg.baseline)
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(order))
    for n in names:
        ys = [headline_means(sweep[p][n], pair_order(sweep[p]), cfg.headline)["unpaired"] if n in sweep[p] else None
              for p in order]
        ax.plot(x, [np.nan if y is None else y for y in ys], marker="o", label=n)
    ax.set_xticks(x, ["all" if p == 0 else str(p) for p in order])
    ax.set_xlabel("paired train rows per class (pairs_per_class)")
    ax.set_ylabel(f"mean unpaired {cfg.headline}")
    ax.set_title("Sparse pairing sweep")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def render_plots(metrics: dict[str, dict], sweep: dict[int, dict[str, dict]], out_dir: str | Path,
                 cfg: ReportConfig) -> list[Path]:
    """Write retrieval.png, gap_vs_retrieval.png and (with a sweep) sweep.png; return their paths."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    paths = [
        retrieval_bars(metrics, out_dir / "retrieval.png", cfg),
        gap_scatter(metrics, out_dir / "gap_vs_retrieval.png", cfg),
        sweep_lines(sweep, out_dir / "sweep.png", cfg),
    ]
    plt.close("all")
    return [p for p in paths if p is not None]
