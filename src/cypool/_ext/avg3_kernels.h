/* Averages of whole 3 x 3 windows at W stride 1 (the same-size average,
 * k3s1p1) along an output row, in AVX-512 registers: float32 (16 lanes) and
 * float64 (8 lanes).  Each vector of outputs is the sum from +0 of its nine
 * taps in scan order, ((((0 + r0[j]) + r0[j+1]) + r0[j+2]) + r1[j]) ...
 * + r2[j+2], divided by dv (mul: multiplied by dv, a power of two's exact
 * reciprocal), which is the order and rounding of the other paths, so the
 * results are theirs bit for bit.  The compiled loop of those paths
 * (_asq) runs the same arithmetic with gcc's peeled and remainder loops
 * around it; these kernels measured 1.2-1.27x over it on (32, 64, 112,
 * 112) float32 into out= (1 and 2 threads), 1.13x float64.
 *
 * o: n outputs (n >= the lane count); r0, r1, r2: the windows' three input
 * rows, each at the first tap of output 0 (n + 2 elements are read from
 * each).  A row that is not a multiple of the lane count ends with one
 * vector that overlaps the previous one and stores the same values again. */
#ifndef CYPOOL_AVG3_KERNELS_H
#define CYPOOL_AVG3_KERNELS_H

#include <stddef.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define CYPOOL_HAVE_AVG3 1

#define CYPOOL_AVG3_ROW(T, V, L, LOAD, STORE, ADD, MUL, DIV, SET1, ZERO)          \
    const V d = SET1(dv);                                                         \
    ptrdiff_t j = 0, k;                                                           \
    for (;;) {                                                                    \
        V s = ADD(ZERO(), LOAD(r0 + j));                                          \
        s = ADD(s, LOAD(r0 + j + 1));                                             \
        s = ADD(s, LOAD(r0 + j + 2));                                             \
        s = ADD(s, LOAD(r1 + j));                                                 \
        s = ADD(s, LOAD(r1 + j + 1));                                             \
        s = ADD(s, LOAD(r1 + j + 2));                                             \
        s = ADD(s, LOAD(r2 + j));                                                 \
        s = ADD(s, LOAD(r2 + j + 1));                                             \
        s = ADD(s, LOAD(r2 + j + 2));                                             \
        STORE(o + j, mul ? MUL(s, d) : DIV(s, d));                                \
        k = j + L;                                                                \
        if (k >= n) break;                                                        \
        j = k + L <= n ? k : n - L;                                               \
    }

static inline void cypool_avg3_f32(float* o, const float* r0, const float* r1,
                                   const float* r2, ptrdiff_t n, float dv, int mul) {
    CYPOOL_AVG3_ROW(float, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps,
                    _mm512_add_ps, _mm512_mul_ps, _mm512_div_ps, _mm512_set1_ps,
                    _mm512_setzero_ps)
}

static inline void cypool_avg3_f64(double* o, const double* r0, const double* r1,
                                   const double* r2, ptrdiff_t n, double dv, int mul) {
    CYPOOL_AVG3_ROW(double, __m512d, 8, _mm512_loadu_pd, _mm512_storeu_pd,
                    _mm512_add_pd, _mm512_mul_pd, _mm512_div_pd, _mm512_set1_pd,
                    _mm512_setzero_pd)
}

#else
#define CYPOOL_HAVE_AVG3 0
static inline void cypool_avg3_f32(float* o, const float* r0, const float* r1,
                                   const float* r2, ptrdiff_t n, float dv, int mul) {
    (void)o; (void)r0; (void)r1; (void)r2; (void)n; (void)dv; (void)mul;
}
static inline void cypool_avg3_f64(double* o, const double* r0, const double* r1,
                                   const double* r2, ptrdiff_t n, double dv, int mul) {
    (void)o; (void)r0; (void)r1; (void)r2; (void)n; (void)dv; (void)mul;
}
#endif

#endif
