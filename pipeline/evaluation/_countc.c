/* The fused scan's counting in AVX-512, called through ctypes (evaluation/counting.py).

   For one score tile S (t, w) (rows `ld` floats apart, columns contiguous) and each row's thresholds
   T[i, 0..m[i]) ascending: out[i, j] += #{g : S[i, g] >= T[i, j]} for the rows counted here
   (G[i] == 0, m[i] > 0; the others are counted on numba's grid), and row_max[i] = max_g S[i, g] for every row (NaN left out). Given the
   running top-k lists (D, I, the tile's query rows and gallery indices), it also merges every row
   of the tile into its list while the row's chunks are in cache: the lists of `counting._topk`
   (score desc, index asc; -inf and NaN never enter), where the scan used to pass the tile again.

   The numba kernel compares every score of a 512-score chunk with every threshold below the chunk's
   maximum: 57 of 61 a score on bench/eval.py's class relevance at 3k x 60k x 512, where a typical
   score is above 9 of them. Here, after every `level` thresholds (counting.COMPACT_EVERY), the
   chunk is compacted to the scores at or above the next threshold (vcompressps into a register,
   then one store): a score below it counts for none of the thresholds above, as they are
   ascending. So the comparisons shrink with the scores left (17.6 a score there; at 10k x 200k, 38
   where numba makes 190, a typical score being above 31 of 201), and the counts stay exact: every
   comparison is the float32 `s >= t` of the numba kernel (false for NaN and for -inf against any
   finite threshold); the thresholds below a chunk's maximum are found by binary search.

   The comparisons a score costs grow with the thresholds below it. A row of more than `tree_min`
   thresholds (counting.C_TREE_MIN; up to TREE_MAX) therefore places each score instead: its
   thresholds laid out as a tree of 16-wide levels (every 256th, every 16th, all of them), a score
   takes one 16-lane compare a level to find #{j : T[j] <= s}, and a histogram of those positions,
   summed from the top at the row's end, gives the counts. Only the scores >= T[0] are placed (the
   chunk compacted to them first). On the real tile of bench/counting.py --data at 10k x 200k x 512
   (~201 thresholds a row) 1.48 ns a score against 1.81 comparing, at 1,000 thresholds 3.0 against
   9.6 (synthetic); below ~120 thresholds the comparisons are faster. The compares are the same
   `s >= t`, so the counts are the same, exactly.

   Built by setuptools as an optional extension: where it does not compile, or the CPU lacks
   AVX-512F (`embridge_count_supported` returns 0), counting.py keeps the numba kernel. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 512
#define MAX_COMPARE (1 << 20) /* thresholds a comparison row holds at most (its work space: 64 bytes each) */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define TARGET __attribute__((target("avx512f,popcnt")))

/* acc[j] += (lane-wise) #{g < n : x[g] >= T[j]} for j < nj; x holds n scores (the lanes past n of
   its last vector masked off). Four thresholds a pass over the scores, counted in int32 lanes that
   are summed once per row (`count_tile_avx512`), not once per pass. */
