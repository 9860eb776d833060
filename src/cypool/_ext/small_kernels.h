/* Tap-major loops of the small-plane path of max and average pooling
 * (_pool.pyx, "small planes").  They live in C for ``restrict``: the tap
 * loads are indexed (x[off[q]]), and without it the compiler must assume
 * that they may read what the loop writes, so it neither vectorises the
 * select nor if-converts it (a data-dependent branch per tap, 5-10x
 * slower on random data).
 *
 * off: T x Q element offsets (tap-major), fid: T x Q flat indices, cnt: Q
 * in-bounds taps per window (the rest repeat the last one). */
#ifndef CYPOOL_SMALL_KERNELS_H
#define CYPOOL_SMALL_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(_MSC_VER)
#define CYPOOL_RESTRICT __restrict
#else
#define CYPOOL_RESTRICT __restrict__
#endif

/* Vector width of these loops where the build prefers wider ones (the
 * AVX-512 variant asks for 512 bits).  Their inner loops are short (output
 * rows under 64 bytes, or a small plane's positions), and with 16 lanes a
 * 7-output row runs entirely in the scalar remainder.  Measured on the
 * AVX-512 build (AMD EPYC, 14 x 14 float32 planes, 2 x 2 windows): the row
 * kernels 1.6-1.8x faster at 128 bits than at 512, the table kernels
 * 1.1-1.5x faster at 256 bits.  Not inlined: inlined code takes the
 * caller's vector width. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define CYPOOL_NARROW_VEC static __attribute__((noinline, unused, target("prefer-vector-width=128")))
#define CYPOOL_MID_VEC static __attribute__((noinline, unused, target("prefer-vector-width=256")))
#else
#define CYPOOL_NARROW_VEC static inline
#define CYPOOL_MID_VEC static inline
#endif

/* PyTorch's update rule: the new value is larger, or NaN (floats). */
#define CYPOOL_TAKES_F(v, m) (((v) > (m)) | ((v) != (v)))
#define CYPOOL_TAKES_I(v, m) ((v) > (m))

/* The argmax select is written with integer masks: without them, gcc
 * (SSE2 baseline) turns ``tk ? v : m`` into two data-dependent branches per
 * tap, 7x slower on random data. */
#define CYPOOL_SMALL_MAX(SFX, TYPE, UTYPE, TAKES)                                 \
CYPOOL_MID_VEC void cypool_small_max_##SFX(                                       \
        const TYPE* CYPOOL_RESTRICT x, const int32_t* CYPOOL_RESTRICT off,        \
        ptrdiff_t T, ptrdiff_t Q, TYPE* CYPOOL_RESTRICT m) {                      \
    ptrdiff_t t, q;                                                               \
    for (q = 0; q < Q; q++) m[q] = x[off[q]];                                     \
    for (t = 1; t < T; t++) {                                                     \
        const int32_t* CYPOOL_RESTRICT ot = off + t * Q;                          \
        for (q = 0; q < Q; q++) {                                                 \
            TYPE v = x[ot[q]], mm = m[q];                                         \
            m[q] = TAKES(v, mm) ? v : mm;                                         \
        }                                                                         \
    }                                                                             \
}                                                                                 \
CYPOOL_MID_VEC void cypool_small_argmax_##SFX(                                    \
        const TYPE* CYPOOL_RESTRICT x, const int32_t* CYPOOL_RESTRICT off,        \
        const int32_t* CYPOOL_RESTRICT fid, ptrdiff_t T, ptrdiff_t Q,             \
        TYPE* CYPOOL_RESTRICT m, int32_t* CYPOOL_RESTRICT ib) {                   \
    ptrdiff_t t, q;                                                               \
    for (q = 0; q < Q; q++) { m[q] = x[off[q]]; ib[q] = fid[q]; }                 \
    for (t = 1; t < T; t++) {                                                     \
        const int32_t* CYPOOL_RESTRICT ot = off + t * Q;                          \
        const int32_t* CYPOOL_RESTRICT ft = fid + t * Q;                          \
        for (q = 0; q < Q; q++) {                                                 \
            TYPE v = x[ot[q]], mm = m[q];                                         \
            UTYPE vb, mb, mk = (UTYPE)0 - (UTYPE)(TAKES(v, mm));                  \
            int32_t mk32 = (int32_t)0 - (int32_t)(mk & 1);                        \
            memcpy(&vb, &v, sizeof vb);                                           \
            memcpy(&mb, &mm, sizeof mb);                                          \
            mb = (vb & mk) | (mb & ~mk);                                          \
            memcpy(&m[q], &mb, sizeof mb);                                        \
            ib[q] = (ft[q] & mk32) | (ib[q] & ~mk32);                             \
        }                                                                         \
    }                                                                             \
}

