"""embridge.gemm: the oneDNN products the training heads and the contrastive loss run on the CPU,
against float64 torch (the oracle), with float32 accuracy (a bf16 or tf32 shortcut would miss the
bounds by orders of magnitude); the fallbacks (float64, empty, MODE "torch") run torch's own ops;
`backend()`'s default and its overrides."""

import numpy as np
import pytest
import torch
from embridge import gemm
from embridge.methods.heads import ProjectionHead, ResidualMLP
from embridge.methods.losses import MultiPositiveInfoNCE
from embridge.methods.training import apply, apply_t, unit
from torch import nn
from torch.nn import functional as F

pytestmark = pytest.mark.skipif(not gemm.onednn_available(), reason="this torch has no oneDNN linear op")


@pytest.fixture(autouse=True)
def on_onednn(monkeypatch):
    """These tests check oneDNN's products: pinned, whatever EMBRIDGE_CPU_GEMM says."""
    monkeypatch.setattr(gemm, "MODE", "onednn")


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def fp32_bound(a: torch.Tensor, b: torch.Tensor) -> float:
    """Error bound of a float32 product with k terms: a few k * 2^-24 * sum |a||b| (entrywise)."""
    k = a.shape[1]
    return 4 * k * 2.0**-24 * float((a.abs().double() @ b.abs().double().T).max())


def test_the_product_is_onednn_and_float32_accurate(monkeypatch):
    a, b = randn(300, 512, seed=1), randn(200, 512, seed=2)
    ref = a.double() @ b.double().T
    calls = []
    real = gemm.onednn_linear
    monkeypatch.setattr(gemm, "onednn_linear", lambda *t: calls.append(t) or real(*t))
    out = gemm.mm_nt(a, b)
    assert len(calls) == 1  # the product went to oneDNN, not torch.mm
    assert out.dtype == torch.float32 and out.shape == (300, 200)
    err = float((out.double() - ref).abs().max())
    assert err <= fp32_bound(a, b)
    assert err > 0 or torch.equal(out, torch.mm(a, b.T))  # a real float32 product, not a float64 one
    # the same product from torch.mm agrees to float32 rounding
    torch.testing.assert_close(out, torch.mm(a, b.T), rtol=1e-5, atol=1e-4)


