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


def test_a_step_wants_its_loss_only_where_a_hook_reads_it():
    log = train_log.EpochLog("x", 3, 4, [Recorder()])
    assert [log.wants_loss for _ in log.steps()] == [False, False, False, True] * 3
    assert not log.wants_loss
    plain = train_log.epoch_log("y", 2, 3)
    assert not any(plain.wants_loss for _ in plain.steps())


@pytest.mark.parametrize("name", ["bind", "cycle_mlp", "emergentbridge"])
def test_the_logged_losses_are_those_of_every_step_computing_its_value(name, tables, monkeypatch):
    """The loops compute the InfoNCE loss's value only at the steps a hook reads: the same logged
    losses, bit for bit, as when every step computes it, and the same fit."""
    from embridge.bind import BindConfig, bind_tables
    from embridge.methods import losses

    def run():
        rec = Recorder()
        monkeypatch.setattr(train_log, "_SINKS", [rec])
        if name == "bind":
            bound = bind_tables(tables, "text", PAIRS, BindConfig(epochs=3, hidden=8), device="cpu")
            out = np.concatenate([bound[m] for m in sorted(bound)])
        else:
            kw = {"epochs": 3, "proxy_epochs": 2, "hidden": 8, "device": "cpu"}
            kw = {k: v for k, v in kw.items() if k in get_method(name).param_names()}
            out = get_method(name, **kw).fit(tables, "text", PAIRS).transform(tables["audio"].X, "audio")
        return [e[3] for e in rec.events if e[0] == "epoch"], out

    lazy_losses, lazy = run()
    forward = losses.MultiPositiveInfoNCE.forward
    monkeypatch.setattr(losses.MultiPositiveInfoNCE, "forward",
                        lambda self, *a, value=True, **k: forward(self, *a, value=True, **k))
    full_losses, full = run()
    assert len(lazy_losses) >= 3 and all(np.isfinite(lazy_losses))
    assert lazy_losses == full_losses
    np.testing.assert_array_equal(lazy, full)


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


def test_scope_prefixes_loop_names_and_nests():
    rec = Recorder()
    with train_log.scope("seed-0", "candidate-1"):
        with train_log.scope("inner"):
            assert train_log.epoch_log("cycle_mlp", 1, 1).name == "seed-0/candidate-1/inner/cycle_mlp"
        assert train_log.EpochLog("x", 1, 1, [rec]).name == "x"  # a loop made directly is not scoped
        assert train_log.epoch_log("x", 1, 1).name == "seed-0/candidate-1/x"
    assert train_log.epoch_log("x", 1, 1).name == "x" and not train_log._SCOPE


def _live_curves(live):
    """{metric path under plots/metrics: [steps]} of a dvclive folder."""
    return {p.parent.relative_to(live / "plots" / "metrics").as_posix():
            [int(r.split("\t")[0]) for r in p.read_text().splitlines()[1:]]
            for p in sorted((live / "plots" / "metrics").rglob("loss.tsv"))}


def test_fit_and_bind_keep_every_seeds_curve(tmp_path, monkeypatch):
    """bind and fit loop over seeds (and fit over tune candidates) inside one command: one dvclive log
    holds a curve per seed and candidate, each from step 0 (a Live per seed used to wipe the last one)."""
    pytest.importorskip("dvclive")
    from click.testing import CliRunner
    from embridge.stages.cli import cli
    from embridge.store.synth import write_synthetic

    monkeypatch.chdir(tmp_path)

    def run(*args):
        r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
        assert r.exit_code == 0, r.output

    write_synthetic(tmp_path / "feats", SynthConfig(n=200, dim=12, latent_dim=4, pair_fraction=0.0, val_fraction=0.2, seed=2))
    (tmp_path / "params.yaml").write_text(
        "seeds: [0, 1]\ndevice: cpu\npairs: {train: [image-text, audio-text], pairs_per_class: 2}\n"
        "bind: {epochs: 3}\nfit: {cycle_mlp: {epochs: 2, hidden: 8}}\ntune: {cycle_mlp: {tau: [0.1, 0.2]}}\n"
        "sweep: {pairs_per_class: [1], methods: [raw]}\n")
    run("pairs", "--features", "feats", "--params", "params.yaml", "--out", "pairs")
    run("bind", "--features", "feats", "--budget", "pairs/2", "--params", "params.yaml", "--out", "unified",
        "--dvclive", "live/bind")
    assert _live_curves(tmp_path / "live" / "bind") == {f"seed-{s}/bind/{m}": [0, 1, 2]
                                                       for s in (0, 1) for m in ("audio", "image")}
    run("fit", "--method", "cycle_mlp", "--tables", "unified", "--budget", "pairs/2", "--params", "params.yaml",
        "--out", "maps/cycle_mlp", "--dvclive", "live/fit")
    assert _live_curves(tmp_path / "live" / "fit") == {f"seed-{s}/candidate-{c}/cycle_mlp": [0, 1]
                                                      for s in (0, 1) for c in (0, 1)}
