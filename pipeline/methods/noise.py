"""Gaussian noise for the training loops (EmergentBridge's bridge anchor, C^3's corrupt).

On the CPU, `randn` and `add_noise` (X + sigma * randn, in one pass) draw one 64-bit key from the
fit's torch generator and fill the tensor from a counter-based generator keyed by it (`_noisec.c`
documents the steps: SplitMix64's output function on a Weyl sequence, Box-Muller with float32
polynomials). 0.9 against torch.randn's 3.7 ms a million numbers on an AMD EPYC Zen 4
(`bench/noise.py`), whose serial Mersenne Twister took 0.17 s of a 4.2 s emergentbridge fit in
`bench/fit.py`. Every build and CPU, and the numpy version here (`normal_numpy`, used where the
extension did not build, 22 ms a million), give the same bits, so a seed gives the same fit
everywhere. On an accelerator `randn` is torch.randn on the generator's device (Philox).
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch
from embridge.native import load_c

GAMMA = 0x9E3779B97F4A7C15  # the Weyl increment of the counters (SplitMix64's golden gamma)
_M64 = (1 << 64) - 1
# embridge_normal_add(out, base, n, key, sigma) of the extension `_noisec`, or None (not built or not loadable)
_C_ADD = load_c("embridge.methods._noisec", "embridge_normal_add",
                (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64, ctypes.c_float), None)
USE_C = _C_ADD is not None  # fill in C where it loaded, else numpy (tests switch it)
_CHUNK_PAIRS = 1 << 16  # the numpy path's pairs per pass (bounded temporaries)


def randn(shape: tuple[int, ...] | torch.Size, gen: torch.Generator) -> torch.Tensor:
    """Standard normal float32 numbers of `shape` on the generator's device, advancing `gen`:
    on the CPU one key from it (`draw_key`) and the numbers of that key; elsewhere torch.randn."""
    if gen.device.type != "cpu":
        return torch.randn(shape, generator=gen, device=gen.device)
    out = torch.empty(shape, dtype=torch.float32)
    normal_fill(out.numpy().reshape(-1), draw_key(gen))
    return out


def add_noise(X: torch.Tensor, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """X + sigma * randn(X.shape, gen), a new tensor: for a float32 CPU tensor outside autograd in
    one pass (the same bits: `_noisec.c` rounds as torch does), else by torch's ops."""
    if X.device.type != "cpu" or X.dtype != torch.float32 or (torch.is_grad_enabled() and X.requires_grad):
        return X + sigma * randn(X.shape, gen)
    base = X.contiguous()
    out = torch.empty(X.shape, dtype=torch.float32)
    normal_fill(out.numpy().reshape(-1), draw_key(gen), base.numpy().reshape(-1), sigma)
    return out


def draw_key(gen: torch.Generator) -> int:
    """A key in [0, 2^63 - 1) from the torch generator (one draw of its stream)."""
    return int(torch.randint(0, (1 << 63) - 1, (1,), generator=gen))


def normal_fill(out: np.ndarray, key: int, base: np.ndarray | None = None, sigma: float = 1.0) -> None:
    """Fill the contiguous float32 vector `out` with the numbers of `key` (in C where it loaded);
    given `base` (a float32 vector as long), with base + float32(sigma) * those numbers."""
    for v in (out, base):
        if v is not None and (v.dtype != np.float32 or v.ndim != 1 or not v.flags.c_contiguous or len(v) != len(out)):
            raise ValueError(f"normal_fill: expected contiguous float32 vectors of {len(out)}, got {v.dtype} {v.shape}")
    if USE_C:
        _C_ADD(out.ctypes.data, None if base is None else base.ctypes.data, len(out), key & _M64, sigma)
        return
    for start in range(0, len(out), 2 * _CHUNK_PAIRS):
        z = normal_numpy(min(2 * _CHUNK_PAIRS, len(out) - start), key, start // 2)
        stop = start + len(z)
        out[start:stop] = z if base is None else base[start:stop] + np.float32(sigma) * z


def normal_numpy(n: int, key: int, first_pair: int = 0) -> np.ndarray:
    """numbers first_pair * 2 .. first_pair * 2 + n of `key`, by the steps of `_noisec.c` in numpy
    (the same float32 operations in the same order, so the same bits). n -> (n,) float32."""
    f32, u32, u64 = np.float32, np.uint32, np.uint64
    i = np.arange(first_pair + 1, first_pair + (n + 1) // 2 + 1, dtype=u64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as in C
        z = u64(key & _M64) + i * u64(GAMMA)
        z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
        z = z ^ (z >> u64(31))
    a = (z >> u64(40)).astype(np.int32)
    b = ((z >> u64(16)) & u64(0xFFFFFF)).astype(u32)
    # r = sqrt(-2 ln u1), u1 = (a + 1) 2^-24 = m 2^e, m in [sqrt(1/2), sqrt(2))
    bits = ((a + 1).astype(f32) * f32(2.0**-24)).view(u32)
    e = (bits >> u32(23)).astype(np.int32) - 127
    m = ((bits & u32(0x7FFFFF)) | u32(0x3F800000)).view(f32)
    big = m > f32("1.4142135")
    m, e = np.where(big, m * f32(0.5), m), np.where(big, e + 1, e)
    s = (m - f32(1)) / (m + f32(1))
    ln = e.astype(f32) * f32("0.6931472") + s * _horner(s * s, "0.22222222", "0.2857143", "0.4", "0.6666667", "2.0")
    r = np.sqrt(f32(-2) * ln)
    # theta = 2 pi b 2^-24 = q pi/2 + x, x in [-pi/4, pi/4)
    c = (b + u32(0x200000)) & u32(0xFFFFFF)
    q = c >> u32(22)
    x = ((c & u32(0x3FFFFF)).astype(np.int32) - 0x200000).astype(f32) * f32(2.0**-22) * f32("1.5707964")
    x2 = x * x
    sn = x + (x * x2) * _horner(x2, "2.7557319e-06", "-0.0001984127", "0.008333334", "-0.16666667")
    cs = f32(1) + x2 * _horner(x2, "-2.7557319e-07", "2.4801588e-05", "-0.0013888889", "0.041666668", "-0.5")
    odd = (q & u32(1)) != 0
    cq, sq = np.where(odd, sn, cs), np.where(odd, cs, sn)
    out = np.empty(2 * len(i), f32)
    out[0::2] = r * np.where(((q + u32(1)) & u32(2)) != 0, -cq, cq)
    out[1::2] = r * np.where((q & u32(2)) != 0, -sq, sq)
    return out[:n]


def _horner(x: np.ndarray, *coef: str) -> np.ndarray:
    """((c0 x + c1) x + c2) ... in float32, the coefficients as written in _noisec.c."""
    p = np.full_like(x, np.float32(coef[0]))
    for c in coef[1:]:
        p = p * x + np.float32(c)
    return p
