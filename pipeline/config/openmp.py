"""How OpenMP worker threads wait between parallel regions (torch, FAISS and CTranslate2 all ship
GNU OpenMP); to be set before any of them loads.

- `passive`: OMP_WAIT_POLICY=PASSIVE, threads sleep at once. The default runtime spins for about
  300,000 iterations, and on a 2-core machine shared with other jobs that spinning made training
  6-10x and extraction up to 10x slower (bench/RESULTS.md).
- `short_spin`: GOMP_SPINCOUNT=3000, threads spin a few microseconds, then sleep. A training step is
  dozens of small parallel ops a few microseconds apart, and waking a sleeping thread for each
  cost 20-30% of bind's epoch time on the idle machine (2.2-2.6 s an epoch against 2.7-3.2);
  with two busy processes on the cores it was 7% slower than passive (default spinning: 2.5x).

Neither changes a result (the same threads do the same arithmetic). A user's own
OMP_WAIT_POLICY or GOMP_SPINCOUNT always wins.
"""

from __future__ import annotations

import os

SHORT_SPIN = "3000"  # GOMP_SPINCOUNT for training: a few microseconds of spinning between ops
TRAINING_COMMANDS = frozenset({"bind", "fit", "sweep"})  # torch training loops: many small ops per step


def openmp_waits(kind: str) -> None:
    """kind: 'passive' or 'short_spin' (see the module docstring); nothing when the user set either variable."""
    if kind not in ("passive", "short_spin"):
        raise ValueError(f"openmp_waits({kind!r}): expected 'passive' or 'short_spin'")
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    if kind == "short_spin":
        os.environ["GOMP_SPINCOUNT"] = SHORT_SPIN
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def openmp_waits_for(command: str | None) -> None:
    """The setting of an `embridge` subcommand: short spins for the training commands, else passive."""
    openmp_waits("short_spin" if command in TRAINING_COMMANDS else "passive")