TARGET static void compare(const float *x, int64_t n, const float *T, int64_t nj, __m512i *acc)
{
    const int64_t full = n & ~(int64_t)15;
    const __mmask16 tail = (__mmask16)((1u << (n - full)) - 1u);
    const __m512i one = _mm512_set1_epi32(1);
    int64_t j = 0;
    for (; j + 4 <= nj; j += 4) {
        const __m512 t0 = _mm512_set1_ps(T[j]), t1 = _mm512_set1_ps(T[j + 1]);
        const __m512 t2 = _mm512_set1_ps(T[j + 2]), t3 = _mm512_set1_ps(T[j + 3]);
        __m512i a0 = acc[j], a1 = acc[j + 1], a2 = acc[j + 2], a3 = acc[j + 3];
        for (int64_t g = 0; g < full; g += 16) {
            const __m512 v = _mm512_loadu_ps(x + g);
            a0 = _mm512_mask_add_epi32(a0, _mm512_cmp_ps_mask(v, t0, _CMP_GE_OQ), a0, one);
            a1 = _mm512_mask_add_epi32(a1, _mm512_cmp_ps_mask(v, t1, _CMP_GE_OQ), a1, one);
            a2 = _mm512_mask_add_epi32(a2, _mm512_cmp_ps_mask(v, t2, _CMP_GE_OQ), a2, one);
            a3 = _mm512_mask_add_epi32(a3, _mm512_cmp_ps_mask(v, t3, _CMP_GE_OQ), a3, one);
        }
        if (tail) {
            const __m512 v = _mm512_maskz_loadu_ps(tail, x + full);
            a0 = _mm512_mask_add_epi32(a0, _mm512_mask_cmp_ps_mask(tail, v, t0, _CMP_GE_OQ), a0, one);
            a1 = _mm512_mask_add_epi32(a1, _mm512_mask_cmp_ps_mask(tail, v, t1, _CMP_GE_OQ), a1, one);
            a2 = _mm512_mask_add_epi32(a2, _mm512_mask_cmp_ps_mask(tail, v, t2, _CMP_GE_OQ), a2, one);
            a3 = _mm512_mask_add_epi32(a3, _mm512_mask_cmp_ps_mask(tail, v, t3, _CMP_GE_OQ), a3, one);
        }
        acc[j] = a0, acc[j + 1] = a1, acc[j + 2] = a2, acc[j + 3] = a3;
    }
    for (; j < nj; j++) {
        const __m512 tj = _mm512_set1_ps(T[j]);
        __m512i a = acc[j];
        for (int64_t g = 0; g < full; g += 16)
            a = _mm512_mask_add_epi32(a, _mm512_cmp_ps_mask(_mm512_loadu_ps(x + g), tj, _CMP_GE_OQ), a, one);
        if (tail)
            a = _mm512_mask_add_epi32(a, _mm512_mask_cmp_ps_mask(tail, _mm512_maskz_loadu_ps(tail, x + full), tj,
                                                                  _CMP_GE_OQ), a, one);
        acc[j] = a;
    }
}

/* dst <- the scores of x[0..n) that are >= t, in order; returns how many. dst holds CHUNK + 16 floats
   (each vector is stored whole, its unused lanes overwritten by the next). */
TARGET static int64_t compact(const float *x, int64_t n, float t, float *dst)
{
    const __m512 tv = _mm512_set1_ps(t);
    int64_t o = 0, g = 0;
    for (; g + 16 <= n; g += 16) {
        const __m512 v = _mm512_loadu_ps(x + g);
        const __mmask16 k = _mm512_cmp_ps_mask(v, tv, _CMP_GE_OQ);
        _mm512_storeu_ps(dst + o, _mm512_maskz_compress_ps(k, v));
        o += _mm_popcnt_u32((unsigned)k);
    }
    if (g < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - g)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(tail, x + g);
        const __mmask16 k = _mm512_mask_cmp_ps_mask(tail, v, tv, _CMP_GE_OQ);
        _mm512_storeu_ps(dst + o, _mm512_maskz_compress_ps(k, v));
        o += _mm_popcnt_u32((unsigned)k);
    }
    return o;
}

/* The maximum of x[0..n), NaN left out (-inf when n == 0 or all NaN). MAXPS returns its second
   operand when either is NaN, so a NaN score never replaces the running maximum. */
TARGET static __m512 chunk_max(const float *x, int64_t n, __m512 acc)
{
    int64_t g = 0;
    for (; g + 16 <= n; g += 16)
        acc = _mm512_max_ps(_mm512_loadu_ps(x + g), acc);
    if (g < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - g)) - 1u);
        acc = _mm512_mask_max_ps(acc, tail, _mm512_maskz_loadu_ps(tail, x + g), acc);
    }
    return acc;
}

/* Merge the scores x[0..n) (gallery indices c[0..n)) into the top-k list Dq, Iq (score desc, index
   asc among ties), whose last entry is (*thr, *thr_i): as `counting._topk` does, score by score in
   order, so the list is that of sorting the union and keeping k. A vector compare finds the scores
   at or above *thr (a superset of those that enter: *thr only rises as they do), and each of those
   is checked against the list as it is then. -inf and NaN never enter. */
