"""Gap diagnostics against planted answers (synthetic C^3 data) and brute-force references."""

import numpy as np
import pytest
from embridge.evaluation.gap import (
    c3_statistics,
    centroid_gap,
    effective_dim,
    gap_diagnostics,
    mutual_knn,
    neighbours,
    random_abs_cosine,
)
from embridge.evaluation.search import normalize
from embridge.store.synth import SynthConfig, make_synthetic


@pytest.fixture(scope="module")
def planted():
    cfg = SynthConfig(n=1500, dim=48, latent_dim=8, gap=0.5, noise=0.1, rotate=False, seed=11)
    tables, truth = make_synthetic(cfg)
    return {m: t.select_split("test") for m, t in tables.items()}, truth


def test_centroid_gap_equals_planted(planted):
    tables, truth = planted
    for a, b in (("audio", "image"), ("audio", "text"), ("image", "text")):
        want = np.linalg.norm(truth.gap_vector(a) - truth.gap_vector(b))  # gap * sqrt(2)
        got = centroid_gap(tables[a].X, tables[b].X)
        # normalization shrinks every row by about 1 / sqrt(1 + noise^2): 0.5% at noise 0.1
        assert got == pytest.approx(want, abs=0.02), (a, b)


def test_c3_statistics_on_planted_geometry(planted):
    tables, truth = planted
    a, b = tables["audio"], tables["image"]
    out = gap_diagnostics(a.X, b.X, a, b, group_size=100, mutual_k=10, rng=np.random.default_rng(0))
    want = np.linalg.norm(truth.gap_vector("audio") - truth.gap_vector("image"))
    assert out["pairs"] == "instance" and out["n_pairs"] == len(a)
    assert out["groups"] == len(a) // 100
    assert out["gap_length"] == pytest.approx(want, abs=0.03)
    assert out["direction_consistency"] > 0.99  # one constant gap vector
    assert out["orthogonality"] < 0.5 * out["orthogonality_random"]  # gap orthogonal to the span
    assert out["residual_noise"] == pytest.approx(0.1 * np.sqrt(2), abs=0.02)  # eps_a - eps_b
    assert out["mutual_knn"] > 0.5 and out["mutual_knn_shuffled"] < 0.05
    assert out["effective_dim_a"] <= 48


def test_class_level_pairs_when_no_pair_ids(planted):
    tables, _ = planted
    a = tables["audio"]
    b = tables["image"]
    b = type(b)(b.modality, b.X, b.meta.with_columns(b.meta["pair_id"].clear(len(b))), b.manifest)
    out = gap_diagnostics(a.X, b.X, a, b, rng=np.random.default_rng(0))
    assert out["pairs"] == "class" and out["mutual_knn"] is None and out["mutual_knn_shuffled"] is None
    assert out["n_pairs"] >= len(a)


def test_effective_dim_matches_svd_reference():
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((40, 6)))
    X = (rng.standard_normal((500, 6)) * np.array([5, 4, 3, 2, 1, 0.5])) @ Q.T + rng.standard_normal(40)
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    for mass in (0.5, 0.9, 0.99):
        want = int(np.argmax(np.cumsum(s) / s.sum() >= mass) + 1)
        assert effective_dim(X, mass, chunk=77) == want
    assert effective_dim(X, 1.0) == 6  # planted rank


def test_random_abs_cosine_matches_monte_carlo():
    rng = np.random.default_rng(2)
    for d in (3, 32):
        v = rng.standard_normal((200_000, d))
        mc = np.abs(v[:, 0]) / np.linalg.norm(v, axis=1)
        assert random_abs_cosine(d) == pytest.approx(mc.mean(), abs=3e-3)


def test_c3_statistics_bruteforce():
    rng = np.random.default_rng(3)
    Pa, Pb = normalize(rng.standard_normal((250, 10))), normalize(rng.standard_normal((250, 10)))
    out = c3_statistics(Pa, Pb, Pa, Pb, group_size=100, rng=np.random.default_rng(4))
    diff = Pa.astype(np.float64) - Pb
    g = diff.mean(axis=0)
    order = np.random.default_rng(4).permutation(250)
    groups = diff[order[:200]].reshape(2, 100, 10).mean(axis=1)
    assert out["groups"] == 2
    assert out["gap_length"] == pytest.approx(np.linalg.norm(groups, axis=1).mean())
    cos = groups @ g / (np.linalg.norm(groups, axis=1) * np.linalg.norm(g))
    assert out["direction_consistency"] == pytest.approx(cos.mean())
    assert out["residual_noise"] == pytest.approx(np.linalg.norm(diff - g, axis=1).mean())


def test_mutual_knn_bruteforce():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((60, 8)).astype(np.float32)
    B = A + 0.7 * rng.standard_normal((60, 8)).astype(np.float32)
    k = 5

    def nn(X):
        S = X.astype(np.float64) @ X.T.astype(np.float64)
        np.fill_diagonal(S, -np.inf)
        return np.argsort(-S, axis=1)[:, :k]

    Na, Nb = nn(A), nn(B)
    np.testing.assert_array_equal(neighbours(A, k), Na)
    want = np.mean([len(set(Na[i]) & set(Nb[i])) / k for i in range(60)])
    got, shuffled, spread = mutual_knn(A, B, k, np.random.default_rng(6), draws=1)
    assert got == pytest.approx(want)
    perm = np.random.default_rng(6).permutation(60)
    Nbs = nn(B[perm])
    assert shuffled == pytest.approx(np.mean([len(set(Na[i]) & set(Nbs[i])) / k for i in range(60)])) and spread == 0
    rng, draws = np.random.default_rng(7), []
    for _ in range(5):
        Nbs = nn(B[rng.permutation(60)])
        draws.append(np.mean([len(set(Na[i]) & set(Nbs[i])) / k for i in range(60)]))
    _, mean5, std5 = mutual_knn(A, B, k, np.random.default_rng(7), draws=5)
    assert (mean5, std5) == pytest.approx((np.mean(draws), np.std(draws, ddof=1)))
    assert mutual_knn(A, A, k, np.random.default_rng(0))[0] == 1.0
    assert mutual_knn(A[:5], B[:5], k, np.random.default_rng(0)) is None
