"""embridge's C^3-compatible gap statistics and platonic-rep alignment metrics against ports of the
peers' own code (written here in torch, as the peers wrote it), on seeded synthetic data."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from embridge.evaluation.alignment import alignment_metrics, cka, cknna, mutual_knn
from embridge.evaluation.gap import c3_effective_dim, c3_gap_statistics, gap_diagnostics
from embridge.store.synth import SynthConfig, make_synthetic

# ----------------------------------------------------------------------------------------------
# Port of github yuhui-zh15/C3, geometry_analysis/analyze_gap.ipynb, `compute_gap_statistics`
# (plots removed; the two torch.randperm calls replaced by the permutations passed in, so that both
# sides group the same pairs; the histograms' summaries are mean and std, as its `hist` prints).


def c3_compute_gap_statistics(features1, features2, perm1, perm2):
    features1, features2 = F.normalize(features1), F.normalize(features2)
    gaps = features1 - features2
    gaps = gaps[perm1]
    group_size = 100
    gaps = gaps[: (gaps.shape[0] // group_size) * group_size]
    gaps = gaps.reshape(-1, group_size, gaps.shape[-1])
    gaps = gaps.mean(dim=1)
    magnitudes = gaps.norm(dim=-1)
    directions = F.cosine_similarity(gaps[1:], gaps[:-1])
    orthogonalities = F.cosine_similarity(features1[1:] - features1[:-1], gaps.mean(dim=0, keepdim=True))
    gaps = features1 - features2
    gaps = gaps[perm2]
    residuals = gaps - gaps.mean(dim=0)
    residual_magnitudes = residuals.mean(0)
    residual_directions = F.cosine_similarity(residuals[1:], residuals[:-1])
    return {"magnitude": magnitudes, "direction": directions, "orthogonality": orthogonalities,
            "residual_magnitude": residual_magnitudes, "residual_direction": residual_directions}


# Port of github yuhui-zh15/C3, geometry_analysis/contrastive_optimization.ipynb, "Compute Effective Dimension".
def c3_effective_dimension(features):
    u, sigma, v = torch.svd(torch.cov(features.T))
    i = 0
    while True:
        i += 1
        if sigma[:i].sum() / sigma.sum() > 0.99:
            break
    return i


# ----------------------------------------------------------------------------------------------
# Port of github minyoungg/platonic-rep, metrics.py: AlignmentMetrics.mutual_knn, .cka, .unbiased_cka,
# .cknna and the module functions hsic_unbiased, hsic_biased, compute_nearest_neighbors (unchanged).


def pr_compute_nearest_neighbors(feats, topk=1):
    return (feats @ feats.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :topk]


def pr_mutual_knn(feats_A, feats_B, topk):
    knn_A = pr_compute_nearest_neighbors(feats_A, topk)
    knn_B = pr_compute_nearest_neighbors(feats_B, topk)
    n = knn_A.shape[0]
    topk = knn_A.shape[1]
    range_tensor = torch.arange(n).unsqueeze(1)
    lvm_mask = torch.zeros(n, n)
    llm_mask = torch.zeros(n, n)
    lvm_mask[range_tensor, knn_A] = 1.0
    llm_mask[range_tensor, knn_B] = 1.0
    acc = (lvm_mask * llm_mask).sum(dim=1) / topk
    return acc.mean().item()


def pr_hsic_unbiased(K, L):
    m = K.shape[0]
    K_tilde = K.clone().fill_diagonal_(0)
    L_tilde = L.clone().fill_diagonal_(0)
    HSIC_value = (
        (torch.sum(K_tilde * L_tilde.T))
        + (torch.sum(K_tilde) * torch.sum(L_tilde) / ((m - 1) * (m - 2)))
        - (2 * torch.sum(torch.mm(K_tilde, L_tilde)) / (m - 2))
    )
    HSIC_value /= m * (m - 3)
    return HSIC_value


def pr_hsic_biased(K, L):
    H = torch.eye(K.shape[0], dtype=K.dtype, device=K.device) - 1 / K.shape[0]
    return torch.trace(K @ H @ L @ H)


def pr_cka(feats_A, feats_B, unbiased=False):
    K = torch.mm(feats_A, feats_A.T)
    L = torch.mm(feats_B, feats_B.T)
    hsic_fn = pr_hsic_unbiased if unbiased else pr_hsic_biased
    hsic_kk = hsic_fn(K, K)
    hsic_ll = hsic_fn(L, L)
    hsic_kl = hsic_fn(K, L)
    return (hsic_kl / (torch.sqrt(hsic_kk * hsic_ll) + 1e-6)).item()


def pr_cknna(feats_A, feats_B, topk=None, distance_agnostic=False, unbiased=True):
    n = feats_A.shape[0]
    K = feats_A @ feats_A.T
    L = feats_B @ feats_B.T

    def similarity(K, L, topk):
        if unbiased:
            K_hat = K.clone().fill_diagonal_(float("-inf"))
            L_hat = L.clone().fill_diagonal_(float("-inf"))
        else:
            K_hat, L_hat = K, L
        _, topk_K_indices = torch.topk(K_hat, topk, dim=1)
        _, topk_L_indices = torch.topk(L_hat, topk, dim=1)
        mask_K = torch.zeros(n, n, dtype=K.dtype).scatter_(1, topk_K_indices, 1)
        mask_L = torch.zeros(n, n, dtype=K.dtype).scatter_(1, topk_L_indices, 1)
        mask = mask_K * mask_L
        return pr_hsic_unbiased(mask * K, mask * L) if unbiased else pr_hsic_biased(mask * K, mask * L)

    sim_kl = similarity(K, L, topk)
    sim_kk = similarity(K, K, topk)
    sim_ll = similarity(L, L, topk)
    return sim_kl.item() / (torch.sqrt(sim_kk * sim_ll) + 1e-6).item()


# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paired():
    """Instance-paired test rows of two modalities with a planted gap, alignment noise and structure."""
    tables, _ = make_synthetic(SynthConfig(n=2000, dim=32, latent_dim=8, gap=0.4, noise=0.3, rotate=False, seed=21))
    a, b = tables["image"].select_split("test"), tables["text"].select_split("test")
    assert a.meta["pair_id"].to_list() == b.meta["pair_id"].to_list()  # row i of a is row i of b
    return a, b


def test_c3_gap_statistics_equal_ported_compute_gap_statistics(paired):
    a, b = paired
    Xa, Xb = a.X.astype(np.float64), b.X.astype(np.float64)
    rng = np.random.default_rng(3)
    perms = (rng.permutation(len(Xa)), rng.permutation(len(Xa)))
    ref = c3_compute_gap_statistics(torch.from_numpy(Xa), torch.from_numpy(Xb), torch.from_numpy(perms[0]),
                                    torch.from_numpy(perms[1]))
    got = c3_gap_statistics(Xa, Xb, 100, perms)
    assert got["groups"] == len(Xa) // 100 >= 3
    assert got["gap_length"] == pytest.approx(ref["magnitude"].mean().item(), abs=1e-9)
    assert got["gap_length_std"] == pytest.approx(ref["magnitude"].std().item(), abs=1e-9)  # ddof 1
    assert got["direction_consistency"] == pytest.approx(ref["direction"].mean().item(), abs=1e-9)
    assert got["orthogonality"] == pytest.approx(ref["orthogonality"].mean().item(), abs=1e-9)
    assert got["noise_direction"] == pytest.approx(ref["residual_direction"].mean().item(), abs=1e-9)
    assert np.abs(ref["residual_magnitude"].numpy()).max() < 1e-12  # "Noise Mean": zero by construction
    # the definitions differ from embridge's own (ddof 0 std, cosine with the overall gap, |cos| on random pairs)
    own = gap_diagnostics(a.X, b.X, a, b, rng=np.random.default_rng(0))
    assert own["orthogonality"] != pytest.approx(own["c3"]["orthogonality"], abs=1e-3)


def test_c3_effective_dim_equals_ported_notebook(paired):
    a, b = paired
    for X in (a.X, b.X, np.random.default_rng(2).standard_normal((300, 20)) * np.linspace(3, 0.01, 20)):
        want = c3_effective_dimension(torch.from_numpy(np.asarray(X, dtype=np.float64)))
        assert c3_effective_dim(X, 0.99) == want


def test_gap_diagnostics_c3_block_equals_port_with_its_permutations(paired):
    """gap["a|b"]["c3"] as evaluate writes it: same numbers as the port given the permutations it drew."""
    a, b = paired
    out = gap_diagnostics(a.X, b.X, a, b, group_size=100, rng=np.random.default_rng(5))
    assert set(out["c3"]) >= {"gap_length", "gap_length_std", "direction_consistency", "orthogonality",
                              "noise_direction", "effective_dim_a", "effective_dim_b"}
    assert out["c3"]["effective_dim_a"] == c3_effective_dimension(torch.from_numpy(a.X.astype(np.float64)))
    assert out["c3"]["effective_dim_b"] == c3_effective_dimension(torch.from_numpy(b.X.astype(np.float64)))
    assert 0.3 < out["c3"]["gap_length"] < 0.8 and out["c3"]["direction_consistency"] > 0.9


@pytest.mark.parametrize("n,seed", [(80, 0), (300, 1)])
def test_alignment_equals_ported_platonic_rep(paired, n, seed):
    a, b = paired
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(a), size=n, replace=False))
    A, B = a.X[rows].astype(np.float64), b.X[rows].astype(np.float64)
    tA, tB = torch.from_numpy(A), torch.from_numpy(B)
    got = alignment_metrics(A, B, k=10)
    assert got["n"] == n and got["k"] == 10
    assert got["mutual_knn"] == pytest.approx(pr_mutual_knn(tA, tB, 10), abs=1e-6)  # its masks are float32
    assert got["cka"] == pytest.approx(pr_cka(tA, tB), abs=1e-6)
    assert got["unbiased_cka"] == pytest.approx(pr_cka(tA, tB, unbiased=True), abs=1e-6)
    assert got["cknna"] == pytest.approx(pr_cknna(tA, tB, topk=10), abs=1e-6)
    # a real signal, not a constant: unrelated rows score near zero
    Z = np.random.default_rng(9).standard_normal(B.shape)
    assert abs(cka(A, Z, unbiased=True)) < 0.1 < got["unbiased_cka"]
    assert abs(cknna(A, Z, 10)) < got["cknna"]
    assert mutual_knn(A, A, 10) == 1.0


def test_shuffled_baseline_is_a_mean_over_draws_near_chance(paired):
    a, b = paired
    sub_a, sub_b = a.subset(np.arange(80)), b.subset(np.arange(80))
    out = gap_diagnostics(sub_a.X, sub_b.X, sub_a, sub_b, rng=np.random.default_rng(1), shuffle_draws=200)
    chance = 10 / 79
    assert out["mutual_knn_chance"] == pytest.approx(chance)
    assert out["mutual_knn_shuffled"] == pytest.approx(chance, rel=0.05)  # 200 draws: +-11% / sqrt(200)
    assert 0.07 * chance < out["mutual_knn_shuffled_std"] < 0.15 * chance  # one draw's spread at n = 80: about 11%
