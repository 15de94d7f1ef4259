"""Oracle tests of the closed-form methods and the pairing rule on seeded synthetic data."""

import dataclasses

import numpy as np
import pytest
import scipy.linalg
from embridge.methods import get_method
from embridge.methods.cca import cca_solve
from embridge.pairing import pair_rows, relevance
from embridge.store.synth import SynthConfig, make_synthetic

PAIRS = [("image", "text"), ("audio", "text")]


def test_procrustes_recovers_planted_rotation():
    """No noise: W maps the rotated span back exactly, and test rows land on their anchor partner."""
    t, truth = make_synthetic(SynthConfig(n=400, dim=24, latent_dim=8, noise=0.0, gap=0.5, seed=1))
    m = get_method("procrustes", center=True).fit(t, "text", PAIRS)
    for mod in ("image", "audio"):
        RB = truth.rotation(mod) @ truth.basis  # (d, k): the span as seen in this modality
        err = np.abs(RB.T @ m.maps_[mod]["W"] - truth.basis.T).max()
        assert err < 1e-4, (mod, err)
        te = t[mod].split == "test"
        Z = m.transform(t[mod].X[te], mod)
        np.testing.assert_allclose(Z, m.transform(t["text"].X[te], "text"), atol=1e-4)


def test_procrustes_matches_scipy():
    t, _ = make_synthetic(SynthConfig(n=300, dim=16, latent_dim=6, noise=0.3, seed=2))
    m = get_method("procrustes", center=False).fit(t, "text", [("image", "text")])
    tr_i, tr_t = t["image"].select_split("train"), t["text"].select_split("train")
    R, _ = scipy.linalg.orthogonal_procrustes(tr_i.X.astype(np.float64), tr_t.X.astype(np.float64))
    np.testing.assert_allclose(m.maps_["image"]["W"], R, atol=1e-6)


def test_procrustes_class_level_uses_anchor_class_mean():
    t, _ = make_synthetic(SynthConfig(n=300, dim=16, latent_dim=6, noise=0.2, pair_fraction=0.0, seed=4))
    m = get_method("procrustes", center=False).fit(t, "text", [("image", "text")])
    tr_i, tr_t = t["image"].select_split("train"), t["text"].select_split("train")
    means = np.stack([tr_t.X[tr_t.labels == c].astype(np.float64).mean(0) for c in range(10)])
    X, Y = tr_i.X.astype(np.float64), means[tr_i.labels]
    R, _ = scipy.linalg.orthogonal_procrustes(X, Y)
    W = m.maps_["image"]["W"]
    # 10 class means fix W on 10 of 16 directions only: the same optimum as SciPy's, W closest to I
    assert m.fit_info_["image"]["rank"] == 10 and not m.fit_info_["image"]["determined"]
    assert np.linalg.norm(X @ W - Y) == pytest.approx(np.linalg.norm(X @ R - Y), abs=1e-5)
    assert np.trace(W) >= np.trace(R) - 1e-9


def test_cca_matches_generalized_eigenproblem():
    """rho_i are the top eigenvalues of [[0, Cxy], [Cyx, 0]] w = rho [[Cxx, 0], [0, Cyy]] w."""
    rng = np.random.default_rng(0)
    t, _ = make_synthetic(SynthConfig(n=500, dim=12, latent_dim=4, noise=0.5, seed=6))
    X = t["image"].X.astype(np.float64)
    Y = t["text"].X.astype(np.float64) + 0.01 * rng.standard_normal(X.shape)
    ridge, k = 0.05, 6
    A, B, rho, mu_x, mu_y, _ = cca_solve(X, Y, k, ridge)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    n, d = Xc.shape
    Cxx = Xc.T @ Xc / n
    Cyy = Yc.T @ Yc / n
    Cxx += ridge * np.trace(Cxx) / d * np.eye(d)
    Cyy += ridge * np.trace(Cyy) / d * np.eye(d)
    Cxy = Xc.T @ Yc / n
    L = np.block([[np.zeros((d, d)), Cxy], [Cxy.T, np.zeros((d, d))]])
    R = scipy.linalg.block_diag(Cxx, Cyy)
    evals = scipy.linalg.eigh(L, R, eigvals_only=True)[::-1][:k]
    np.testing.assert_allclose(rho, evals, atol=1e-4)
    assert np.all(np.diff(rho) <= 1e-12)
    np.testing.assert_allclose(A.T @ Cxx @ A, np.eye(k), atol=1e-8)  # canonical variates are whitened
    np.testing.assert_allclose(A.T @ Cxy @ B, np.diag(rho), atol=1e-8)


