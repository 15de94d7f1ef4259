"""Per-epoch hooks of the training loops (bind, cycle_mlp, emergentbridge): a progress bar and the
per-epoch loss logged with dvclive, as DVC's example-get-started logs its training.

A loop asks for `epoch_log(name, epochs, steps_per_epoch)` and iterates `log.steps()` instead of
`range(epochs * steps_per_epoch)`, setting `log.loss = loss` (a tensor; no device sync) each step. The
hooks run once per epoch, at its last step, and only while a stage has switched them on with
`logging_to(...)`; otherwise `steps()` is a plain range and costs nothing in the hot loop.
`log.wants_loss` says whether a hook will read this step's loss: the loops compute the InfoNCE
loss's value only then (its gradient does not need it).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from embridge.errors import ConfigError

_SINKS: list = []  # active per-epoch sinks (set by logging_to)
_SCOPE: list[str] = []  # names the loops run inside (seed, tune candidate): a loop logs as "<scope>/<name>"


class EpochLog:
    """One training loop's epochs. `loss` holds the latest step's loss (tensor or float);
    `wants_loss` is True at the steps whose loss a hook reads (an epoch's last, with hooks on)."""

    def __init__(self, name: str, epochs: int, steps_per_epoch: int, sinks: list):
        self.name, self.epochs, self.steps_per_epoch = name, int(epochs), max(1, int(steps_per_epoch))
        self.sinks = list(sinks)
        self.loss = None
        self.wants_loss = False

    def steps(self) -> Iterator[int]:
        n = self.epochs * self.steps_per_epoch
        if not self.sinks:
            yield from range(n)
            return
        for s in self.sinks:
            s.start(self.name, self.epochs)
        try:
            for step in range(n):
                self.wants_loss = (step + 1) % self.steps_per_epoch == 0
                yield step
                if self.wants_loss:
                    loss = self.loss.detach() if hasattr(self.loss, "detach") else self.loss
                    loss = None if loss is None else float(loss)  # one device sync per epoch
                    for s in self.sinks:
                        s.epoch(self.name, (step + 1) // self.steps_per_epoch, loss)
        finally:
            self.wants_loss = False
            for s in self.sinks:
                s.close(self.name)


def epoch_log(name: str, epochs: int, steps_per_epoch: int) -> EpochLog:
    return EpochLog("/".join([*_SCOPE, name]), epochs, steps_per_epoch, _SINKS)


@contextlib.contextmanager
def scope(*names: str):
    """Loops started inside log under these names first (`scope("seed-1")`: "seed-1/cycle_mlp/loss"),
    so every seed and tune candidate keeps its own curve."""
    _SCOPE.extend(names)
    try:
        yield
    finally:
        del _SCOPE[len(_SCOPE) - len(names):]


class ProgressBar:
    """A tqdm bar per training loop on stderr: epochs done and the last loss."""

    def __init__(self):
        self.bars = {}

    def start(self, name, epochs):
        from tqdm import tqdm

        self.bars[name] = tqdm(total=epochs, desc=name, unit="epoch", file=sys.stderr, leave=False,
                               dynamic_ncols=True)

    def epoch(self, name, epoch, loss):
        bar = self.bars[name]
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        bar.update(1)

    def close(self, name):
        self.bars.pop(name).close()


class DvcLive:
    """dvclive's Live in `directory`: one `<scope>/<loop>/loss` metric per training loop, `step` = epoch - 1
    (every curve starts at 0). dvclive is imported here only (an optional dependency: pip install 'embridge[live]')."""

    def __init__(self, directory: str | Path):
        try:
            from dvclive import Live
        except ImportError:
            raise ConfigError(f"--dvclive {directory}: dvclive is not installed (pip install 'embridge[live]')") from None
        # dvcyaml=None: never edit dvc.yaml; save_dvc_exp=False: the stage runs inside `dvc exp run` already
        self.live = Live(str(directory), dvcyaml=None, save_dvc_exp=False, report=None)

    def start(self, name, epochs):
        pass

    def epoch(self, name, epoch, loss):
        if loss is None:
            return
        self.live.step = epoch - 1
        self.live.log_metric(f"{name}/loss", loss)

    def close(self, name):
        pass

    def end(self):
        self.live.end()


@contextlib.contextmanager
def logging_to(progress: bool = False, dvclive: str | Path | None = None):
    """Switch the per-epoch hooks on for the loops run inside (a progress bar and/or dvclive)."""
    sinks = ([ProgressBar()] if progress else []) + ([DvcLive(dvclive)] if dvclive else [])
    _SINKS[:] = sinks
    try:
        yield sinks
    finally:
        _SINKS.clear()
        for s in sinks:
            if isinstance(s, DvcLive):
                s.end()
