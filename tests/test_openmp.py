"""OpenMP waits chosen per command before torch loads: a few microseconds of spinning for the
training commands, sleeping waits for the others, and the user's own setting untouched."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from embridge.config.openmp import SHORT_SPIN, TRAINING_COMMANDS, openmp_waits
from embridge.stages.cli import cli

VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


@pytest.mark.parametrize("command", ["fit", "bind", "sweep", "extract", "evaluate", "prepare"])
def test_cli_sets_the_waits_of_its_command(command, monkeypatch):
    for v in VARS:
        monkeypatch.delenv(v, raising=False)
    res = CliRunner().invoke(cli, [command, "--help"])
    assert res.exit_code == 0, res.output
    if command in TRAINING_COMMANDS:
        assert os.environ.get("GOMP_SPINCOUNT") == SHORT_SPIN and "OMP_WAIT_POLICY" not in os.environ
    else:
        assert os.environ.get("OMP_WAIT_POLICY") == "PASSIVE" and "GOMP_SPINCOUNT" not in os.environ


@pytest.mark.parametrize("user", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "0"}])
def test_the_users_setting_wins(user, monkeypatch):
    for v in VARS:
        monkeypatch.delenv(v, raising=False)
    for k, v in user.items():
        monkeypatch.setenv(k, v)
    for kind in ("short_spin", "passive"):
        openmp_waits(kind)
        assert {v: os.environ.get(v) for v in VARS if v in os.environ} == user


def test_set_before_torch_loads():
    """In a fresh `embridge fit` process the variable is in the environment by the time torch is
    imported (libgomp reads it once, when it loads)."""
    env = {k: v for k, v in os.environ.items() if k not in VARS}
    code = ("import sys, os; import embridge.stages.cli as c\n"
            "import builtins; real = builtins.__import__\n"
            "def spy(name, *a, **k):\n"
            "    if name == 'torch' and 'torch' not in sys.modules: print('torch-import', os.environ.get('GOMP_SPINCOUNT'))\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = spy\n"
            "sys.argv = ['embridge', 'fit', '--method', 'raw', '--tables', 'nowhere', '--out', 'nowhere-map']\n"
            "c.main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert f"torch-import {SHORT_SPIN}" in out.stdout, out.stdout + out.stderr