TARGET static void merge_chunk(const float *x, const int64_t *c, int64_t n, float *Dq, int64_t *Iq, int64_t k,
                               float *thr, int64_t *thr_i)
{
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int64_t g = 0; g < n; g += 16) {
        const __mmask16 lanes = (n - g >= 16) ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - g)) - 1u);
        const __m512 v = _mm512_maskz_loadu_ps(lanes, x + g);
        unsigned hit = _mm512_mask_cmp_ps_mask(_mm512_mask_cmp_ps_mask(lanes, v, _mm512_set1_ps(*thr), _CMP_GE_OQ),
                                               v, ninf, _CMP_NEQ_OQ);
        while (hit) {
            const int lane = __builtin_ctz(hit);
            hit &= hit - 1u;
            const float s = x[g + lane];
            const int64_t ci = c[g + lane];
            if (!(s >= *thr) || (s == *thr && *thr_i >= 0 && ci > *thr_i))
                continue;
            int64_t j = k - 1; /* insert (s, ci) at its place, dropping the last */
            while (j > 0 && (Dq[j - 1] < s || (Dq[j - 1] == s && Iq[j - 1] > ci))) {
                Dq[j] = Dq[j - 1];
                Iq[j] = Iq[j - 1];
                j--;
            }
            Dq[j] = s;
            Iq[j] = ci;
            *thr = Dq[k - 1];
            *thr_i = Iq[k - 1];
        }
    }
}

/* #{j < n : T[j] <= x} for ascending T (binary search). */
static inline int64_t at_or_below(const float *T, int64_t n, float x)
{
    int64_t lo = 0;
    while (n > 0) {
        const int64_t half = n >> 1;
        if (T[lo + half] <= x) {
            lo += half + 1;
            n -= half + 1;
        } else {
            n = half;
        }
    }
    return lo;
}

#define TREE_MAX 65536 /* thresholds a tree row holds at most: four levels of 16 */

/* The levels of the tree of m >= 1 thresholds: 1 (m <= 16), 2 (<= 256), 3 (<= 4,096) or 4. */
static int tree_depth(int64_t m) { return (m <= 16) ? 1 : (m <= 256) ? 2 : (m <= 4096) ? 3 : 4; }

/* The floats the tree of m thresholds takes: each level's entries, rounded up to a multiple of 16. */
static int64_t tree_floats(int64_t m)
{
    int64_t total = 0, stride = 1;
    for (int k = tree_depth(m); k > 0; k--, stride *= 16)
        total += (((m + stride - 1) / stride) + 15) & ~(int64_t)15;
    return total;
}

/* Lay out the m ascending thresholds T (1 <= m <= TREE_MAX) as a tree of 16-wide levels in space
   (64-byte aligned, `tree_floats(m)` floats); returns its depth L. Level k < L holds every
   16^(L-1-k)-th threshold, in order (the last level holds them all), from lev[k] on, padded with NaN
   to a multiple of 16 (a NaN compares false, so it never counts, even against +inf). */
static int build_tree(const float *T, int64_t m, float *space, float **lev)
{
    const int L = tree_depth(m);
    int64_t stride = 1;
    for (int k = 1; k < L; k++)
        stride *= 16;
    for (int k = 0; k < L; k++, stride /= 16) {
        const int64_t nk = (m + stride - 1) / stride, cap = (nk + 15) & ~(int64_t)15;
        lev[k] = space;
        for (int64_t j = 0; j < cap; j++)
            space[j] = (j < nk) ? T[j * stride] : NAN;
        space += cap;
    }
    return L;
}

/* #{j : T[j] <= x} for a score x >= T[0], on the tree of `build_tree` (depth L, its levels starting
   at lev[0..L)): at each level, one compare of x with the 16 entries under the entry chosen above
   (those <= x are a prefix, as the entries ascend) picks the last one <= x, or, at the last level,
   counts them. Every compare is the `s >= t` of the other kernels, so the count is theirs. */
TARGET static inline __attribute__((always_inline)) unsigned tree_pos(__m512 x, float *const *lev, int L)
{
    unsigned idx = 0;
    for (int k = 0; k + 1 < L; k++)
        idx = 16 * idx + _mm_popcnt_u32((unsigned)_mm512_cmp_ps_mask(_mm512_load_ps(lev[k] + 16 * idx), x, _CMP_LE_OQ)) - 1;
    return 16 * idx + _mm_popcnt_u32((unsigned)_mm512_cmp_ps_mask(_mm512_load_ps(lev[L - 1] + 16 * idx), x, _CMP_LE_OQ));
}