def test_cca_method_correlations_non_increasing_and_maps_into_anchor_space():
    t, _ = make_synthetic(SynthConfig(n=400, dim=16, latent_dim=6, noise=0.2, seed=7))
    m = get_method("cca", k=6, ridge=0.01).fit(t, "text", PAIRS)
    for rho in m.correlations_.values():
        assert rho.shape == (6,) and np.all(np.diff(rho) <= 1e-12) and rho[0] <= 1
    te = t["audio"].split == "test"
    Za, Zi = m.transform(t["audio"].X[te], "audio"), m.transform(t["image"].X[te], "image")
    assert (np.sum(Za * Zi, axis=1)).mean() > 0.9  # never paired, yet they meet in the anchor's space


def test_collapse_zero_mean_and_removes_gap():
    t, truth = make_synthetic(SynthConfig(n=600, dim=24, latent_dim=8, rotate=False, gap=0.6, noise=0.1, seed=8))
    raw = get_method("raw").fit(t, "text", PAIRS)
    col = get_method("collapse").fit(t, "text", PAIRS)
    for mod, tb in t.items():
        tr = tb.select_split("train").X.astype(np.float64)
        tr = tr / np.linalg.norm(tr, axis=1, keepdims=True)
        np.testing.assert_allclose(col.mean_[mod], tr.mean(0), atol=1e-7)
        want = (tr - tr.mean(0)) / np.linalg.norm(tr - tr.mean(0), axis=1, keepdims=True)
        np.testing.assert_allclose(col.transform(tb.select_split("train").X, mod), want, atol=1e-5)
    te = {m: tb.select_split("test") for m, tb in t.items()}

    def gap(method, a, b):
        return np.linalg.norm(method.transform(te[a].X, a).mean(0) - method.transform(te[b].X, b).mean(0))

    before = gap(raw, "image", "text")
    assert before > 0.5  # the planted gap: 0.6 * ||g_image - g_text|| shrunk by normalization
    col_n = get_method("collapse").fit(t, "text", PAIRS)
    assert gap(col_n, "image", "text") < 0.1 * before


def test_relevance_rule():
    pid_q, lab_q = np.array([0, -1, 1]), np.array([3, 3, 3])
    pid_g, lab_g = np.array([0, 2, -1, -1]), np.array([5, 3, 3, 4])
    expected = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(relevance(pid_q, lab_q, pid_g, lab_g), expected)


@pytest.mark.parametrize("pair_fraction", [0.0, 1.0])
def test_pairs_per_class_cap_and_determinism(pair_fraction):
    t, _ = make_synthetic(SynthConfig(n=400, dim=12, latent_dim=4, pair_fraction=pair_fraction, seed=9))
    src, tgt = t["image"].select_split("train"), t["text"].select_split("train")
    P = pair_rows(src, tgt, pairs_per_class=5, seed=1, cap_instances=True)
    assert np.bincount(P.label, minlength=10).max() <= 5 and len(P) == 50
    assert np.bincount(tgt.labels[P.tgt_rows], minlength=10).max() <= 5
    Q = pair_rows(src, tgt, pairs_per_class=5, seed=1, cap_instances=True)
    np.testing.assert_array_equal(P.src, Q.src)
    if pair_fraction:  # instance pairs: same pair_id (a row whose partner is outside the budget pairs by class)
        inst = P.tgt >= 0
        assert inst.any() and (src.pair_ids[P.src[inst]] == tgt.pair_ids[P.tgt[inst]]).all()
    else:
        assert (P.tgt == -1).all()
    assert len(pair_rows(src, tgt, pairs_per_class=0).src) == len(src)
    if pair_fraction:  # issue 15: a per-class budget meant for labels never caps instance pairs unless asked
        assert len(pair_rows(src, tgt, pairs_per_class=5, seed=1).src) == len(src)


def test_linear_is_ridge_on_pairs():
    t, _ = make_synthetic(SynthConfig(n=300, dim=12, latent_dim=4, noise=0.3, seed=10))
    m = get_method("linear", alpha=0.0, center=False).fit(t, "text", [("image", "text")])
    X, Y = t["image"].select_split("train").X, t["text"].select_split("train").X
    W = np.linalg.lstsq(X.astype(np.float64), Y.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(m.maps_["image"]["W"], W, atol=1e-6)


def test_corrupt_changes_fit_only_when_sigma_positive():
    t, _ = make_synthetic(SynthConfig(n=300, dim=12, latent_dim=4, noise=0.3, seed=11))
    X = t["audio"].X[:10]
    a = get_method("linear").fit(t, "text", PAIRS).transform(X, "audio")
    b = get_method("linear", corrupt_sigma=0.1).fit(t, "text", PAIRS).transform(X, "audio")
    assert not np.allclose(a, b)
    moved = {m: dataclasses.replace(tb) for m, tb in t.items()}
    c = get_method("linear", corrupt_sigma=0.0).fit(moved, "text", PAIRS).transform(X, "audio")
    np.testing.assert_array_equal(a, c)
