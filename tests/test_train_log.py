"""Per-epoch hooks of the training loops: a progress bar and dvclive's per-epoch loss, off by default."""

import json

import numpy as np
import pytest
from embridge.methods import get_method, train_log
from embridge.store.synth import SynthConfig, make_synthetic

PAIRS = [("image", "text"), ("audio", "text")]


@pytest.fixture(scope="module")
def tables():
    t, _ = make_synthetic(SynthConfig(n=120, dim=12, latent_dim=4, rotate=False, noise=0.3, seed=2))
    return t


class Recorder:
    def __init__(self):
        self.events = []

    def start(self, name, epochs):
        self.events.append(("start", name, epochs))

    def epoch(self, name, epoch, loss):
        self.events.append(("epoch", name, epoch, loss))

    def close(self, name):
        self.events.append(("close", name))


def test_steps_without_sinks_is_a_plain_range():
    log = train_log.epoch_log("x", 3, 4)
    assert list(log.steps()) == list(range(12)) and not log.sinks


def test_hooks_run_once_per_epoch_with_the_last_step_loss():
    rec = Recorder()
    log = train_log.EpochLog("x", 3, 4, [rec])
    for step in log.steps():
        log.loss = float(step)
    assert rec.events == [("start", "x", 3), ("epoch", "x", 1, 3.0), ("epoch", "x", 2, 7.0),
                          ("epoch", "x", 3, 11.0), ("close", "x")]


@pytest.mark.parametrize("name", ["cycle_mlp", "emergentbridge"])
def test_training_loops_report_every_epoch_and_fit_is_unchanged(name, tables, monkeypatch):
    kw = {"epochs": 3, "proxy_epochs": 2, "hidden": 8, "device": "cpu"}
    kw = {k: v for k, v in kw.items() if k in get_method(name).param_names()}
    plain = get_method(name, **kw).fit(tables, "text", PAIRS).transform(tables["audio"].X, "audio")
    rec = Recorder()
    monkeypatch.setattr(train_log, "_SINKS", [rec])
    logged = get_method(name, **kw).fit(tables, "text", PAIRS).transform(tables["audio"].X, "audio")
    np.testing.assert_array_equal(plain, logged)  # the hooks change nothing
    epochs = [e for e in rec.events if e[0] == "epoch" and e[1] == name]
    assert [e[2] for e in epochs] == [1, 2, 3]
    assert all(np.isfinite(e[3]) for e in epochs)


def test_dvclive_logs_per_epoch_loss(tables, tmp_path, monkeypatch):
    pytest.importorskip("dvclive")
    monkeypatch.chdir(tmp_path)  # dvclive looks for a repository from the working directory
    with train_log.logging_to(progress=True, dvclive=tmp_path / "live"):
        get_method("cycle_mlp", epochs=4, hidden=8, device="cpu").fit(tables, "text", PAIRS)
    tsv = next((tmp_path / "live").rglob("loss.tsv"))
    rows = tsv.read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["step", "loss"] and len(rows) == 1 + 4
    assert [int(r.split("\t")[0]) for r in rows[1:]] == [0, 1, 2, 3]
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert "cycle_mlp" in summary and np.isfinite(summary["cycle_mlp"]["loss"])
    assert not train_log._SINKS  # switched off again