/* hist[4 p + q % 4] += 1 for the p = #{j : T[j] <= x[q]} of each score x[q] (all >= T[0]): four
   histograms, interleaved, so that neighbouring scores landing in one bin do not wait on each
   other's store. L a constant where inlined: the level loop unrolls. */
TARGET static inline __attribute__((always_inline)) void tree_count(const float *x, int64_t n, float *const *lev,
                                                                     int L, int32_t *hist)
{
    int64_t q = 0;
    for (; q + 4 <= n; q += 4) {
        const unsigned p0 = tree_pos(_mm512_set1_ps(x[q]), lev, L), p1 = tree_pos(_mm512_set1_ps(x[q + 1]), lev, L);
        const unsigned p2 = tree_pos(_mm512_set1_ps(x[q + 2]), lev, L), p3 = tree_pos(_mm512_set1_ps(x[q + 3]), lev, L);
        hist[4 * p0]++;
        hist[4 * p1 + 1]++;
        hist[4 * p2 + 2]++;
        hist[4 * p3 + 3]++;
    }
    for (; q < n; q++)
        hist[4 * tree_pos(_mm512_set1_ps(x[q]), lev, L)]++;
}

/* The work space (64-byte aligned): acc (an int32 vector for each threshold of the longest comparison
   row), tree and hist (`tree_floats(mt)` floats, 4 (mt + 1) int32 for the longest tree row, mt
   thresholds). Rows with more than tree_min thresholds (and at most TREE_MAX) are tree rows. rows NULL: no top-k merge (then cols, D, I, k are
   not read). */
TARGET static void count_tile_avx512(const float *S, int64_t ld, int64_t t, int64_t w, const float *T, int64_t ldT,
                                     const int64_t *m, const int64_t *G, int64_t *out, int64_t ldout, float *row_max,
                                     int64_t level, int64_t tree_min, __m512i *acc, float *tree, int32_t *hist,
                                     const int64_t *rows, const int64_t *cols, float *D, int64_t *I, int64_t k)
{
    float buf[2][CHUNK + 16] __attribute__((aligned(64)));
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    if (level < 1)
        level = 1;
    for (int64_t i = 0; i < t; i++) {
        const float *s = S + i * ld;
        const float *Ti = T + i * ldT;
        int64_t *oi = out + i * ldout;
        const int64_t mi = (G[i] == 0) ? m[i] : 0; /* grid rows: only their maximum here */
        int64_t used = 0; /* accumulators in use: the most thresholds any chunk passed */
        float *lev[4];
        const int L = (mi > tree_min && mi <= TREE_MAX) ? build_tree(Ti, mi, tree, lev) : 0; /* 0: comparisons */
        if (L)
            memset(hist, 0, (size_t)(4 * (mi + 1)) * sizeof(int32_t));
        float *Dq = rows ? D + rows[i] * k : NULL;
        int64_t *Iq = rows ? I + rows[i] * k : NULL;
        float thr = rows ? Dq[k - 1] : INFINITY;
        int64_t thr_i = rows ? Iq[k - 1] : 0;
        __m512 rmax = ninf;
        for (int64_t c0 = 0; c0 < w; c0 += CHUNK) {
            const int64_t n = (w - c0 < CHUNK) ? w - c0 : CHUNK;
            const __m512 cm = chunk_max(s + c0, n, ninf);
            const float cmax = _mm512_reduce_max_ps(cm);
            rmax = _mm512_max_ps(cm, rmax);
            if (rows && cmax >= thr) /* else no score of the chunk can enter */
                merge_chunk(s + c0, cols + c0, n, Dq, Iq, k, &thr, &thr_i);
            if (mi == 0)
                continue;
            if (L) { /* the tree: the chunk's scores >= T[0] (the others count for none), each placed */
                if (cmax >= Ti[0]) {
                    const int64_t cn = compact(s + c0, n, Ti[0], buf[0]);
                    if (L == 1)
                        tree_count(buf[0], cn, lev, 1, hist);
                    else if (L == 2)
                        tree_count(buf[0], cn, lev, 2, hist);
                    else if (L == 3)
                        tree_count(buf[0], cn, lev, 3, hist);
                    else
                        tree_count(buf[0], cn, lev, 4, hist);
                }
                continue;
            }
            /* thresholds above the chunk's maximum count nothing in it */
            const int64_t jn = at_or_below(Ti, mi, cmax);
            for (; used < jn; used++)
                acc[used] = _mm512_setzero_si512();
            const float *cur = s + c0;
            int64_t cn = n, lo = 0, b = 0;
            while (jn > lo) {
                const int64_t p = (jn - lo > level) ? lo + level : jn;
                compare(cur, cn, Ti + lo, p - lo, acc + lo);
                if (p >= jn)
                    break;
                cn = compact(cur, cn, Ti[p], buf[b]); /* the rest count only scores >= T[p] */
                cur = buf[b];
                b ^= 1;
                lo = p;
                if (cn == 0)
                    break;
            }
        }
        for (int64_t j = 0; j < used; j++)
            oi[j] += _mm512_reduce_add_epi32(acc[j]);
        int64_t above = 0; /* tree rows: out[j] += #{scores placed past j} */
        for (int64_t p = L ? mi : 0; p >= 1; p--) {
            above += hist[4 * p] + hist[4 * p + 1] + hist[4 * p + 2] + hist[4 * p + 3];
            oi[p - 1] += above;
        }
        row_max[i] = _mm512_reduce_max_ps(rmax);
    }
}

