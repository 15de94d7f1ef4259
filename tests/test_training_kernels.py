"""The training loops' fused pieces against the plain formulas they replace (the oracles are the
eager torch expressions the methods used before, differentiated by autograd in float64), and the
sampling's properties: every source row once per epoch, positives drawn uniformly."""

import numpy as np
import pytest
import torch
from embridge.methods.losses import CosineLoss, MultiPositiveInfoNCE, ProxyLoss
from embridge.methods.training import (
    ContrastiveData,
    PositiveIndex,
    Shuffled,
    adamw,
    pick_positive,
    relevance_t,
    unit,
)
from embridge.pairing import Pairing
from torch.nn import functional as F


def reference_infonce(Z, Y, pos, tau):
    """The multi-positive InfoNCE as plain autograd ops (the methods' formula before the fused node)."""
    logits = Z @ Y.T / tau
    has = pos.any(dim=1)
    if not has.any():
        return logits.sum() * 0.0
    logp = F.log_softmax(logits[has], dim=1)
    target = pos[has].to(logits.dtype)
    target = target / target.sum(dim=1, keepdim=True)
    return -(target * logp).sum(dim=1).mean()


def rows(n, d, seed, unit_rows=True):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    return F.normalize(X, dim=1) if unit_rows else X


@pytest.mark.parametrize("tau", [0.05, 0.5])
@pytest.mark.parametrize("density", [0.02, 0.3])
def test_infonce_value_and_gradients_equal_the_autograd_formula(tau, density):
    B, C, d = 40, 70, 8
    Z, Y = rows(B, d, 0).requires_grad_(), rows(C, d, 1).requires_grad_()
    pos = torch.rand(B, C, generator=torch.Generator().manual_seed(2)) < density
    pos[3] = False  # a row without a positive is left out
    pos[5] = True  # a row where everything is positive
    ours = MultiPositiveInfoNCE(tau)(Z, Y, pos)["loss"]
    ref = reference_infonce(Z, Y, pos, tau)
    g_ours = torch.autograd.grad(ours, (Z, Y))
    g_ref = torch.autograd.grad(ref, (Z, Y))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert float(g_ours[0][3].abs().max()) == 0.0  # the left-out row gets no gradient


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_infonce_without_its_value_gives_the_same_gradients_bit_for_bit(dtype):
    """value=False (the training loops' steps that log nothing) skips the loss's value: NaN, so a
    reader cannot mistake it for a loss; the gradients are the full node's, bit for bit."""
    B, C, d = 40, 70, 8
    Z, Y = rows(B, d, 0).to(dtype).requires_grad_(), rows(C, d, 1).to(dtype).requires_grad_()
    pos = torch.rand(B, C, generator=torch.Generator().manual_seed(2)) < 0.1
    pos[3] = False
    loss_fn = MultiPositiveInfoNCE(0.05)
    for scale in (1.0, 3.0):  # and with an incoming gradient other than 1
        full = scale * loss_fn(Z, Y, pos)["loss"]
        lazy = scale * loss_fn(Z, Y, PositiveIndex.of(pos), value=False)["loss"]
        assert torch.isfinite(full) and torch.isnan(lazy)
        for a, b in zip(torch.autograd.grad(full, (Z, Y)), torch.autograd.grad(lazy, (Z, Y)), strict=True):
            assert torch.equal(a, b)


def test_infonce_without_any_positive_is_zero_with_zero_gradients():
    Z, Y = rows(6, 4, 0).requires_grad_(), rows(9, 4, 1)
    loss = MultiPositiveInfoNCE(0.1)(Z, Y, torch.zeros(6, 9, dtype=torch.bool))["loss"]
    (g,) = torch.autograd.grad(loss, Z)
    assert loss.item() == 0.0 and float(g.abs().max()) == 0.0


def test_infonce_gradcheck_and_float32_agrees_with_float64():
    Z, Y = rows(7, 5, 3).requires_grad_(), rows(11, 5, 4).requires_grad_()
    pos = torch.rand(7, 11, generator=torch.Generator().manual_seed(5)) < 0.25
    pos[0, 0] = True
    assert torch.autograd.gradcheck(lambda z, y: MultiPositiveInfoNCE(0.2)(z, y, pos)["loss"], (Z, Y))
    Z32, Y32 = Z.detach().float().requires_grad_(), Y.detach().float()
    l32 = MultiPositiveInfoNCE(0.2)(Z32, Y32, pos)["loss"]
    l64 = reference_infonce(Z.detach(), Y.detach(), pos, 0.2)
    assert l32.item() == pytest.approx(l64.item(), rel=1e-5)