CYPOOL_SMALL_MAX(f32, float, uint32_t, CYPOOL_TAKES_F)
CYPOOL_SMALL_MAX(f64, double, uint64_t, CYPOOL_TAKES_F)
CYPOOL_SMALL_MAX(i8, int8_t, uint8_t, CYPOOL_TAKES_I)
CYPOOL_SMALL_MAX(u8, uint8_t, uint8_t, CYPOOL_TAKES_I)
CYPOOL_SMALL_MAX(i16, int16_t, uint16_t, CYPOOL_TAKES_I)
CYPOOL_SMALL_MAX(u16, uint16_t, uint16_t, CYPOOL_TAKES_I)
CYPOOL_SMALL_MAX(i32, int32_t, uint32_t, CYPOOL_TAKES_I)
CYPOOL_SMALL_MAX(i64, int64_t, uint64_t, CYPOOL_TAKES_I)

/* Window sums from +0 over the first cnt[q] taps in scan order, divided by
 * dv[q].  Adding +0 for a repeated tap leaves a sum as it is: a sum begun
 * at +0 is never -0 under round-to-nearest. */
#define CYPOOL_SMALL_AVG(SFX, TYPE)                                               \
CYPOOL_MID_VEC void cypool_small_avg_##SFX(                                        \
        const TYPE* CYPOOL_RESTRICT x, const int32_t* CYPOOL_RESTRICT off,        \
        const int32_t* CYPOOL_RESTRICT cnt, const TYPE* CYPOOL_RESTRICT dv,       \
        ptrdiff_t T, ptrdiff_t Q, TYPE* CYPOOL_RESTRICT s) {                      \
    ptrdiff_t t, q;                                                               \
    const TYPE z = 0;                                                             \
    for (q = 0; q < Q; q++) s[q] = z + x[off[q]];                                 \
    for (t = 1; t < T; t++) {                                                     \
        const int32_t* CYPOOL_RESTRICT ot = off + t * Q;                          \
        for (q = 0; q < Q; q++) {                                                 \
            TYPE v = x[ot[q]];                                                    \
            s[q] = s[q] + (t < cnt[q] ? v : z);                                   \
        }                                                                         \
    }                                                                             \
    for (q = 0; q < Q; q++) s[q] = s[q] / dv[q];                                  \
}

CYPOOL_SMALL_AVG(f32, float)
CYPOOL_SMALL_AVG(f64, double)

/* Row kernels of the small-plane path for windows that tile the plane
 * (kernel = stride = K in H and W, no padding, no dilation, contiguous
 * input rows ``rs`` elements apart): output row oh from input rows
 * oh*K .. oh*K+K-1, each output j from columns j*K .. j*K+K-1.  These need
 * no offset table: the taps are plain strided loads.
 *
 * Max: the select is a plain ``v > m ? v : m`` (a max instruction; exact
 * for ties and signed zeros) and the taps of every window are also summed:
 * a NaN tap makes its sum NaN, and the function then returns 1 so that the
 * caller recomputes the volume with PyTorch's rule (so can inf - inf: a
 * harmless false alarm).  Integers need no alarm.
 * Average: taps summed from +0 in scan order, divided by ``dv``. */
