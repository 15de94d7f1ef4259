"""The `embridge` console command: fast help, every subcommand documented, errors without tracebacks."""

import subprocess
import sys

import numpy as np
from embridge.stages.cli import COMMANDS


def _embridge(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "embridge.stages", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_every_subcommand_without_heavy_imports():
    code = ("import sys; from embridge.stages.cli import main; sys.argv=['embridge','--help'];\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'faiss', 'pyarrow', 'polars', 'dvc') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    for name in COMMANDS:
        assert name in out
    assert "HEAVY []" in out


def test_user_error_is_one_line_and_non_zero(tmp_path):
    bad = np.ones((4, 3), np.float32)
    bad[2, 1] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    res = _embridge("import", "--modality", "audio", "--embeddings", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o"))
    assert res.returncode == 1
    assert res.stderr.startswith("error: ") and "row 2" in res.stderr
    assert "Traceback" not in res.stderr
    res = _embridge("validate", str(tmp_path / "missing"))
    assert res.returncode == 1 and "not a folder" in res.stderr and "Traceback" not in res.stderr
