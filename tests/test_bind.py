"""bind: heads onto the anchor on sparse class-level pairs; the emergent pair stays far from saturated."""

import numpy as np
import pytest
from click.testing import CliRunner
from embridge.bind import BindConfig, bind_tables
from embridge.config.schema import build_dataclass
from embridge.errors import ConfigError
from embridge.store import load_tables
from embridge.store.synth import SynthConfig, make_synthetic, write_synthetic

PAIRS = [("image", "text"), ("audio", "text")]


def r1(Q, G, q, g):
    return float((g[(Q @ G.T).argmax(1)] == q).mean())


@pytest.fixture(scope="module")
def tables():
    t, _ = make_synthetic(SynthConfig(n=1500, dim=32, latent_dim=8, noise=0.3, pair_fraction=0.0, seed=2))
    return t


def test_projection_aligns_paired_and_leaves_emergent_pair_imperfect(tables):
    Z = bind_tables(tables, "text", PAIRS, BindConfig(), pairs_per_class=20, seed=0, device="cpu")
    te = tables["text"].split == "test"
    lab = tables["text"].labels[te]
    raw_it = r1(tables["image"].X[te], tables["text"].X[te], lab, lab)
    it = r1(Z["image"][te], Z["text"][te], lab, lab)
    ai = r1(Z["audio"][te], Z["image"][te], lab, lab)
    assert it > raw_it + 0.2  # the head brings image onto the text space
    assert ai < 0.8  # sparse pairs: the emergent pair is clearly not saturated
    full = bind_tables(tables, "text", PAIRS, BindConfig(), pairs_per_class=0, seed=0, device="cpu")
    assert r1(full["audio"][te], full["image"][te], lab, lab) > ai  # more pairs, better emergent pair
    for m, z in Z.items():
        assert z.shape == (len(tables[m]), 32) and z.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(Z["text"], tables["text"].X, atol=1e-6)  # anchor passes through


def test_bind_is_seeded(tables):
    cfg = BindConfig(epochs=3)
    a = bind_tables(tables, "text", PAIRS, cfg, pairs_per_class=5, seed=1, device="cpu")
    b = bind_tables(tables, "text", PAIRS, cfg, pairs_per_class=5, seed=1, device="cpu")
    np.testing.assert_array_equal(a["audio"], b["audio"])


def test_bind_uses_only_train_rows(tables):
    import dataclasses

    moved = {m: dataclasses.replace(t, X=t.X.copy()) for m, t in tables.items()}
    te = moved["image"].split == "test"
    moved["image"].X[te] = moved["image"].X[te][::-1]
    cfg = BindConfig(epochs=3)
    a = bind_tables(tables, "text", PAIRS, cfg, pairs_per_class=5, device="cpu")
    b = bind_tables(moved, "text", PAIRS, cfg, pairs_per_class=5, device="cpu")
    np.testing.assert_array_equal(a["image"][~te], b["image"][~te])


def test_bind_errors(tables):
    with pytest.raises(ConfigError, match="audio"):
        bind_tables(tables, "text", [("image", "text")], BindConfig(epochs=1), device="cpu")
    with pytest.raises(ConfigError, match="depth"):
        bind_tables(tables, "text", [("depth", "text")], BindConfig(epochs=1), device="cpu")
    with pytest.raises(ConfigError, match="epochs"):
        build_dataclass(BindConfig, {"epochs": 0}, "bind")
    with pytest.raises(ConfigError, match="epoch"):
        build_dataclass(BindConfig, {"epoch": 3}, "bind")


def test_bind_stage_writes_tables(tmp_path):
    from embridge.stages.bind import cli

    write_synthetic(tmp_path / "features", SynthConfig(n=200, dim=16, latent_dim=4, seed=3))
    (tmp_path / "params.yaml").write_text(
        "seed: 1\nanchor: text\npairs:\n  train: [image-text, audio-text]\n  pairs_per_class: 5\nbind:\n  epochs: 2\n"
    )
    res = CliRunner().invoke(cli, ["--features", str(tmp_path / "features"), "--out", str(tmp_path / "unified"),
                                   "--params", str(tmp_path / "params.yaml")])
    assert res.exit_code == 0, res.output
    src, out = load_tables(tmp_path / "features"), load_tables(tmp_path / "unified")
    for m in src:
        assert out[m].ids.tolist() == src[m].ids.tolist()
        assert out[m].split.tolist() == src[m].split.tolist()
        assert out[m].labels.tolist() == src[m].labels.tolist()
    res = CliRunner().invoke(cli, ["--features", str(tmp_path / "features"), "--out", str(tmp_path / "pt"),
                                   "--method", "passthrough"])
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(load_tables(tmp_path / "pt")["audio"].X, src["audio"].X, atol=1e-6)
