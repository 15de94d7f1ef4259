"""One CLI: --seed/--device/--tables spelled the same on every command that uses them, -q/-v everywhere,
--json for validate and evaluate."""

import json

import pytest
from click.testing import CliRunner
from embridge.stages.cli import COMMANDS, cli
from embridge.stages.options import TABLES_DEFAULT


def _options(name):
    cmd = cli.get_command(None, name)
    return {o: p for p in cmd.params for o in p.opts + p.secondary_opts}


@pytest.mark.parametrize("name", ["prepare", "bind", "fit", "evaluate", "sweep", "synth", "import"])
def test_seed_everywhere(name):
    assert "--seed" in _options(name)


@pytest.mark.parametrize("name", ["bind", "fit", "evaluate", "sweep"])
def test_device_everywhere(name):
    opt = _options(name)["--device"]
    assert list(opt.type.choices) == ["auto", "cpu", "cuda"]


def test_tables_same_default_everywhere():
    having = [n for n in COMMANDS if "--tables" in _options(n)]
    assert set(having) >= {"fit", "evaluate"}
    assert {_options(n)["--tables"].default for n in having} == {TABLES_DEFAULT}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_quiet_and_verbose_everywhere(name):
    opts = _options(name)
    assert {"-q", "--quiet", "-v", "--verbose"} <= set(opts)


@pytest.fixture()
def tables(tmp_path):
    res = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "t"), "--n", "120", "--dim", "8",
                                   "--latent-dim", "4", "--seed", "3"])
    assert res.exit_code == 0, res.output
    return tmp_path / "t"


def test_validate_json_and_quiet(tables):
    res = CliRunner().invoke(cli, ["validate", "--json", str(tables)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ok"] and sorted(t["modality"] for t in out["tables"]) == ["audio", "image", "text"]
    assert {t["rows"] for t in out["tables"]} == {120} and {t["dim"] for t in out["tables"]} == {8}
    shard = tables / "audio" / "part-00000.parquet"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated: refused, the others still reported
    res = CliRunner().invoke(cli, ["validate", "--json", str(tables)])
    out = json.loads(res.output)
    assert res.exit_code == 1 and not out["ok"]
    bad = [t for t in out["tables"] if not t["ok"]]
    assert len(bad) == 1 and "part-00000.parquet" in bad[0]["error"] and bad[0]["table"].endswith("audio")
    assert sum(t["ok"] for t in out["tables"]) == 2
    (tables / "audio").rename(tables.parent / "audio_bad")
    res = CliRunner().invoke(cli, ["validate", "-q", str(tables)])
    assert res.exit_code == 0 and res.output == ""
    res = CliRunner().invoke(cli, ["validate", str(tables)])
    assert res.output.count("ok  ") == 2  # -q of the previous call does not leak


def test_evaluate_json_summary_and_dvc_metrics(tables, tmp_path):
    out, dvc = tmp_path / "m" / "raw.json", tmp_path / "m" / "dvc" / "raw.json"
    res = CliRunner().invoke(cli, ["evaluate", "--tables", str(tables), "--method", "raw", "--anchor", "text",
                                   "--pairs", "image-text,audio-text", "--out", str(out), "--dvc-metrics", str(dvc),
                                   "--dvc-plot", str(tmp_path / "m" / "dvc" / "raw.pairs.csv"),
                                   "--seed", "1", "--device", "cpu", "--json", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    full = json.loads(out.read_text())
    assert set(summary["unpaired"]) == {"audio->image", "image->audio"}
    assert summary["unpaired"]["audio->image"] == full["retrieval"]["audio->image"]["R@1"]
    want = round((full["retrieval"]["audio->image"]["R@1"] + full["retrieval"]["image->audio"]["R@1"]) / 2, 4)
    assert json.loads(dvc.read_text()) == summary["headline"] == {"unpaired": {"R@1": want}}
    assert full["config"]["seed"] == 1
    rows = (tmp_path / "m" / "dvc" / "raw.pairs.csv").read_text().splitlines()
    assert rows[0] == "pair,R@1" and len(rows) == 1 + len(full["retrieval"])
    assert rows[1] == f"audio->image (unpaired),{full['retrieval']['audio->image']['R@1']:.6g}"
    assert rows[3].startswith("audio->text,")  # unpaired first, then paired


def test_verbose_shows_every_pair(tables, tmp_path):
    out = tmp_path / "m" / "raw.json"
    args = ["evaluate", "--tables", str(tables), "--method", "raw", "--anchor", "text", "--pairs", "image-text",
            "--out", str(out)]
    plain = CliRunner().invoke(cli, args)
    loud = CliRunner().invoke(cli, [*args, "-v"])
    assert plain.exit_code == 0 and loud.exit_code == 0, loud.output
    full = json.loads(out.read_text())
    for pair, r in full["retrieval"].items():
        line = next(ln for ln in loud.output.splitlines() if ln.strip().startswith(f"{pair} ("))
        assert f"R@1={r['R@1']}" in line and f"{pair} (" not in plain.output
