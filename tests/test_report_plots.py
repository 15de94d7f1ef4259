"""The report's plots: error bars from the seed spread (when the metrics carry it), query counts in the
titles, a readable gap-vs-retrieval scatter, and sweep.csv for `dvc plots`."""

import copy

import numpy as np
import pytest
from embridge.report import ReportConfig, build_report, load_metrics, load_sweep, plots
from embridge.report.tables import headline_means, pair_order

from tests.test_report import fake, metrics_dir  # noqa: F401  (the fixture)


@pytest.fixture
def figures(monkeypatch):
    """Capture each figure's axes (title, limits, texts, error bars) instead of saving it."""
    seen = {}

    def save(fig, path):
        ax = fig.axes[0]
        seen[path.name] = {
            "title": ax.get_title(), "ylim": ax.get_ylim(),
            "texts": [t.get_text() for t in ax.texts],
            # bars drawn: a BarContainer's .errorbar, an ErrorbarContainer's bar-line collections
            "errorbars": sum(len(c.lines[2]) if type(c).__name__ == "ErrorbarContainer"
                             else int(getattr(c, "errorbar", None) is not None) for c in ax.containers),
        }
        fig.clf()
        return path

    monkeypatch.setattr(plots, "_save", save)
    return seen


def with_spread(m, std=0.05, ci=None):
    m = copy.deepcopy(m)
    for r in m["retrieval"].values():
        r["seed_std"] = {"R@1": std}
        if ci is not None:
            r["ci"] = {"R@1": [r["R@1"] - ci[0], r["R@1"] + ci[1]]}
    return m


def test_spread_reads_ci_then_seed_std_and_none_without():
    e = {"R@1": 0.5, "queries": 10}
    assert plots.spread(e, "R@1") is None
    assert plots.spread({**e, "seed_std": {"R@1": 0.1}}, "R@1") == (0.1, 0.1)
    assert plots.spread({**e, "seed_std": {"R@1": 0.1}, "ci": {"R@1": [0.4, 0.7]}}, "R@1") == pytest.approx((0.1, 0.2))
    assert plots.spread({**e, "R@1_ci": [0.45, 0.5]}, "R@1") == pytest.approx((0.05, 0.0))
    assert plots.mean_spread([{**e, "seed_std": {"R@1": 0.1}}, {**e, "seed_std": {"R@1": 0.3}}], "R@1") == pytest.approx((0.2, 0.2))
    assert plots.mean_spread([{**e, "seed_std": {"R@1": 0.1}}, e], "R@1") is None


def test_error_bars_only_with_a_seed_spread(metrics_dir, figures):  # noqa: F811
    cfg = ReportConfig()
    metrics, sweep = load_metrics(metrics_dir), load_sweep(metrics_dir)
    plots.render_plots(metrics, sweep, metrics_dir / "p", cfg)
    bare = {k: v["errorbars"] for k, v in figures.items()}
    spread_metrics = {n: with_spread(m) for n, m in metrics.items()}
    spread_sweep = {p: {n: with_spread(m) for n, m in ms.items()} for p, ms in sweep.items()}
    plots.render_plots(spread_metrics, spread_sweep, metrics_dir / "p", cfg)
    assert bare == {"retrieval.png": 0, "gap_vs_retrieval.png": 0, "sweep.png": 0}
    assert all(figures[k]["errorbars"] > 0 for k in bare)
    pts = plots.sweep_points(spread_sweep, cfg)
    assert all(bar == pytest.approx((0.05, 0.05)) for q, y, bar in pts["procrustes"])
    assert all(bar is None for q, y, bar in plots.sweep_points(sweep, cfg)["procrustes"])


def test_titles_carry_query_counts(metrics_dir, figures):  # noqa: F811
    plots.render_plots(load_metrics(metrics_dir), load_sweep(metrics_dir), metrics_dir / "p", ReportConfig())
    assert "10 queries" in figures["retrieval.png"]["title"]
    assert "10 queries" in figures["sweep.png"]["title"]
    assert "(20 queries, both directions)" in figures["gap_vs_retrieval.png"]["title"]


def test_gap_scatter_full_axis_and_coincident_methods_share_a_label(tmp_path, figures):
    d = tmp_path / "metrics"
    from embridge.evaluation.runner import write_metrics

    for name, r1 in (("raw", 0.64), ("cca", 0.66), ("linear", 0.66), ("procrustes", 0.67)):
        write_metrics(fake(name, r1), d / f"{name}.json")
    plots.render_plots(load_metrics(d), {}, tmp_path / "p", ReportConfig())
    g = figures["gap_vs_retrieval.png"]
    assert g["ylim"][0] == 0 and g["ylim"][1] >= 1.0  # not 0.633..0.670
    assert sorted(g["texts"]) == ["cca, linear", "procrustes", "raw"]  # cca no longer hides under linear


def test_sweep_csv_for_dvc_plots(metrics_dir, tmp_path):  # noqa: F811
    build_report(metrics_dir, tmp_path / "out", ReportConfig())
    rows = [r.split(",") for r in (tmp_path / "out" / "plots" / "sweep.csv").read_text().splitlines()]
    assert rows[0] == ["pairs_per_class", "raw", "procrustes"]
    assert [r[0] for r in rows[1:]] == ["5", "20"]  # 0 (all pairs) has no place on a numeric axis
    sweep = load_sweep(metrics_dir)
    for r in rows[1:]:
        ms = sweep[int(r[0])]
        for name, v in zip(rows[0][1:], r[1:], strict=True):
            want = headline_means(ms[name], pair_order(ms), "R@1")["unpaired"]
            assert float(v) == pytest.approx(want)
    assert np.isclose(float(rows[2][2]), 0.5)
