"""The wheel installs one top-level package, `embridge` (the folders pipeline/ and stages/ mapped to
embridge and embridge.stages), so nothing clashes with another distribution's `pipeline` (django-pipeline
ships a top-level pipeline/), and its entry point is `embridge`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("pipeline", "stages"):  # without the extension the editable install built in place
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.so"))
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return next(out.glob("embridge-*.whl"))


def test_only_embridge_at_the_top_level(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"embridge", next(t for t in tops if t.endswith(".dist-info"))}, tops
    assert "embridge/stages/cli.py" in names and "embridge/store/manifest.py" in names
    assert not any(n.startswith(("pipeline/", "stages/")) for n in names)


def test_every_library_folder_is_packaged(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pkg in (("pipeline", "embridge"), ("stages", "embridge/stages")):
        for f in (ROOT / folder).rglob("*.py"):
            if "__pycache__" not in f.parts:
                assert f"{pkg}/{f.relative_to(ROOT / folder).as_posix()}" in names, f  # a new subpackage not listed in pyproject


def test_the_console_script_is_embridge(wheel):
    z = zipfile.ZipFile(wheel)
    entry = next(n for n in z.namelist() if n.endswith("entry_points.txt"))
    assert "embridge = embridge.stages.cli:main" in z.read(entry).decode()


@pytest.mark.parametrize("ext", ["embridge/evaluation/_countc.", "embridge/methods/_noisec.", "embridge/_rowsc."])
def test_the_wheel_holds_the_compiled_kernels_where_a_compiler_is(wheel, ext):
    """setup.py's optional extensions: built into the wheel where a C compiler is (here), as
    embridge/evaluation/_countc.<abi>.so beside counting.py, embridge/methods/_noisec.<abi>.so
    beside noise.py and embridge/_rowsc.<abi>.so beside rows.py, which load them."""
    if not shutil.which("cc"):
        pytest.skip("no C compiler: the install goes on without the C kernels")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith(ext) and n.endswith(".so") for n in names), names