#define CYPOOL_ROWS_MAXF(SFX, TYPE, K)                                            \
CYPOOL_NARROW_VEC int cypool_rows_max##K##_##SFX(                                     \
        const TYPE* CYPOOL_RESTRICT x, ptrdiff_t rs, ptrdiff_t OH, ptrdiff_t OW,  \
        TYPE* CYPOOL_RESTRICT o, ptrdiff_t os) {                                  \
    ptrdiff_t oh, j, i, k;                                                        \
    int bad = 0;                                                                  \
    for (oh = 0; oh < OH; oh++) {                                                 \
        const TYPE* CYPOOL_RESTRICT a = x + oh * K * rs;                          \
        TYPE* CYPOOL_RESTRICT op = o + oh * os;                                   \
        for (j = 0; j < OW; j++) {                                                \
            TYPE m = a[K * j], al = a[K * j];                                     \
            for (k = 1; k < K; k++) {                                             \
                TYPE v = a[K * j + k];                                            \
                m = v > m ? v : m;                                                \
                al = al + v;                                                      \
            }                                                                     \
            for (i = 1; i < K; i++)                                               \
                for (k = 0; k < K; k++) {                                         \
                    TYPE v = a[i * rs + K * j + k];                               \
                    m = v > m ? v : m;                                            \
                    al = al + v;                                                  \
                }                                                                 \
            op[j] = m;                                                            \
            bad |= al != al;                                                      \
        }                                                                         \
    }                                                                             \
    return bad;                                                                   \
}

#define CYPOOL_ROWS_MAXI(SFX, TYPE, K)                                            \
CYPOOL_NARROW_VEC int cypool_rows_max##K##_##SFX(                                     \
        const TYPE* CYPOOL_RESTRICT x, ptrdiff_t rs, ptrdiff_t OH, ptrdiff_t OW,  \
        TYPE* CYPOOL_RESTRICT o, ptrdiff_t os) {                                  \
    ptrdiff_t oh, j, i, k;                                                        \
    for (oh = 0; oh < OH; oh++) {                                                 \
        const TYPE* CYPOOL_RESTRICT a = x + oh * K * rs;                          \
        TYPE* CYPOOL_RESTRICT op = o + oh * os;                                   \
        for (j = 0; j < OW; j++) {                                                \
            TYPE m = a[K * j];                                                    \
            for (i = 0; i < K; i++)                                               \
                for (k = (i == 0); k < K; k++) {                                  \
                    TYPE v = a[i * rs + K * j + k];                               \
                    m = v > m ? v : m;                                            \
                }                                                                 \
            op[j] = m;                                                            \
        }                                                                         \
    }                                                                             \
    return 0;                                                                     \
}

#define CYPOOL_ROWS_AVG(SFX, TYPE, K)                                             \
CYPOOL_NARROW_VEC void cypool_rows_avg##K##_##SFX(                                    \
        const TYPE* CYPOOL_RESTRICT x, ptrdiff_t rs, ptrdiff_t OH, ptrdiff_t OW,  \
        TYPE* CYPOOL_RESTRICT o, ptrdiff_t os, TYPE dv) {                         \
    ptrdiff_t oh, j, i, k;                                                        \
    for (oh = 0; oh < OH; oh++) {                                                 \
        const TYPE* CYPOOL_RESTRICT a = x + oh * K * rs;                          \
        TYPE* CYPOOL_RESTRICT op = o + oh * os;                                   \
        for (j = 0; j < OW; j++) {                                                \
            TYPE s = 0;                                                           \
            for (i = 0; i < K; i++)                                               \
                for (k = 0; k < K; k++)                                           \
                    s = s + a[i * rs + K * j + k];                                \
            op[j] = s / dv;                                                       \
        }                                                                         \
    }                                                                             \
}

#define CYPOOL_ROWS_ALL(SFX, TYPE, MAXKIND)                                       \
    MAXKIND(SFX, TYPE, 2)                                                         \
    MAXKIND(SFX, TYPE, 3)

CYPOOL_ROWS_ALL(f32, float, CYPOOL_ROWS_MAXF)
CYPOOL_ROWS_ALL(f64, double, CYPOOL_ROWS_MAXF)
CYPOOL_ROWS_ALL(i8, int8_t, CYPOOL_ROWS_MAXI)
CYPOOL_ROWS_ALL(u8, uint8_t, CYPOOL_ROWS_MAXI)
CYPOOL_ROWS_ALL(i16, int16_t, CYPOOL_ROWS_MAXI)
CYPOOL_ROWS_ALL(u16, uint16_t, CYPOOL_ROWS_MAXI)
CYPOOL_ROWS_ALL(i32, int32_t, CYPOOL_ROWS_MAXI)
CYPOOL_ROWS_ALL(i64, int64_t, CYPOOL_ROWS_MAXI)
CYPOOL_ROWS_AVG(f32, float, 2)
CYPOOL_ROWS_AVG(f32, float, 3)
CYPOOL_ROWS_AVG(f64, double, 2)
CYPOOL_ROWS_AVG(f64, double, 3)

#endif
