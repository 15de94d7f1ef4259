"""The report: unpaired pairs first, changes against raw, best per column in bold, plots, sweep layout."""

import json

import pytest
from embridge.errors import ConfigError, InputError
from embridge.evaluation.runner import write_metrics
from embridge.report import ReportConfig, build_report, load_metrics, load_sweep

PAIRS = {"audio->image": False, "image->audio": False, "audio->text": True, "text->audio": True}


def fake(method, r1):
    """A metrics dict in the `embridge evaluate` schema; unpaired R@1 = r1, paired R@1 = 0.9."""
    retrieval = {}
    for key, paired in PAIRS.items():
        v = 0.9 if paired else r1
        retrieval[key] = {"paired": paired, "R@1": v, "R@5": min(1.0, v + 0.05), "R@10": min(1.0, v + 0.1),
                          "MRR": v, "mAP": v / 2, "queries": 10, "gallery": 10}
    zeroshot = {"audio": {"image": {"top1": r1, "top5": 1.0}, "text": {"top1": 0.8, "top5": 1.0}},
                "image": {"audio": {"top1": r1, "top5": 1.0}}}
    gap = {"audio|image": {"paired": False, "pairs": "instance", "centroid_gap": 1 - r1, "effective_dim_a": 12,
                           "effective_dim_b": 11, "mutual_knn": 0.5, "mutual_knn_shuffled": 0.1},
           "audio|text": {"paired": True, "pairs": "instance", "centroid_gap": 0.2, "effective_dim_a": 12,
                          "effective_dim_b": 10, "mutual_knn": 0.6, "mutual_knn_shuffled": 0.1}}
    return {"method": method, "retrieval": retrieval, "zeroshot": zeroshot, "gap": gap}


@pytest.fixture
def metrics_dir(tmp_path):
    d = tmp_path / "metrics"
    for name, r1 in (("raw", 0.2), ("procrustes", 0.6), ("collapse", 0.3)):
        write_metrics(fake(name, r1), d / f"{name}.json")
    for ppc, r1 in ((0, 0.7), (5, 0.4), (20, 0.5)):
        write_metrics(fake("procrustes", r1), d / "sweep" / str(ppc) / "procrustes.json")
        write_metrics(fake("raw", 0.2), d / "sweep" / str(ppc) / "raw.json")
    return d


def test_summary_markdown(metrics_dir, tmp_path):
    out = tmp_path / "reports"
    written = build_report(metrics_dir, out)
    md = (out / "summary.md").read_text()
    head = md.split("## Retrieval R@1, every pair")[1].split("##")[0]
    header = head.strip().splitlines()[0]
    # unpaired pairs first, then paired
    assert header.index("audio->image (unpaired)") < header.index("image->audio (unpaired)") < header.index("audio->text (paired)")
    rows = {line.split("|")[1].strip(): line for line in head.strip().splitlines()[2:]}
    assert list(rows) == ["raw", "collapse", "procrustes"]  # baseline first
    assert "| raw | 0.200 | 0.200 |" in rows["raw"] and "(+" not in rows["raw"]
    assert "**0.600** (+0.400)" in rows["procrustes"]
    assert "0.300 (+0.100)" in rows["collapse"] and "**0.300" not in rows["collapse"]
    # paired columns and their mean: everyone ties at 0.9 and all are bold
    assert rows["raw"].count("**0.900**") == 3
    assert md.index("### audio → image (unpaired)") < md.index("### audio → text (paired)")
    assert "## Zero-shot classification top1" in md and "audio vs image (unpaired)" in md
    gap = md.split("## Gap diagnostics")[1]
    assert "### audio|image (unpaired; instance pairs)" in gap and "**" not in gap.split("## pairs_per_class")[0]
    assert "| raw | 0.800 | 12 | 11 | 0.500 | 0.100 |" in gap
    sweep = md.split("## pairs_per_class sweep")[1]
    assert "| method | 5 | 20 | all |" in sweep and "| procrustes | **0.400** | **0.500** | **0.700** |" in sweep
    assert {p.name for p in written} >= {"summary.md", "summary.json", "retrieval.png", "gap_vs_retrieval.png", "sweep.png"}
    for name in ("retrieval.png", "gap_vs_retrieval.png", "sweep.png"):
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_json_and_determinism(metrics_dir, tmp_path):
    build_report(metrics_dir, tmp_path / "r1")
    build_report(metrics_dir, tmp_path / "r2")
    for name in ("summary.md", "summary.json", "plots/retrieval.png", "plots/sweep.png"):
        assert (tmp_path / "r1" / name).read_bytes() == (tmp_path / "r2" / name).read_bytes(), name
    s = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert s["methods"]["procrustes"]["unpaired"]["R@1"] == pytest.approx(0.6)
    assert s["methods"]["procrustes"]["paired"]["mAP"] == pytest.approx(0.45)
    assert s["sweep"] == {"5": {"raw": 0.2, "procrustes": 0.4}, "20": {"raw": 0.2, "procrustes": 0.5},
                          "0": {"raw": 0.2, "procrustes": 0.7}}


def test_without_baseline_or_sweep(tmp_path):
    d = tmp_path / "m"
    write_metrics(fake("procrustes", 0.6), d / "procrustes.json")
    build_report(d, tmp_path / "out", ReportConfig(plots=False))
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "no `raw` metrics" in md and "(+" not in md and "sweep" not in md
    assert not (tmp_path / "out" / "plots").exists()
    assert load_sweep(d) == {}


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        load_metrics(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no metrics JSON"):
        load_metrics(tmp_path / "empty")
    d = tmp_path / "bad"
    d.mkdir()
    (d / "x.json").write_text("{not json")
    with pytest.raises(InputError, match=r"x.json: not valid JSON"):
        load_metrics(d)
    (d / "x.json").write_text(json.dumps({"method": "x", "retrieval": {}}))
    with pytest.raises(InputError, match=r"missing key\(s\) \['zeroshot', 'gap'\]"):
        load_metrics(d)
    write_metrics(fake("raw", 0.1), d / "x.json")
    write_metrics(fake("raw", 0.1), d / "y.json")
    with pytest.raises(InputError, match="already read from"):
        load_metrics(d)
    (d / "y.json").unlink()
    (d / "sweep" / "many").mkdir(parents=True)
    with pytest.raises(InputError, match="named by pairs_per_class"):
        load_sweep(d)
    with pytest.raises(ConfigError, match="headline"):
        build_report(d, tmp_path / "o", ReportConfig(headline="F1"))
