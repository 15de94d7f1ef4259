"""The report: every metrics/<method>.json gathered into reports/summary.md, summary.json and plots.

tables (load and order the metrics) -> markdown (summary.md, summary.json) and plots (PNG).
"""

from __future__ import annotations

import json
from pathlib import Path

from embridge.files import atomic_write_bytes
from embridge.report.markdown import render_markdown, summary, sweep_table
from embridge.report.tables import ReportConfig, load_metrics, load_sweep, read_metrics

__all__ = ["ReportConfig", "build_report", "load_metrics", "load_sweep", "read_metrics", "render_markdown", "summary"]


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
        from embridge.report.plots import render_plots

        written += render_plots(metrics, sweep, out_dir / "plots", cfg)
    return written
