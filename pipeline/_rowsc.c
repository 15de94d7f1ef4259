/* Row-wise passes over float32 embeddings (embridge/rows.py loads them through ctypes).

   l2_normalize and collapse_rows (methods/base.py, methods/c3.py) divide each row by its norm in
   float64 and round to float32; the checks (store/checks.py) look for rows holding NaN/Inf or only
   zeros. numpy does the first in four passes over float64 temporaries (a cast, the squares, their
   sum, the division); here it is one pass over each row while it sits in cache. bench/rows.py, 20,000
   x 1,024 on two threads of an AMD EPYC Zen 4: 10.0 against 15.0 ms (l2_normalize), 19.7 against
   34.5 (collapse), 4.3 against 14.0 for the checks (one thread).

   The bits are numpy's: the sum of squares is numpy's pairwise summation (pairwise_sum in
   numpy/_core/src/umath/loops_utils.h.src: below 8 terms in order; up to 128 in eight running sums
   combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the tail; above 128 the two
   halves split at a multiple of 8), which np.linalg.norm(U, axis=1) runs over each float64 row;
   squares of float32 numbers are exact in float64; the quotient is one float64 division, rounded
   to float32 as numpy's cast does. setup.py compiles without fused multiply-adds (-ffp-contract=off),
   so the additions round as numpy's do. rows.py's tests compare both bit for bit. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

/* numpy's pairwise sum of a[i] * a[i] in float64; a float32 (sumsq_f) or float64 (sumsq_d) */
#define PAIRWISE_SUMSQ(NAME, T)                                                                \
    static double NAME(const T *a, int64_t n) {                                                \
        if (n < 8) {                                                                           \
            double res = 0.;                                                                   \
            for (int64_t i = 0; i < n; i++) {                                                  \
                double x = a[i];                                                               \
                res += x * x;                                                                  \
            }                                                                                  \
            return res;                                                                        \
        }                                                                                      \
        if (n <= 128) {                                                                        \
            double r[8];                                                                       \
            for (int j = 0; j < 8; j++) {                                                      \
                double x = a[j];                                                               \
                r[j] = x * x;                                                                  \
            }                                                                                  \
            int64_t i;                                                                         \
            for (i = 8; i < n - (n % 8); i += 8)                                               \
                for (int j = 0; j < 8; j++) {                                                  \
                    double x = a[i + j];                                                       \
                    r[j] += x * x;                                                             \
                }                                                                              \
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));    \
            for (; i < n; i++) {                                                               \
                double x = a[i];                                                               \
                res += x * x;                                                                  \
            }                                                                                  \
            return res;                                                                        \
        }                                                                                      \
        int64_t n2 = n / 2;                                                                    \
        n2 -= n2 % 8;                                                                          \
        return NAME(a, n2) + NAME(a + n2, n - n2);                                             \
    }

PAIRWISE_SUMSQ(sumsq_f, float)
PAIRWISE_SUMSQ(sumsq_d, double)

/* np.maximum(sqrt(s), eps): NaN stays NaN */
static inline double norm_of(double s, double eps) {
    double nrm = sqrt(s);
    return nrm < eps ? eps : nrm;
}

/* out row r = X row r / max(|X row r|, eps), in float64, rounded to float32 (rows of d numbers,
   ld and ldo apart). With mean (d float64 numbers): z = float64(that float32 row) - mean, and out =
   z / max(|z|, eps) (renorm) or z, rounded to float32: C^3's collapse. Returns 0, or -1 when the
   buffer for z could not be allocated (nothing written then). */
CLONES int embridge_unit_rows(const float *X, int64_t n, int64_t d, int64_t ld, const double *mean, int renorm,
                              double eps, float *out, int64_t ldo) {
    double *z = NULL;
    if (mean != NULL && (z = malloc((size_t)(d > 0 ? d : 1) * sizeof(double))) == NULL) return -1;
    for (int64_t r = 0; r < n; r++) {
        const float *x = X + r * ld;
        float *o = out + r * ldo;
        double nrm = norm_of(sumsq_f(x, d), eps);
        if (mean == NULL) {
            for (int64_t j = 0; j < d; j++) o[j] = (float)((double)x[j] / nrm);
            continue;
        }
        for (int64_t j = 0; j < d; j++) z[j] = (double)(float)((double)x[j] / nrm) - mean[j];
        if (renorm) {
            double nz = norm_of(sumsq_d(z, d), eps);
            for (int64_t j = 0; j < d; j++) o[j] = (float)(z[j] / nz);
        } else {
            for (int64_t j = 0; j < d; j++) o[j] = (float)z[j];
        }
    }
    free(z);
    return 0;
}

/* out[r] = the sum of the squares of X row r in float64: NaN or Inf exactly where the row holds a
   NaN or an Inf (float32 squares cannot overflow float64), 0 exactly where it holds only zeros
   (the square of the smallest float32 subnormal is a float64 normal). */
CLONES void embridge_row_sumsq(const float *X, int64_t n, int64_t d, int64_t ld, double *out) {
    for (int64_t r = 0; r < n; r++) out[r] = sumsq_f(X + r * ld, d);
}

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rowsc", NULL, -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__rowsc(void) { return PyModule_Create(&module); }