def test_infonce_backpropagates_twice_through_a_retained_graph():
    Z, Y = rows(5, 4, 0).requires_grad_(), rows(8, 4, 1)
    pos = torch.eye(5, 8, dtype=torch.bool)
    loss = MultiPositiveInfoNCE(0.1)(Z, Y, pos)["loss"]
    (g1,) = torch.autograd.grad(loss, Z, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, Z)
    assert torch.equal(g1, g2)


def test_unit_forward_is_normalize_bit_for_bit_and_its_gradient_agrees():
    X32 = rows(50, 16, 0, unit_rows=False).float()
    assert torch.equal(unit(X32), F.normalize(X32, dim=-1, eps=1e-12))
    X = rows(9, 6, 1, unit_rows=False)
    X[2] = 0.0  # a zero row: below eps, divided by eps (as F.normalize)
    X.requires_grad_()
    G = rows(9, 6, 2, unit_rows=False)
    (ours,) = torch.autograd.grad(unit(X), X, G)
    (ref,) = torch.autograd.grad(F.normalize(X, dim=-1, eps=1e-12), X, G)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(unit, (rows(4, 3, 3, unit_rows=False).requires_grad_(),))


@pytest.mark.parametrize("projection", ["feature", "none", "gradient"])
def test_proxy_loss_equals_the_projected_distance(projection):
    Z, p, u = rows(12, 6, 0).requires_grad_(), rows(12, 6, 1), rows(12, 6, 2)

    def project(V):
        return V - u * (V * u).sum(dim=1, keepdim=True)

    ours = ProxyLoss(projection)(Z, p, u)["loss"]
    Zr, pr = (project(Z), project(p)) if projection == "feature" else (Z, p)
    ref = ((Zr - pr) ** 2).sum(dim=1).mean()
    (g_ours,), (g_ref,) = torch.autograd.grad(ours, Z), torch.autograd.grad(ref, Z)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-10, atol=1e-12)
    if projection == "feature":  # the gradient has no component along the anchor direction
        assert float((g_ours * u).sum(dim=1).abs().max()) < 1e-12


def test_cosine_loss_equals_cosine_similarity_with_gradients_on_both_sides():
    X, Y = rows(10, 5, 0, unit_rows=False), rows(10, 5, 1, unit_rows=False)
    X[4] = 0.0  # a zero row: F.cosine_similarity's clamped norm
    X.requires_grad_(), Y.requires_grad_()
    ours = CosineLoss()(X, Y)["loss"]
    ref = (1 - F.cosine_similarity(X, Y, dim=1, eps=1e-8)).mean()
    g_ours, g_ref = torch.autograd.grad(ours, (X, Y)), torch.autograd.grad(ref, (X, Y))
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    for a, b in zip(g_ours, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    A, B = rows(5, 4, 2, unit_rows=False).requires_grad_(), rows(5, 4, 3, unit_rows=False).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: CosineLoss()(a, b)["loss"], (A, B))


def test_pick_positive_draws_uniformly_among_each_rows_positives():
    pos = torch.zeros(4, 7, dtype=torch.bool)
    pos[0, [1, 3, 6]] = True
    pos[2, 5] = True
    pos[3] = True  # row 1 has none: column 0
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([pick_positive(pos, gen) for _ in range(6000)])
    assert bool(pos[0, draws[:, 0]].all()) and bool((draws[:, 1] == 0).all()) and bool((draws[:, 2] == 5).all())
    for r, cols in ((0, [1, 3, 6]), (3, list(range(7)))):
        counts = torch.bincount(draws[:, r], minlength=7)[cols].double()
        expected = len(draws) / len(cols)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 25.0, (r, counts.tolist())  # far beyond the 99.99th percentile for 6 dof
    assert pick_positive(torch.zeros(3, 4, dtype=torch.bool), gen).tolist() == [0, 0, 0]


def test_a_shared_positive_index_gives_the_loss_and_the_draw_of_the_mask_alone():
    """emergentbridge finds a step's positives once (`PositiveIndex`) for the loss, the draw and
    the rows kept; each gives what it gives from the mask alone."""
    pos = torch.rand(30, 50, generator=torch.Generator().manual_seed(3)) < 0.1
    pos[4] = False
    index = PositiveIndex.of(pos)
    rows_, cols = pos.nonzero(as_tuple=True)
    assert torch.equal(index.rows, rows_) and torch.equal(index.cols, cols)
    assert torch.equal(index.count, pos.sum(dim=1)) and torch.equal(index.count > 0, pos.any(dim=1))
    Z, Y = rows(30, 8, 4).float().requires_grad_(), rows(50, 8, 5).float()
    alone, shared = MultiPositiveInfoNCE(0.1)(Z, Y, pos)["loss"], MultiPositiveInfoNCE(0.1)(Z, Y, pos, index)["loss"]
    assert torch.equal(alone, shared)
    assert torch.equal(*(torch.autograd.grad(loss, Z)[0] for loss in (alone, shared)))
    draws = [pick_positive(pos, torch.Generator().manual_seed(6), i) for i in (None, index)]
    assert torch.equal(*draws) and bool(pos[torch.arange(30), draws[0]][index.count > 0].all())


