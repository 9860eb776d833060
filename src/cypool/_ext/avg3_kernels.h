/* Averages of whole 3 x 3 windows at W stride 1 (the same-size average,
 * k3s1p1) along an output row, in vector registers: float32 and float64,
 * AVX-512 (16 and 8 lanes) or AVX2 (8 and 4 lanes).  Each vector of
 * outputs is the sum from +0 of its nine taps in scan order, ((((0 + r0[j]) + r0[j+1]) + r0[j+2]) + r1[j]) ...
 * + r2[j+2], divided by dv (mul: multiplied by dv, a power of two's exact
 * reciprocal), which is the order and rounding of the other paths, so the
 * results are theirs bit for bit.  The compiled loop of those paths
 * (_asq) runs the same arithmetic with gcc's peeled and remainder loops
 * around it; these kernels measured 1.2-1.27x over it on (32, 64, 112,
 * 112) float32 into out= (1 and 2 threads) in the AVX-512 build, 1.13x
 * float64; 1.13-1.14x float32 and 1.15-1.18x float64 in the AVX2 build.
 *
 * o: n outputs (n >= the lane count); r0, r1, r2: the windows' three input
 * rows, each at the first tap of output 0 (n + 2 elements are read from
 * each).  A row that is not a multiple of the lane count ends with one
 * vector that overlaps the previous one and stores the same values again. */
#ifndef CYPOOL_AVG3_KERNELS_H
#define CYPOOL_AVG3_KERNELS_H

#include <stddef.h>

/* L: lanes of V */
#define CYPOOL_AVG3_ROW(V, L, LOAD, STORE, ADD, MUL, DIV, SET1, ZERO)             \
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

/* Both functions at vector width W (512 or 256 bits): LF float32 lanes,
 * LD float64 lanes. */
#define CYPOOL_AVG3_FUNCS(W, LF, LD)                                              \
static inline void cypool_avg3_f32(float* o, const float* r0, const float* r1,   \
                                   const float* r2, ptrdiff_t n, float dv,       \
                                   int mul) {                                    \
    CYPOOL_AVG3_ROW(__m##W, LF, _mm##W##_loadu_ps, _mm##W##_storeu_ps,           \
                    _mm##W##_add_ps, _mm##W##_mul_ps, _mm##W##_div_ps,           \
                    _mm##W##_set1_ps, _mm##W##_setzero_ps)                       \
}                                                                                \
static inline void cypool_avg3_f64(double* o, const double* r0, const double* r1, \
                                   const double* r2, ptrdiff_t n, double dv,     \
                                   int mul) {                                    \
    CYPOOL_AVG3_ROW(__m##W##d, LD, _mm##W##_loadu_pd, _mm##W##_storeu_pd,        \
                    _mm##W##_add_pd, _mm##W##_mul_pd, _mm##W##_div_pd,           \
                    _mm##W##_set1_pd, _mm##W##_setzero_pd)                       \
}

#if defined(__AVX512F__)
#include <immintrin.h>
#define CYPOOL_HAVE_AVG3 1
CYPOOL_AVG3_FUNCS(512, 16, 8)

#elif defined(__AVX2__)
#include <immintrin.h>
#define CYPOOL_HAVE_AVG3 1
CYPOOL_AVG3_FUNCS(256, 8, 4)

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
