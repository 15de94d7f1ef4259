"""Keep freed memory in the process (glibc's malloc), so that large arrays reuse pages already
touched instead of faulting in fresh ones.

glibc serves every allocation above its mmap threshold (at most 32 MiB when it adapts) with a fresh
mapping and unmaps it on free; the next array of that size page-faults all over again. The
training commands allocate and free (n, d) tables many times over (train splits, normalized
copies, gathered pairs, inference outputs), and on this project's machines a first touch costs
about 11 us per 4 KiB page: 1.2 s for 400 MB against 0.014 s to write the same pages again.
In bind's benchmark fit (16k x 1024, 3 epochs) about 90,000 faults a fit fell to under 2,000.

`keep_freed_memory()` raises the mmap threshold to 1 GiB (tables come from the heap and go back to
it), the trim threshold to 2 GiB (freed heap memory is not handed back to the OS) and the top pad
to 256 MiB (fewer heap extensions). The PyTorch CPU tuning guide recommends the same for training
(jemalloc or tcmalloc "reuse memory as much as possible"); this is glibc's own switch for it.
Nothing computed changes, only where memory comes from; the cost is a resident size that stays
at its peak until the process exits, which a stage's process does when its stage ends.

The training commands (config/openmp.TRAINING_COMMANDS) call it; a user's own MALLOC_*_ variable
or glibc.malloc tunable wins, and on another C library it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # mallopt's parameter codes (malloc.h)
SETTINGS = {M_MMAP_THRESHOLD: 1 << 30, M_TRIM_THRESHOLD: (1 << 31) - 1, M_TOP_PAD: 256 << 20}
USER_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def user_chose() -> bool:
    """The user set glibc's malloc knobs themselves (environment variables or tunables)."""
    return any(v in os.environ for v in USER_VARIABLES) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory() -> bool:
    """Apply SETTINGS with mallopt; True when applied (glibc, and the user set none of them)."""
    if user_chose() or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(code, value) == 1 for code, value in SETTINGS.items())
