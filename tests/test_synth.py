"""Synthetic C^3 data: determinism, the planted gap is orthogonal to the span, truth round trip."""

import numpy as np
import pytest
from click.testing import CliRunner
from embridge.errors import ConfigError
from embridge.stages.cli import cli
from embridge.store import MANIFEST, read_table
from embridge.store.synth import (
    TRUTH,
    SynthConfig,
    SynthTruth,
    make_synthetic,
    plant,
    write_synthetic,
)


def test_written_tables_are_byte_identical_across_runs(tmp_path):
    args = ["synth", "--n", "500", "--dim", "24", "--latent-dim", "6", "--seed", "5", "--dtype", "float16"]
    for out in ("a", "b"):
        res = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
    for m in ("image", "audio", "text"):
        for f in ("part-00000.parquet", MANIFEST):
            assert (tmp_path / "a" / m / f).read_bytes() == (tmp_path / "b" / m / f).read_bytes()
    assert (tmp_path / "a" / TRUTH).read_bytes() == (tmp_path / "b" / TRUTH).read_bytes()
    res = CliRunner().invoke(cli, ["synth", "--n", "500", "--dim", "24", "--latent-dim", "6", "--seed", "6",
                                   "--out", str(tmp_path / "c")])
    assert (tmp_path / "a/text/part-00000.parquet").read_bytes() != (tmp_path / "c/text/part-00000.parquet").read_bytes()


def test_in_memory_equals_written(tmp_path):
    cfg = SynthConfig(n=400, dim=20, latent_dim=5, seed=2)
    truth = write_synthetic(tmp_path, cfg)
    tables, truth2 = make_synthetic(cfg)
    for m, t in tables.items():
        disk = read_table(tmp_path / m)
        np.testing.assert_array_equal(disk.X, t.X)
        assert list(disk.ids) == list(t.ids) and list(disk.pair_ids) == list(t.pair_ids)
    np.testing.assert_array_equal(truth.rotations, truth2.rotations)
    loaded = SynthTruth.load(tmp_path / TRUTH)
    np.testing.assert_array_equal(loaded.gaps, truth.gaps)
    assert loaded.config == cfg


def test_planted_gap_is_orthogonal_to_the_shared_span():
    truth = plant(SynthConfig(dim=48, latent_dim=12, gap=0.4, seed=1))
    B = truth.basis
    np.testing.assert_allclose(B.T @ B, np.eye(12), atol=1e-12)
    for g in truth.gaps:
        assert abs(np.linalg.norm(g) - 0.4) < 1e-12
        np.testing.assert_allclose(B.T @ g, 0, atol=1e-12)
    diff = truth.gaps[0] - truth.gaps[1]
    np.testing.assert_allclose(B.T @ diff, 0, atol=1e-12)  # the C^3 gap c_perp is orthogonal to the span
    for R in truth.rotations:
        np.testing.assert_allclose(R @ R.T, np.eye(48), atol=1e-10)
    np.testing.assert_array_equal(truth.rotation("text"), np.eye(48))


def test_paired_difference_is_the_constant_gap_plus_noise():
    cfg = SynthConfig(n=3000, dim=64, latent_dim=8, gap=0.5, noise=0.05, rotate=False, seed=0)
    tables, truth = make_synthetic(cfg)
    diff = tables["image"].X - tables["audio"].X  # same row = same instance
    planted = truth.gap_vector("image") - truth.gap_vector("audio")
    mean_diff = diff.mean(axis=0)
    assert np.linalg.norm(mean_diff - planted) < 0.05 * np.linalg.norm(planted)
    resid = diff - planted
    assert np.linalg.norm(resid, axis=1).mean() < 0.1  # what is left is the small alignment noise


def test_rotations_hide_the_shared_frame_until_undone():
    cfg = SynthConfig(n=500, dim=32, latent_dim=8, gap=0.0, noise=0.0, seed=4)
    tables, truth = make_synthetic(cfg)
    back = tables["audio"].X @ truth.rotation("audio")  # x R (row form of R^T x) undoes the rotation
    np.testing.assert_allclose(back, tables["text"].X, atol=1e-5)
    assert np.abs(tables["audio"].X - tables["text"].X).max() > 0.1


def test_pairs_labels_and_splits():
    tables, _ = make_synthetic(SynthConfig(n=1000, dim=16, latent_dim=4, pair_fraction=0.5, seed=0))
    t = tables["image"]
    paired = np.array([p is not None for p in t.pair_ids])
    assert 0.4 < paired.mean() < 0.6
    assert set(np.unique(t.labels)) == set(range(10))
    assert 0.15 < (t.split == "test").mean() < 0.25
    assert list(tables["audio"].split) == list(t.split)  # an instance has one split in every modality


@pytest.mark.parametrize("kw", [{"gap": 1.0}, {"latent_dim": 62, "dim": 64}, {"anchor": "depth"}, {"modalities": ["a", "a"]}])
def test_bad_configs(kw):
    with pytest.raises(ConfigError):
        plant(SynthConfig(**kw))