@pytest.mark.parametrize("B, C, ids", [(40, 70, 9), (40, 70, 1_000), (1, 5, 3), (0, 6, 4), (7, 0, 4)])
def test_positive_index_from_ids_equals_the_index_of_the_mask(B, C, ids):
    """`PositiveIndex.of_ids` gives the very tensors `of` gives on the mask q == g (rows, cols
    row-major with each row's columns ascending, counts as int64), without the mask: ids repeated
    on both sides (9 ids: many positives a row), mostly unique (rows without a positive), empty
    sides; and `mask` gives the mask back."""
    gen = torch.Generator().manual_seed(B * 7 + C + ids)
    q, g = torch.randint(0, ids, (B,), generator=gen), torch.randint(0, ids, (C,), generator=gen)
    pos = q[:, None] == g[None, :]
    want, got = PositiveIndex.of(pos), PositiveIndex.of_ids(q, g)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert torch.equal(got.mask(C), pos)


def test_shuffled_batches_cover_every_index_once_per_pass_and_the_stream_runs_on():
    gen = torch.Generator().manual_seed(0)
    s = Shuffled(10, "cpu")
    for _ in range(3):  # three passes of batches 4, 4, 2
        got = [s.batch(4, gen) for _ in range(3)]
        assert [len(b) for b in got] == [4, 4, 2]
        assert sorted(torch.cat(got).tolist()) == list(range(10))
    st = Shuffled(10, "cpu")
    got = torch.cat([st.stream(4, gen) for _ in range(5)])  # 20 indices: two whole passes
    assert [len(st.stream(4, gen)) for _ in range(7)] == [4] * 7
    assert sorted(got[:10].tolist()) == list(range(10)) and sorted(got[10:].tolist()) == list(range(10))


def test_contrastive_sample_sees_every_source_row_once_per_epoch_with_its_partner():
    rng = np.random.default_rng(0)
    p, q, B = 23, 31, 5
    pid_x = torch.as_tensor(rng.integers(0, 12, p))
    pid_y = torch.as_tensor(rng.permutation(q) % 12)
    lab = torch.full((p,), -1)
    partner = torch.as_tensor([int(np.flatnonzero(pid_y.numpy() == v)[0]) for v in pid_x.numpy()])
    data = ContrastiveData(torch.randn(p, 4), torch.randn(q, 4), pid_x, lab, pid_y, torch.full((q,), -1), partner)
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        seen = []
        for _ in range(data.steps_per_epoch(B)):
            ix, iy, pos = data.sample(B, gen)
            seen += ix.tolist()
            assert set(partner[ix].tolist()) <= set(iy.tolist())  # every row's instance partner is a candidate
            assert len(set(iy.tolist())) == len(iy) and len(iy) >= B  # unique candidates, at least B
            want = PositiveIndex.of(relevance_t(pid_x[ix], lab[ix], pid_y[iy], data.lab_y[iy]))
            assert all(torch.equal(a, b) for a, b in zip(pos, want, strict=True))  # every row paired: from the ids
        assert sorted(seen) == list(range(p))


def test_fused_adamw_matches_torch_reference_adamw():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(16, 8), torch.nn.Linear(16, 8)
    b.load_state_dict(a.state_dict())
    opt_a = adamw(a.parameters(), 1e-2, 1e-3)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2, weight_decay=1e-3, foreach=False)
    assert opt_a.defaults["fused"] is True
    for step in range(20):
        x = torch.randn(32, 16, generator=torch.Generator().manual_seed(step))
        for m, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            (m(x) ** 2).mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_class_targets_in_float32_are_the_float64_targets_rounded():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((40, 6)).astype(np.float32)
    labels = rng.integers(0, 4, 40)
    P = Pairing(src=np.arange(12), tgt=np.where(np.arange(12) % 3 == 0, np.arange(12), -1),
                label=rng.integers(0, 4, 12), tgt_rows=np.arange(0, 40, 2))
    t64, t32 = P.targets(Y, labels), P.targets(Y, labels, np.float32)
    assert t64.dtype == np.float64 and t32.dtype == np.float32
    assert np.array_equal(t32, t64.astype(np.float32))
    c = int(P.label[1])
    rows = P.tgt_rows[labels[P.tgt_rows] == c]
    assert np.allclose(t64[1], Y[rows].astype(np.float64).mean(axis=0))
