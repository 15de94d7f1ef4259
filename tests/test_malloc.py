"""glibc malloc keeps freed tables in the training commands and `evaluate` (config/malloc.py): a second large array
reuses touched pages instead of faulting in fresh ones; a user's own setting wins."""

import os
import platform
import subprocess
import sys

import pytest
from click.testing import CliRunner
from embridge.config import malloc
from embridge.stages.cli import cli

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# page faults of writing a 64 MiB array after freeing one of the same size
FAULTS = """
import resource, sys
import numpy as np
from embridge.config.malloc import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
a = np.ones(1 << 24, np.float32); del a
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
b = np.ones(1 << 24, np.float32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def faults(mode: str, **env) -> int:
    clean = {k: v for k, v in os.environ.items() if k not in malloc.USER_VARIABLES and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, env={**clean, **env})
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


@glibc
def test_a_freed_table_is_reused_not_faulted_again():
    """glibc's default maps a 64 MiB array afresh every time, so its pages fault in again (16,384
    faults of 4 KiB on a stock kernel; sandboxes that fault in larger runs count fewer); kept, the
    array reuses the freed heap memory and nothing faults."""
    default, kept = faults("default"), faults("keep")
    assert default > 100 and kept < min(50, default // 10), (default, kept)


@glibc
def test_the_environment_form_keeps_freed_memory_too():
    """malloc.environment() (what bench/eval.py gives its child processes) has the effect of
    keep_freed_memory(): a child started with it reuses the freed array."""
    default, kept = faults("default"), faults("default", **malloc.environment())
    assert default > 100 and kept < min(50, default // 10), (default, kept)


@glibc
@pytest.mark.parametrize("user", [{"MALLOC_MMAP_THRESHOLD_": "131072"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}])
def test_the_users_setting_wins(user, monkeypatch):
    for k, v in user.items():
        monkeypatch.setenv(k, v)
    assert malloc.user_chose() and not malloc.keep_freed_memory()


@pytest.mark.parametrize("command", ["fit", "bind", "sweep", "evaluate", "extract"])
def test_only_the_training_commands_and_evaluate_keep_freed_memory(command, monkeypatch):
    calls = []
    monkeypatch.setattr(malloc, "keep_freed_memory", lambda: calls.append(command) or True)
    res = CliRunner().invoke(cli, [command, "--help"])
    assert res.exit_code == 0, res.output
    assert calls == ([command] if command in ("fit", "bind", "sweep", "evaluate") else [])
    assert malloc.MEMORY_COMMANDS == {"fit", "bind", "sweep", "evaluate"}
