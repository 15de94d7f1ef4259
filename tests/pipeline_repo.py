"""Builds a temporary git + DVC repository from this project with a tiny configuration, for the
end-to-end and fault tests that drive the real `dvc` and `embridge` commands."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the virtual environment's bin/, with `embridge` and `dvc`

# every stage on the CPU in about a minute: 100 images, 60 spoken digits, 3 methods, a 2-point sweep
TINY = {
    "seeds": [0],
    "device": "cpu",
    "pairs": {"train": ["image-text", "audio-text"], "pairs_per_class": 3},
    "prepare": {
        "images_per_class": 10,
        "espeak_languages": ["en-us", "en"],
        "espeak_variants": ["m1", "f1", "m3", "f3"],
        "espeak_rates": [170],
        "espeak_pitches": [50],
    },
    "extract": {"rows_per_shard": 32},
    "bind": {"epochs": 5},
    "methods": ["raw", "procrustes", "emergentbridge"],
    "fit": {
        "raw": {},
        "procrustes": {"center": True},
        "emergentbridge": {"lam": 1.0, "epochs": 20, "proxy_epochs": 20},
    },
    "sweep": {"pairs_per_class": [1, 0], "methods": ["raw", "procrustes"]},
}


def env() -> dict:
    e = dict(os.environ)
    e.update(DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], cwd, check)


def git(*args: str, cwd: Path) -> str:
    return run(["git", *args], cwd).stdout


def write_params(repo: Path, overrides: dict | None = None, source: Path = ROOT / "params.yaml",
                 tiny: bool = True) -> None:
    """`source` (the project's params.yaml) with the TINY values (when `tiny`) and `overrides` merged in."""
    params = yaml.safe_load(source.read_text())

    def merge(dst: dict, src: dict) -> None:
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(dst.get(k), dict) and k != "fit":
                merge(dst[k], v)
            else:
                dst[k] = v

    if tiny:
        merge(params, TINY)
    merge(params, overrides or {})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_repo(dest: Path, overrides: dict | None = None) -> Path:
    """A fresh git repository holding the project's code, dvc.yaml and a tiny params.yaml, committed."""
    dest.mkdir(parents=True)
    for name in ("pipeline", "stages"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    shutil.copytree(ROOT / "data" / "fsdd", dest / "data" / "fsdd")  # a dependency of prepare
    write_params(dest, overrides)
    return commit_new_repo(dest, "tiny pipeline")


EXAMPLE = ROOT / "examples" / "own-data"


def make_example_repo(dest: Path, overrides: dict | None = None) -> Path:
    """A user's project as examples/own-data's comments set it up: its dvc.yaml and params.yaml (with
    `overrides` merged in) and nothing of embridge's source, committed."""
    dest.mkdir(parents=True)
    shutil.copy(EXAMPLE / "dvc.yaml", dest / "dvc.yaml")
    write_params(dest, overrides, source=EXAMPLE / "params.yaml", tiny=False)
    return commit_new_repo(dest, "my project")


def commit_new_repo(dest: Path, message: str) -> Path:
    """git init + dvc init in `dest`, everything in it committed."""
    git("init", "-q", "-b", "main", cwd=dest)
    git("config", "user.name", "embridge tests", cwd=dest)
    git("config", "user.email", "tests@embridge.invalid", cwd=dest)
    dvc("init", "-q", cwd=dest)
    dvc("config", "core.analytics", "false", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", message, cwd=dest)
    return dest


def stages_run(output: str) -> set[str]:
    """Names of the stages DVC says it ran, from `dvc repro` / `dvc exp run` output."""
    return set(re.findall(r"Running stage '([^']+)'", output))


def stage_names(repo: Path) -> set[str]:
    out = dvc("stage", "list", "--name-only", cwd=repo).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}