def test_strided_operands_give_the_product_of_their_values():
    a, b, p = randn(64, 96, seed=3), randn(96, 80, seed=4), randn(96, 64, seed=5)  # .T: views, not copies
    torch.testing.assert_close(gemm.mm_nt(a, b.T), (a.double() @ b.double()).float(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(gemm.mm_nt(p.T, b.T), (p.double().T @ b.double()).float(), rtol=1e-5, atol=1e-4)
    with pytest.raises(RuntimeError, match="cannot be multiplied"):  # torch's own message, not oneDNN's
        gemm.mm_nt(a, b)


@pytest.mark.parametrize("d_in, d_out", [(64, 48), (48, 64)])  # dW from dy^T x, and from (x^T dy)^T
def test_linear_value_and_gradients_equal_float64_autograd(d_in, d_out):
    x = randn(128, d_in, seed=5).requires_grad_()
    W = (randn(d_out, d_in, seed=6) / 8).requires_grad_()
    b = randn(d_out, seed=7).requires_grad_()
    dy = randn(128, d_out, seed=8)
    y = gemm.linear(x, W, b)
    assert y.grad_fn is not None and type(y.grad_fn).__name__ == "_LinearBackward"
    ours = torch.autograd.grad(y, (x, W, b), dy)
    x64, W64, b64 = (t.detach().double().requires_grad_() for t in (x, W, b))
    y64 = F.linear(x64, W64, b64)
    ref = torch.autograd.grad(y64, (x64, W64, b64), dy.double())
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    for g, r in zip(ours, ref, strict=True):
        assert g.dtype == torch.float32
        assert g.is_contiguous()  # torch's fused AdamW reads a strided gradient in memory order (below)
        torch.testing.assert_close(g.double(), r, rtol=1e-5, atol=1e-4)


def test_both_orientations_of_dW_give_the_same_bits_and_fused_adamw_needs_contiguous_gradients():
    """dW = dy^T x is computed as (x^T dy)^T where dy is the wider operand (no copy of dy's
    transpose): the same bits as the other orientation here. It is returned contiguous, because
    torch's fused AdamW steps a strided gradient as if it were laid out like its parameter."""
    dy, x = randn(300, 96, seed=20), randn(300, 40, seed=21)
    assert torch.equal(gemm.onednn_linear(x.T, dy.T).T, gemm.onednn_linear(dy.T.contiguous(), x.T))
    W = randn(96, 40, seed=22).requires_grad_()
    (gW,) = torch.autograd.grad(gemm.linear(x, W), W, dy)
    assert gW.is_contiguous()
    # fused AdamW (as `training.adamw` builds it) on that gradient steps as the reference AdamW; on
    # torch 2.13 a strided (x^T dy)^T view here stepped about half the entries the wrong way
    steps = []
    for fused in (True, False):
        p = torch.zeros(96, 40, requires_grad=True)
        p.grad = gW
        torch.optim.AdamW([p], lr=1.0, fused=fused, foreach=False).step()
        steps.append(p.detach())
    torch.testing.assert_close(steps[0], steps[1])


def test_linear_without_bias_and_with_frozen_inputs():
    x, W = randn(20, 10, seed=9), randn(7, 10, seed=10).requires_grad_()
    (gW,) = torch.autograd.grad(gemm.linear(x, W).sum(), W)  # x needs no gradient: dx is not computed
    torch.testing.assert_close(gW, torch.ones(20, 7).T @ x)


def test_fallbacks_run_torch_with_autograd(monkeypatch):
    x64 = randn(12, 6, seed=11).double().requires_grad_()
    W64 = randn(5, 6, seed=12).double().requires_grad_()
    assert torch.autograd.gradcheck(lambda x, W: gemm.linear(x, W), (x64, W64))  # float64: torch's linear
    empty = gemm.linear(torch.zeros(0, 6), randn(5, 6))  # oneDNN rejects empty operands
    assert empty.shape == (0, 5)
    assert gemm.mm_nt(torch.zeros(3, 0), torch.zeros(4, 0)).eq(0).all()
    monkeypatch.setattr(gemm, "MODE", "torch")
    y = gemm.linear(randn(4, 6, seed=13).requires_grad_(), randn(5, 6))
    assert type(y.grad_fn).__name__ != "_LinearBackward"


def test_linear_module_keeps_nn_linear_state_dict():
    torch.manual_seed(0)
    ours = gemm.Linear(16, 8)
    plain = nn.Linear(16, 8)
    plain.load_state_dict(ours.state_dict())  # the same keys and shapes: saved heads load either way
    x = randn(10, 16, seed=14)
    torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-5)
    assert all(isinstance(m, gemm.Linear) for m in ProjectionHead(16, 8, 4).net if isinstance(m, nn.Linear))
    assert isinstance(ResidualMLP(16, 4).fc1, gemm.Linear)


def test_a_row_gets_the_same_bits_in_any_block():
    """Chunked inference (`apply`) equals one pass bit for bit: a row's product does not depend on
    its place in the block or on the block's size (blocks of many rows; a single row runs
    oneDNN's matrix-vector kernel, which may round differently)."""
    head = ProjectionHead(64, 32, 16).eval()
    X = randn(5000, 64, seed=15).numpy()
    whole = head(torch.from_numpy(X)).detach()
    chunked = apply(lambda x: head(x), X, torch.device("cpu"))  # blocks of CPU_INFER_ROWS, the last shorter
    assert isinstance(chunked, np.ndarray) and chunked.shape == (5000, 32)
    np.testing.assert_array_equal(chunked, whole.numpy())
    np.testing.assert_array_equal(head(torch.from_numpy(X[4321:4421])).detach().numpy(), whole[4321:4421].numpy())
    on_device = apply_t(head, torch.from_numpy(X))  # the same blocks, the rows already tensors
    assert torch.equal(on_device, whole)


def test_a_frozen_residual_head_at_every_row_once_equals_it_on_each_gathered_batch():
    """emergentbridge runs each frozen proxy g_b once over all anchor candidates (`apply_t`), and
    normalizes them once, and gathers a step's rows from that, where it used to run g_b and the
    normalization on each step's gathered batch: the same bits, for batches of many rows in any order."""
    g = ResidualMLP(48, 16)
    nn.init.normal_(g.fc2.weight)  # away from the identity it starts at
    g = g.eval().requires_grad_(False)
    Y = randn(9000, 48, seed=16)  # more rows than one CPU block
    at_every_row = apply_t(g, Y)
    gen = torch.Generator().manual_seed(17)
    for batch in (1024, 640, 9000):
        at = torch.randint(0, len(Y), (batch,), generator=gen)
        with torch.no_grad():
            assert torch.equal(at_every_row.index_select(0, at), g(Y.index_select(0, at))), batch
            # and the anchor direction u = normalize(a), also taken once at every candidate
            assert torch.equal(unit(Y).index_select(0, at), unit(Y.index_select(0, at))), batch


def test_infonce_in_float32_agrees_with_float64():
    """The loss node's three products run on oneDNN in float32; value and gradient stay within
    float32 rounding of the float64 computation."""
    B, C, d = 64, 96, 32
    Z, Y = unit(randn(B, d, seed=16)), unit(randn(C, d, seed=17))
    pos = torch.rand(B, C, generator=torch.Generator().manual_seed(18)) < 0.1
    Z32, Y32 = Z.clone().requires_grad_(), Y.clone().requires_grad_()
    Z64, Y64 = Z.double().requires_grad_(), Y.double().requires_grad_()
    l32 = MultiPositiveInfoNCE(0.05)(Z32, Y32, pos)["loss"]
    l64 = MultiPositiveInfoNCE(0.05)(Z64, Y64, pos)["loss"]
    assert l32.item() == pytest.approx(l64.item(), rel=1e-5)
    for g32, g64 in zip(torch.autograd.grad(l32, (Z32, Y32)), torch.autograd.grad(l64, (Z64, Y64)), strict=True):
        torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-5)