static int supported(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("popcnt");
}
#else
static int supported(void) { return 0; }
#endif

/* 1 where this build has the AVX-512 kernel and the CPU runs it, else 0. */
int embridge_count_supported(void) { return supported(); }

/* See the top of the file. S: t rows of w floats, `ld` apart; T (t, ldT) float32; m, G (t,) int64;
   out (t, ldout) int64; row_max (t,) float32; level: thresholds compared before each compaction.
   rows (t,) int64, the query row of each tile row in D (nq, k) float32 and I (nq, k) int64 (both
   C-contiguous), cols (w,) int64 the gallery index of each column: the top-k lists to merge the tile
   into (rows NULL: none; k >= 1).
   Returns 0; -1 where the kernel is not supported, -2 where a comparison row (G[i] == 0) has more than
   MAX_COMPARE thresholds, -3 where its work space could not be allocated (nothing written then). */
int embridge_count_tile(const float *S, int64_t ld, int64_t t, int64_t w, const float *T, int64_t ldT,
                        const int64_t *m, const int64_t *G, int64_t *out, int64_t ldout, float *row_max, int64_t level,
                        int64_t tree_min, const int64_t *rows, const int64_t *cols, float *D, int64_t *I, int64_t k)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!supported())
        return -1;
    int64_t mc = 1, mt = 0; /* the most thresholds of a comparison row, of a tree row */
    for (int64_t i = 0; i < t; i++) {
        if (G[i] != 0)
            continue;
        if (m[i] > tree_min && m[i] <= TREE_MAX)
            mt = (m[i] > mt) ? m[i] : mt;
        else
            mc = (m[i] > mc) ? m[i] : mc;
    }
    if (mc > MAX_COMPARE)
        return -2;
    const size_t acc_bytes = (size_t)mc * 64, tree_bytes = ((size_t)tree_floats(mt) * sizeof(float) + 63) & ~(size_t)63;
    const size_t hist_bytes = ((size_t)(4 * (mt + 1)) * sizeof(int32_t) + 63) & ~(size_t)63;
    char *space = aligned_alloc(64, acc_bytes + tree_bytes + hist_bytes);
    if (space == NULL)
        return -3;
    count_tile_avx512(S, ld, t, w, T, ldT, m, G, out, ldout, row_max, level, tree_min, (__m512i *)space,
                      (float *)(space + acc_bytes), (int32_t *)(space + acc_bytes + tree_bytes), rows, cols, D, I, k);
    free(space);
    return 0;
#else
    (void)S; (void)ld; (void)t; (void)w; (void)T; (void)ldT; (void)m; (void)G; (void)out; (void)ldout;
    (void)row_max; (void)level; (void)tree_min; (void)rows; (void)cols; (void)D; (void)I; (void)k;
    return -1;
#endif
}

/* A module with no Python functions: importing it locates the shared library for ctypes. */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_countc", NULL, -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__countc(void) { return PyModule_Create(&module); }
