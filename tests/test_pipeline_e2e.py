"""End to end with the real `dvc`: a tiny configuration through every stage on the CPU, a second
repro that reruns nothing, `dvc exp run -S` rerunning exactly one method's stages, `dvc metrics
diff`, and sharing artifacts through a local-directory remote."""

from __future__ import annotations

import json
import shutil

import pytest
from embridge.store import MANIFEST

from tests.pipeline_repo import dvc, git, make_repo, run, stage_names, stages_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = make_repo(tmp_path_factory.mktemp("e2e") / "repo")
    res = dvc("repro", cwd=root)
    root.joinpath("first_repro.log").write_text(res.stdout + res.stderr)
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "tiny results", cwd=root)
    return root


def test_repro_runs_every_stage_and_writes_the_outputs(repo):
    ran = stages_run(repo.joinpath("first_repro.log").read_text())
    assert ran == stage_names(repo)  # every stage, on an empty cache
    for m in ("image", "audio", "text"):
        assert (repo / "features" / m / MANIFEST).is_file()
        assert (repo / "unified" / "seed-0" / m / MANIFEST).is_file()  # one bind per seed (seeds: [0])
    assert (repo / "pairs" / "3" / "seed-0.json").is_file()  # the label budget of pairs.pairs_per_class
    assert len(list((repo / "features" / "audio").glob("part-*.parquet"))) >= 2  # rows_per_shard: 32
    for method in ("raw", "procrustes", "emergentbridge"):
        assert (repo / "maps" / method / "seed-0" / "state.safetensors").is_file()
        m = json.loads((repo / "metrics" / f"{method}.json").read_text())
        assert m["method"] == method
        assert m["retrieval"]["audio->image"]["paired"] is False
        assert m["retrieval"]["audio->text"]["paired"] is True
        assert 0 <= m["retrieval"]["audio->image"]["R@1"] <= 1
        assert "centroid_gap" in m["gap"]["audio|image"]
    for n in ("1", "0"):
        assert {p.name for p in (repo / "metrics" / "sweep" / n).glob("*.json")} == {"raw.json", "procrustes.json"}
    summary = (repo / "reports" / "summary.md").read_text()
    assert "audio->image" in summary and "emergentbridge" in summary
    assert list((repo / "reports" / "plots").glob("*.png"))


def test_second_repro_reruns_nothing(repo):
    res = dvc("repro", cwd=repo)
    assert stages_run(res.stdout) == set()
    assert "up to date" in res.stdout.lower() or "didn't change" in res.stdout


def test_sharing_through_a_local_remote(repo, tmp_path):
    """Push, then a collaborator's clone (no cache, no outputs) pulls and reruns nothing."""
    remote = tmp_path / "remote"
    dvc("remote", "add", "-d", "shared", str(remote), cwd=repo)
    git("commit", "-q", "-am", "remote", cwd=repo)
    dvc("push", cwd=repo)
    assert any(remote.rglob("*"))
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "features" / "audio").exists() and not (clone / ".dvc" / "cache").exists()
    dvc("pull", cwd=clone)
    assert (clone / "features" / "audio" / MANIFEST).is_file()
    res = dvc("repro", cwd=clone)
    assert stages_run(res.stdout) == set(), res.stdout
    # deleting the cache and the outputs, then pulling, restores everything as well
    shutil.rmtree(clone / ".dvc" / "cache")
    outs = [clone / "data" / "raw", clone / "unified", *(clone / "features").glob("[!.]*"), *(clone / "maps").glob("[!.]*")]
    for out in outs:  # the cached outputs; the .gitignore files DVC keeps beside them stay (they are in git)
        shutil.rmtree(out)
    dvc("pull", cwd=clone)
    assert stages_run(dvc("repro", cwd=clone).stdout) == set()
    status = dvc("status", cwd=clone).stdout
    assert "up to date" in status.lower(), status


def test_two_full_runs_give_byte_identical_metrics(repo):
    """Same seed, every stage forced to run again: the metrics files do not change by a byte."""
    files = sorted((repo / "metrics").rglob("*.json"))
    before = {p: p.read_bytes() for p in files}
    res = dvc("repro", "--force", cwd=repo)
    assert stages_run(res.stdout) == stage_names(repo)
    assert sorted((repo / "metrics").rglob("*.json")) == files
    for p, content in before.items():
        assert p.read_bytes() == content, p
    assert git("status", "--porcelain", "dvc.lock", cwd=repo).strip() == ""  # same hashes for every output


def test_exp_run_reruns_only_the_changed_method(repo):
    before = json.loads((repo / "metrics" / "emergentbridge.json").read_text())
    res = dvc("exp", "run", "-S", "fit.emergentbridge.lam=0.25", cwd=repo)
    assert stages_run(res.stdout) == {"fit@emergentbridge", "evaluate@emergentbridge", "report"}, res.stdout
    after = json.loads((repo / "metrics" / "emergentbridge.json").read_text())
    assert after != before
    diff = dvc("metrics", "diff", "--json", cwd=repo).stdout
    changed = json.loads(diff)
    assert "metrics/dvc/emergentbridge.json" in changed  # the headline file DVC reads as metrics
    assert "metrics/dvc/raw.json" not in changed  # untouched methods show no change
    assert "metrics/emergentbridge.json" not in changed  # the full detail is a plain output