def test_every_thread_gets_the_probe_s_answer_while_it_runs(slow_onednn_probe):
    """onednn_available() published False before probing: a second thread asking during the probe
    got False and ran torch.mm, with other roundings. Now every thread gets the probe's answer."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: gemm.onednn_available(), range(4)))
    assert answers == [slow_onednn_probe] * 4


@pytest.mark.parametrize("setting, expected", [(None, "onednn"), ("", "onednn"), ("onednn", "onednn"),
                                               ("torch", "torch"), (" TORCH ", "torch")])
def test_onednn_by_default_and_the_environment_picks_torch(monkeypatch, setting, expected):
    monkeypatch.setattr(gemm, "MODE", "auto")
    if setting is None:
        monkeypatch.delenv(gemm.ENV, raising=False)
    else:
        monkeypatch.setenv(gemm.ENV, setting)
    assert gemm.backend() == expected
    calls = []
    real = gemm.onednn_linear
    monkeypatch.setattr(gemm, "onednn_linear", lambda *t: calls.append(t) or real(*t))
    a, b = randn(40, 24, seed=30), randn(30, 24, seed=31)
    out = gemm.mm_nt(a, b)
    assert len(calls) == (expected == "onednn")  # the product went where backend() said
    torch.testing.assert_close(out.double(), a.double() @ b.double().T, rtol=1e-5, atol=1e-4)
    monkeypatch.setattr(gemm, "MODE", "onednn" if expected == "torch" else "torch")
    assert gemm.backend() != expected  # MODE set in code wins over the environment


def test_a_bad_setting_is_named(monkeypatch):
    from embridge.errors import ConfigError

    monkeypatch.setattr(gemm, "MODE", "auto")
    monkeypatch.setenv(gemm.ENV, "mkl")
    with pytest.raises(ConfigError, match=r"EMBRIDGE_CPU_GEMM is 'mkl': expected 'onednn' or 'torch'"):
        gemm.backend()
    monkeypatch.setattr(gemm, "MODE", "blas")
    with pytest.raises(ConfigError, match=r"embridge.gemm.MODE is 'blas'"):
        gemm.backend()
