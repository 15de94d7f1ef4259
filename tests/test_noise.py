"""The training loops' Gaussian noise (embridge.methods.noise, _noisec.c): the C kernel and its numpy
version give the same bits; both equal a float64 Box-Muller over SplitMix64 computed with Python
integers (the oracle: Vigna's splitmix64.c, https://prng.di.unimi.it/splitmix64.c, its output
function ported here); the numbers are standard normal; the torch generator drives them."""

from __future__ import annotations

import math
import platform
import shutil

import numpy as np
import pytest
import torch
from embridge.methods import noise
from embridge.methods.training import corrupt_t
from scipy import stats

KEYS = [0, 1, 12345, (1 << 63) - 2, (1 << 64) - 1]


def splitmix64_output(x: int) -> int:
    """The output function of splitmix64.c's next(), on the state x (Python integers, mod 2^64)."""
    m = (1 << 64) - 1
    z = x & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def oracle(n: int, key: int) -> np.ndarray:
    """The first n numbers of `key` in float64: pair i from z = splitmix64(key + (i + 1) gamma), its top 24
    bits a giving u1 = (a + 1) / 2^24, the next 24 bits b the angle 2 pi b / 2^24."""
    out = []
    for i in range((n + 1) // 2):
        z = splitmix64_output(key + (i + 1) * noise.GAMMA)
        a, b = z >> 40, (z >> 16) & 0xFFFFFF
        r = math.sqrt(-2.0 * math.log((a + 1) / 2**24))
        theta = 2.0 * math.pi * b / 2**24
        out += [r * math.cos(theta), r * math.sin(theta)]
    return np.array(out[:n])


def fill(n: int, key: int, use_c: bool, monkeypatch, base: np.ndarray | None = None, sigma: float = 1.0) -> np.ndarray:
    monkeypatch.setattr(noise, "USE_C", use_c)
    out = np.empty(n, dtype=np.float32)
    noise.normal_fill(out, key, base, sigma)
    return out


def test_the_c_kernel_is_built_where_a_compiler_is():
    if platform.machine() != "x86_64" or not shutil.which("cc"):
        pytest.skip("no C compiler here: the numpy version fills")
    assert noise.USE_C, "embridge.methods._noisec was not built or did not load"


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("n", [0, 1, 2, 7, 64, 1001, 2 * noise._CHUNK_PAIRS + 3])
def test_c_and_numpy_give_the_same_bits(n, key, monkeypatch):
    if not noise.USE_C:
        pytest.skip("the C kernel is not built here")
    c = fill(n, key, True, monkeypatch)
    py = fill(n, key, False, monkeypatch)  # chunked: 2 * _CHUNK_PAIRS + 3 spans three passes
    assert c.tobytes() == py.tobytes()
    assert py.tobytes() == noise.normal_numpy(n, key).tobytes()  # one pass, all pairs
    base = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    c = fill(n, key, True, monkeypatch, base, 0.1)
    assert c.tobytes() == fill(n, key, False, monkeypatch, base, 0.1).tobytes()
    assert c.tobytes() == (base + np.float32(0.1) * py).tobytes()


@pytest.mark.parametrize("key", KEYS)
def test_the_numbers_are_box_muller_over_splitmix64(key):
    n = 4001  # odd: the last pair's sine left out
    ours = noise.normal_numpy(n, key)
    want = oracle(n, key)
    # float32 polynomials for ln, sin and cos: within a few float32 ulps of the float64 transform
    np.testing.assert_allclose(ours, want, rtol=0, atol=2e-6 * np.maximum(1.0, np.abs(want)).max())
    np.testing.assert_array_equal(noise.normal_numpy(10, key, first_pair=3), ours[6:16])


def test_the_numbers_are_standard_normal():
    n = 1 << 21
    out = np.empty(n, dtype=np.float32)
    noise.normal_fill(out, 2024)
    x = out.astype(np.float64)
    assert abs(x.mean()) < 5 / math.sqrt(n)
    assert abs(x.var() - 1) < 5 * math.sqrt(2 / n)
    assert stats.kstest(x, "norm").pvalue > 1e-3
    for t in (1.0, 2.0, 3.0):  # the tails, against their binomial spread
        p = 2 * stats.norm.sf(t)
        assert abs((np.abs(x) > t).mean() - p) < 5 * math.sqrt(p * (1 - p) / n), t
    assert np.abs(x).max() <= math.sqrt(48 * math.log(2)) + 1e-5  # u1 >= 2^-24
    assert abs(np.corrcoef(x[0::2], x[1::2])[0, 1]) < 5 / math.sqrt(n / 2)  # the two numbers of a pair
    assert abs(np.corrcoef(x[:-2], x[2:])[0, 1]) < 5 / math.sqrt(n)  # neighbouring pairs


def test_randn_follows_the_torch_generator():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = noise.randn((3, 4, 5), g1), noise.randn((3, 4, 5), g2)
    assert a.shape == (3, 4, 5) and a.dtype == torch.float32
    assert torch.equal(a, b)  # the same seed, the same numbers
    assert not torch.equal(noise.randn((3, 4, 5), g1), a)  # the next call: another key
    key = noise.draw_key(torch.Generator().manual_seed(5))
    np.testing.assert_array_equal(a.numpy().ravel(), noise.normal_numpy(60, key))
    assert torch.equal(g2.get_state(), _after_one_key(5).get_state())  # a call draws one key, nothing else


def _after_one_key(seed: int) -> torch.Generator:
    g = torch.Generator().manual_seed(seed)
    noise.draw_key(g)
    return g


@pytest.mark.parametrize("use_c", [True, False])
@pytest.mark.parametrize("sigma", [0.1, 1 / 3, 2.5])
def test_add_noise_is_torchs_sum_of_the_noise(use_c, sigma, monkeypatch):
    """One pass in C (or numpy) gives the bits of torch's X + sigma * randn: sigma rounded to float32,
    the product and the sum in float32. Strided and autograd inputs go through torch's ops."""
    if use_c and not noise.USE_C:
        pytest.skip("the C kernel is not built here")
    monkeypatch.setattr(noise, "USE_C", use_c)
    X = torch.randn(300, 7, generator=torch.Generator().manual_seed(1))
    want = X + sigma * noise.randn(X.shape, torch.Generator().manual_seed(4))
    assert torch.equal(noise.add_noise(X, sigma, torch.Generator().manual_seed(4)), want)
    assert torch.equal(noise.add_noise(X.T.contiguous().T, sigma, torch.Generator().manual_seed(4)), want)
    W = X.clone().requires_grad_(True)
    out = noise.add_noise(W, sigma, torch.Generator().manual_seed(4))
    assert out.requires_grad and torch.equal(out.detach(), want)
    out.sum().backward()
    assert torch.equal(W.grad, torch.ones_like(X))


def test_corrupt_adds_sigma_times_the_noise():
    X = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    got = corrupt_t(X, 0.3, torch.Generator().manual_seed(9))
    want = X + 0.3 * noise.randn(X.shape, torch.Generator().manual_seed(9))
    assert torch.equal(got, want)
    assert corrupt_t(X, 0.0, torch.Generator()) is X


def test_normal_fill_rejects_what_it_cannot_fill():
    with pytest.raises(ValueError, match="contiguous float32 vectors of 8"):
        noise.normal_fill(np.empty(8, dtype=np.float64), 1)
    with pytest.raises(ValueError, match="contiguous float32 vectors of 8"):
        noise.normal_fill(np.empty(16, dtype=np.float32)[::2], 1)
    with pytest.raises(ValueError, match=r"contiguous float32 vectors of 8, got float32 \(7,\)"):
        noise.normal_fill(np.empty(8, dtype=np.float32), 1, np.empty(7, dtype=np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_an_accelerator_randn_is_torchs():
    g1 = torch.Generator(device="cuda").manual_seed(3)
    g2 = torch.Generator(device="cuda").manual_seed(3)
    assert torch.equal(noise.randn((64, 32), g1), torch.randn((64, 32), generator=g2, device="cuda"))
