"""The README's "Sharing artifacts" recipe, followed literally with the real `dvc` and `git` in temp dirs:
an origin repository that runs the pipeline, commits dvc.lock with its results and pushes to a local-folder
remote; one clone that pulls everything, one that pulls only what fitting reads; both refit one method.
Also DVC's tables: `dvc exp show --only-changed` after one `-S` change fits in 120 columns with the
headline visible, `dvc metrics show` prints short lines, and the data plots are declared."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from embridge.store import MANIFEST

from tests.pipeline_repo import BIN, ROOT, dvc, env, git, make_repo, run, stages_run

pytestmark = pytest.mark.slow

# smaller than TINY: two methods (cca is the one the recipe refits), a one-point sweep
SMALL = {"methods": ["raw", "cca"], "fit": {"raw": {}, "cca": {"k": 8}},
         "sweep": {"pairs_per_class": [1], "methods": ["raw"]}}
REFIT = {"fit@cca", "evaluate@cca", "report"}


def readme_block(heading: str) -> str:
    """The first ```bash block under `heading` in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}", 1)[1]
    return section.split("```bash", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    root = tmp_path_factory.mktemp("share")
    repo = make_repo(root / "origin", SMALL)
    dvc("repro", cwd=repo)
    return repo


def test_readme_recipe_names_the_commands_this_test_runs():
    block = readme_block("Sharing artifacts")
    for line in ("dvc remote add -d shared", "git add -A", "dvc push", "dvc pull", "dvc repro",
                 "dvc exp run -S fit.cca.k=16", "dvc pull bind", "dvc exp run -S fit.cca.k=16 --downstream fit@cca"):
        assert line in block, line


def test_sharing_recipe_two_clones(origin, tmp_path):
    remote = tmp_path / "team-cache"
    # the owner, as the README says
    dvc("remote", "add", "-d", "shared", str(remote), cwd=origin)
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "results, dvc.lock and the team remote", cwd=origin)
    dvc("push", cwd=origin)
    assert git("status", "--porcelain", cwd=origin).strip() == ""

    # collaborator 1: everything
    a = tmp_path / "alice"
    run(["git", "clone", "-q", str(origin), str(a)], tmp_path)
    assert not (a / "features").joinpath("audio").exists()
    dvc("pull", cwd=a)
    assert stages_run(dvc("repro", cwd=a).stdout) == set()  # everything is up to date
    res = dvc("exp", "run", "-S", "fit.cca.k=16", cwd=a)
    assert stages_run(res.stdout) == REFIT, res.stdout

    # collaborator 2: only the unified tables that fit and evaluate read
    b = tmp_path / "bob"
    run(["git", "clone", "-q", str(origin), str(b)], tmp_path)
    dvc("pull", "bind", "pairs", cwd=b)
    assert (b / "unified" / "seed-0" / "audio" / MANIFEST).is_file() and not (b / "features" / "audio").exists()
    res = dvc("exp", "run", "-S", "fit.cca.k=16", "--downstream", "fit@cca", cwd=b)
    assert stages_run(res.stdout) == REFIT, res.stdout
    assert not (b / "features" / "audio").exists()  # nothing upstream was recomputed
    # both collaborators got the same refit
    for name in ("cca.json", "dvc/cca.json"):
        assert (a / "metrics" / name).read_bytes() == (b / "metrics" / name).read_bytes()


def test_dvc_tables_are_readable(origin, tmp_path):
    git("add", "-A", cwd=origin)
    git("commit", "-q", "--allow-empty", "-m", "baseline", cwd=origin)
    dvc("exp", "run", "-S", "fit.cca.k=4", cwd=origin)
    res = subprocess.run([str(BIN / "dvc"), "exp", "show", "--only-changed", "--no-pager"], cwd=origin,
                         env={**env(), "COLUMNS": "120"}, capture_output=True, text=True, check=True)
    out = res.stdout
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert max(len(ln) for ln in lines) <= 120, out
    header = next(ln for ln in lines if "Experiment" in ln)
    assert "unpaired.R@1" in header and "fit.cca.k" in header, out
    # DVC may elide the changed dependency hashes (maps/cca, metrics) at the right edge, never these two
    assert "…" not in header or header.index("…") > max(header.index("unpaired.R@1"), header.index("fit.cca.k")), out
    head = json.loads((origin / "metrics" / "dvc" / "cca.json").read_text())
    assert f"{head['unpaired']['R@1']:.4g}"[:4] in out  # the workspace's headline value is on screen
    # dvc metrics show: one short line per method
    shown = dvc("metrics", "show", cwd=origin).stdout.splitlines()
    assert len(shown) == 1 + len(SMALL["methods"]) and max(map(len, shown)) <= 80, shown
    assert re.match(r"Path\s+unpaired\.R@1$", shown[0].strip()), shown
    # the data plots are declared: the sweep over pairs_per_class and the per-pair bars
    plots = json.loads(dvc("plots", "show", "--json", cwd=origin).stdout)["data"]
    assert {"sweep", "metrics/dvc/cca.pairs.csv", "metrics/dvc/raw.pairs.csv"} <= set(plots)
    assert os.path.getsize(origin / "reports" / "plots" / "sweep.csv") > 0
