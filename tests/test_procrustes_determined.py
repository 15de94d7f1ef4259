"""Issue 14, cause 1: Procrustes with pairs that do not fix W (class-level pairs, or fewer pairs than
dimensions) takes the solution closest to the identity, stable under tiny perturbations."""

import warnings

import numpy as np
import pytest
import scipy.linalg
from embridge.evaluation import EvaluateConfig, evaluate
from embridge.methods import get_method, load_method
from embridge.methods.procrustes import orthogonal_procrustes
from embridge.pairing import LabelBudget, choose_budget
from embridge.store.synth import SynthConfig, make_synthetic

PAIRS = [("image", "text"), ("audio", "text")]


def capped(tables, pairs_per_class: int) -> LabelBudget:
    """A label budget where instance pairs count against the per-class cap (pairs.cap_instances: true)."""
    return choose_budget({m: t.select_split("train") for m, t in tables.items()}, PAIRS, pairs_per_class, 0,
                         cap_instances=True)


def _fit(tables, pairs_per_class: int = 0, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the under-determined warning, checked below
        return get_method("procrustes", **params).fit(tables, "text", PAIRS, budget=capped(tables, pairs_per_class))


@pytest.mark.parametrize("pair_fraction,pairs_per_class", [(1.0, 1), (1.0, 2), (0.0, 0)])
def test_procrustes_keeps_an_aligned_space(pair_fraction, pairs_per_class):
    """On an already aligned space (synth --no-rotate) procrustes does not lower raw's retrieval.

    Before the fix, 10 instance pairs for 64 dimensions lowered R@1 by up to 0.53 (LAPACK's arbitrary
    rotation of the 55 undetermined directions)."""
    t, _ = make_synthetic(SynthConfig(n=2000, dim=64, latent_dim=16, rotate=False, pair_fraction=pair_fraction,
                                      seed=0))
    cfg = EvaluateConfig(backend="torch")
    raw = evaluate(t, get_method("raw").fit(t, "text", PAIRS), PAIRS, cfg)
    pro = evaluate(t, _fit(t, pairs_per_class=pairs_per_class), PAIRS, cfg)
    for d, r in raw["retrieval"].items():
        for metric in ("R@1", "R@10", "mAP"):
            assert pro["retrieval"][d][metric] >= r[metric] - 0.01, (d, metric, r[metric], pro["retrieval"][d][metric])


def test_procrustes_stable_under_tiny_perturbation():
    """Class-level pairs fix W on a (C - 1)-dim subspace only; 1e-6 input noise moves W by <= 1e-4."""
    t, _ = make_synthetic(SynthConfig(n=600, dim=64, latent_dim=16, noise=0.2, pair_fraction=0.0, seed=6))
    rng = np.random.default_rng(0)
    t2 = {}
    for m, tb in t.items():
        X = tb.X.astype(np.float64) + 1e-6 * rng.standard_normal(tb.X.shape)
        t2[m] = type(tb)(tb.modality, X.astype(np.float32), tb.meta, tb.manifest)
    a, b = _fit(t), _fit(t2)
    for m in ("image", "audio"):
        info = a.fit_info_[m]
        assert info["rank"] <= 9 and not info["determined"] and "closest to the identity" in info["warning"]
        diff = np.linalg.norm(a.maps_[m]["W"] - b.maps_[m]["W"])
        assert diff <= 1e-4, (m, diff)
        W = a.maps_[m]["W"]
        np.testing.assert_allclose(W.T @ W, np.eye(64), atol=1e-9)  # still a rotation


def test_underdetermined_solution_is_optimal_and_closest_to_identity():
    rng = np.random.default_rng(1)
    d, r = 12, 4
    X = rng.standard_normal((40, r)) @ rng.standard_normal((r, d))  # rank-4 sources
    Q = np.linalg.qr(rng.standard_normal((d, d)))[0]
    Y = X @ Q
    W, S, rank = orthogonal_procrustes(X, Y)
    R, _ = scipy.linalg.orthogonal_procrustes(X, Y)
    assert rank == r
    assert np.linalg.norm(X @ W - Y) == pytest.approx(np.linalg.norm(X @ R - Y), abs=1e-9)  # as optimal
    assert np.linalg.norm(X @ W - Y) < 1e-9
    # among all optimal rotations U_r V_r^T + U_p Q V_p^T, the largest trace: brute force over random Q
    U, _, Vt = np.linalg.svd(X.T @ Y)
    base = U[:, :r] @ Vt[:r]
    for _ in range(200):
        Qr = np.linalg.qr(rng.standard_normal((d - r, d - r)))[0]
        assert np.trace(W) >= np.trace(base + U[:, r:] @ Qr @ Vt[r:]) - 1e-9
    # an aligned problem (Y = X): W is exactly the identity, the complement untouched
    W_id, _, _ = orthogonal_procrustes(X, X)
    np.testing.assert_allclose(W_id, np.eye(d), atol=1e-9)


def test_full_rank_instance_pairs_still_equal_scipy(tmp_path):
    t, _ = make_synthetic(SynthConfig(n=400, dim=16, latent_dim=6, noise=0.3, seed=2))
    m = get_method("procrustes", center=True).fit(t, "text", [("image", "text")])
    tr_i, tr_t = t["image"].select_split("train"), t["text"].select_split("train")
    Xc = tr_i.X.astype(np.float64) - tr_i.X.astype(np.float64).mean(0)
    Yc = tr_t.X.astype(np.float64) - tr_t.X.astype(np.float64).mean(0)
    R, _ = scipy.linalg.orthogonal_procrustes(Xc, Yc)
    np.testing.assert_allclose(m.maps_["image"]["W"], R, atol=1e-6)  # inputs: float32 unit rows
    assert m.fit_info_["image"]["determined"] and "warning" not in m.fit_info_["image"]
    m.save(tmp_path / "map")
    assert load_method(tmp_path / "map").fit_info_ == m.fit_info_  # written to config.json


def test_underdetermined_fits_warn_and_report():
    """Fewer pairs than dimensions: fit_info says so and a UserWarning is raised, for all three methods."""
    t, _ = make_synthetic(SynthConfig(n=400, dim=64, latent_dim=8, noise=0.2, seed=3))
    for name in ("procrustes", "cca", "linear"):
        with pytest.warns(UserWarning, match="under-determined"):
            m = get_method(name).fit(t, "text", PAIRS, budget=capped(t, 2))
        info = m.fit_info_["image"]
        assert info["n_pairs"] == 20 and info["dim"] == 64 and not info["determined"], (name, info)
        assert "20 pairs for 64 dimensions" in info["warning"]
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            full = get_method(name).fit(t, "text", PAIRS)  # 320 instance pairs for 64 dims: no warning
        assert full.fit_info_["image"]["determined"]


def test_fit_cli_prints_the_warning_and_writes_fit_info(tmp_path):
    from click.testing import CliRunner
    from embridge.stages.cli import cli

    r = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path / "s"), "--n", "300", "--no-rotate"])
    assert r.exit_code == 0, r.output
    (tmp_path / "params.yaml").write_text("pairs:\n  cap_instances: true\n")  # instance pairs count against the cap
    r = CliRunner().invoke(cli, ["fit", "--method", "procrustes", "--tables", str(tmp_path / "s"), "--pairs",
                                 "image-text,audio-text", "--pairs-per-class", "2", "--params", str(tmp_path / "params.yaml"),
                                 "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, (r.output, r.exception)
    assert "warning: procrustes: the fit of 'audio' is under-determined (20 pairs for 64 dimensions)" in r.output
    import json

    info = json.loads((tmp_path / "m" / "config.json").read_text())["fit_info"]
    assert info["image"]["n_pairs"] == 20 and info["image"]["rank"] <= 19 and not info["image"]["determined"]
