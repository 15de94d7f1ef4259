/* Gaussian noise for the training loops on the CPU (methods/noise.py loads it through ctypes).

   torch.randn on the CPU draws every number from one serial Mersenne Twister: 4.5 ns a number on
   an AMD EPYC Zen 4, 0.17 s of a 4.2 s emergentbridge fit in bench/fit.py. Here the numbers come from
   a counter-based generator, so the loop vectorizes: pair i of a call with key k is
   z = splitmix64(k + (i + 1) * GAMMA) (the output function of Steele, Lea & Flood's SplitMix64,
   applied to a Weyl sequence), whose top 24 bits give u1 in (0, 1] and the next 24 an angle; Box and
   Muller's transform turns them into out[2i] = r cos(theta), out[2i + 1] = r sin(theta),
   r = sqrt(-2 ln u1).

   ln and sin/cos are polynomials evaluated in float32 in a fixed order (no library call, no fused
   multiply-add: setup.py compiles with -ffp-contract=off), so every build and CPU gives the same bits,
   and noise.py's numpy version of the same steps (the fallback where this does not build, and the
   tests' oracle) gives them too. ln u1: u1 = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m from
   s = (m - 1) / (m + 1) by its odd series to s^9; the angle is split exactly into a quadrant q and
   x in [-pi/4, pi/4) whose sine and cosine are Taylor polynomials to x^9 and x^10 (truncation below
   1e-7; over 2^21 numbers at most 6.3e-7 from the float64 transform of the same bits, 2.6e-7 relative).
   u1 >= 2^-24 bounds |out| by sqrt(48 ln 2) = 5.77. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define GAMMA 0x9E3779B97F4A7C15ULL

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline void pair(uint64_t key, uint64_t i, float *z0, float *z1) {
    uint64_t z = mix64(key + (i + 1) * GAMMA);
    uint32_t a = (uint32_t)(z >> 40);
    uint32_t b = (uint32_t)(z >> 16) & 0xFFFFFFu;
    /* ln u1, u1 = (a + 1) 2^-24 in (0, 1] */
    float u1 = (float)(int32_t)(a + 1) * 0x1p-24f;
    uint32_t bits;
    memcpy(&bits, &u1, 4);
    int32_t e = (int32_t)(bits >> 23) - 127;
    uint32_t mbits = (bits & 0x7FFFFFu) | 0x3F800000u;
    float m;
    memcpy(&m, &mbits, 4);
    int big = m > 1.4142135f;
    m = big ? m * 0.5f : m;
    e = big ? e + 1 : e;
    float s = (m - 1.0f) / (m + 1.0f);
    float s2 = s * s;
    float p = 0.22222222f;
    p = p * s2 + 0.2857143f;
    p = p * s2 + 0.4f;
    p = p * s2 + 0.6666667f;
    p = p * s2 + 2.0f;
    float ln = (float)e * 0.6931472f + s * p;
    float r = __builtin_sqrtf(-2.0f * ln);
    /* theta = 2 pi b 2^-24 = q pi/2 + x, x in [-pi/4, pi/4) */
    uint32_t c = (b + 0x200000u) & 0xFFFFFFu;
    uint32_t q = c >> 22;
    float x = (float)((int32_t)(c & 0x3FFFFFu) - 0x200000) * 0x1p-22f;
    x = x * 1.5707964f;
    float x2 = x * x;
    float ps = 2.7557319e-06f;
    ps = ps * x2 + -0.0001984127f;
    ps = ps * x2 + 0.008333334f;
    ps = ps * x2 + -0.16666667f;
    float sn = x + (x * x2) * ps;
    float pc = -2.7557319e-07f;
    pc = pc * x2 + 2.4801588e-05f;
    pc = pc * x2 + -0.0013888889f;
    pc = pc * x2 + 0.041666668f;
    pc = pc * x2 + -0.5f;
    float cs = 1.0f + x2 * pc;
    float cq = (q & 1u) ? sn : cs;
    float sq = (q & 1u) ? cs : sn;
    cq = ((q + 1u) & 2u) ? -cq : cq;
    sq = (q & 2u) ? -sq : sq;
    *z0 = r * cq;
    *z1 = r * sq;
}

/* out[0..n) = base[0..n) + sigma * (the standard normal float32 numbers of the call with this key);
   base NULL: the numbers themselves. The float32 product and sum of torch's `base + sigma * z` (sigma
   rounded to float32 first), so the same bits; out may be base. Versions for AVX-512 (with its
   64-bit multiply) and AVX2 where GCC builds them, picked at load time; the same bits from each. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void embridge_normal_add(float *out, const float *base, int64_t n, uint64_t key, float sigma) {
    int64_t half = n / 2;
    if (base == NULL) {
        for (int64_t i = 0; i < half; i++) {
            float z0, z1;
            pair(key, (uint64_t)i, &z0, &z1);
            out[2 * i] = z0;
            out[2 * i + 1] = z1;
        }
    } else {
        for (int64_t i = 0; i < half; i++) {
            float z0, z1;
            pair(key, (uint64_t)i, &z0, &z1);
            out[2 * i] = base[2 * i] + sigma * z0;
            out[2 * i + 1] = base[2 * i + 1] + sigma * z1;
        }
    }
    if (n & 1) {
        float z0, z1;
        pair(key, (uint64_t)half, &z0, &z1);
        out[n - 1] = base == NULL ? z0 : base[n - 1] + sigma * z0;
    }
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_noisec", NULL, -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__noisec(void) { return PyModule_Create(&module); }
