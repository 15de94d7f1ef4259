"""Keep freed memory in the process (glibc's malloc), so that large arrays reuse pages already
touched instead of faulting in fresh ones.

glibc serves every allocation above its mmap threshold (at most 32 MiB when it adapts) with a fresh
mapping and unmaps it on free; the next array of that size page-faults all over again. The
training commands allocate and free (n, d) tables many times over (train splits, normalized
copies, gathered pairs, inference outputs), and on this project's machines a first touch costs
about 11 us per 4 KiB page: 1.2 s for 400 MB against 0.014 s to write the same pages again.
In bind's benchmark fit (16k x 1024, 3 epochs) about 90,000 faults a fit fell to under 2,000.

`keep_freed_memory()` raises the mmap threshold to 1 GiB (tables come from the heap and go back to
it), the trim threshold to 2 GiB (freed heap memory is not handed back to the OS), the top pad
to 256 MiB (fewer heap extensions) and keeps one arena for all threads: a thread's own arena lives
in 64 MiB heaps that glibc unmaps as soon as they empty, whatever the trim threshold, so the
evaluation scan's worker threads faulted their 15 MiB score tiles in afresh at the start of every
query block (3,662 faults, 68 ms against 20 ms for the sgemm that filled it); with one arena the
freed tiles are reused. Threads allocate a few large blocks each, so the shared lock costs nothing
measurable. The PyTorch CPU tuning guide recommends the same for training
(jemalloc or tcmalloc "reuse memory as much as possible"); this is glibc's own switch for it.
Nothing computed changes, only where memory comes from; the cost is a resident size that stays
at its peak until the process exits, which a stage's process does when its stage ends.

The training commands and `evaluate` (MEMORY_COMMANDS) call it, before any thread starts; a user's
own MALLOC_* variable or glibc.malloc tunable wins, and on another C library it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

from embridge.config.openmp import TRAINING_COMMANDS

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8  # mallopt's codes (malloc.h)
SETTINGS = {M_MMAP_THRESHOLD: 1 << 30, M_TRIM_THRESHOLD: (1 << 31) - 1, M_TOP_PAD: 256 << 20, M_ARENA_MAX: 1}
VARIABLES = {M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_", M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_",
             M_TOP_PAD: "MALLOC_TOP_PAD_", M_ARENA_MAX: "MALLOC_ARENA_MAX"}  # each setting's environment variable
USER_VARIABLES = (*VARIABLES.values(), "MALLOC_MMAP_MAX_")
MEMORY_COMMANDS = TRAINING_COMMANDS | {"evaluate"}  # the subcommands that call keep_freed_memory()


def user_chose() -> bool:
    """The user set glibc's malloc knobs themselves (environment variables or tunables)."""
    return any(v in os.environ for v in USER_VARIABLES) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def environment() -> dict[str, str]:
    """SETTINGS as glibc's environment variables, for a child process (glibc reads them at its start)."""
    return {VARIABLES[code]: str(value) for code, value in SETTINGS.items()}


def keep_freed_memory() -> bool:
    """Apply SETTINGS with mallopt; True when applied (glibc, and the user set none of them)."""
    if user_chose() or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(code, value) == 1 for code, value in SETTINGS.items())
