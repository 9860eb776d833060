/* The C loops of the small-plane paths of planar max and average pooling
 * (_pool.pyx, "small planes"): the tap-table kernels (forward, average
 * backward), the max backward of contiguous volumes, and the kernels of
 * windows that tile the planes.  They live in C for ``restrict``: the tap
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
 * rows under 128 bytes, or a small plane's positions), and with 16 lanes a
 * 7-output row runs entirely in the scalar remainder.  Measured on the
 * AVX-512 build (AMD EPYC, 14 x 14 float32 planes, 2 x 2 windows): the row
 * kernels 1.6-1.8x faster at 128 bits than at 512, the table kernels
 * 1.1-1.5x faster at 256 bits.  Not inlined: inlined code takes the
 * caller's vector width. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define CYPOOL_NARROW_VEC static __attribute__((noinline, unused, target("prefer-vector-width=128")))
#define CYPOOL_WIDE_VEC static __attribute__((noinline, unused))
#define CYPOOL_MID_VEC static __attribute__((noinline, unused, target("prefer-vector-width=256")))
#else
#define CYPOOL_NARROW_VEC static inline
#define CYPOOL_WIDE_VEC static inline
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

/* Average pooling backward of one volume: the input gradient (``P``
 * elements, contiguous) zeroed, then each output's quotient added to the
 * first cnt[q] taps of its window, outputs in order: PyTorch's
 * accumulation order (its results bit for bit; the row kernels' gather and
 * the reference backend add in another order, within rounding). */
#define CYPOOL_SMALL_AVG_BWD(SFX, TYPE)                                           \
CYPOOL_MID_VEC void cypool_small_avg_bwd_##SFX(                                   \
        const TYPE* CYPOOL_RESTRICT go, const int32_t* CYPOOL_RESTRICT off,       \
        const int32_t* CYPOOL_RESTRICT cnt, const TYPE* CYPOOL_RESTRICT dv,       \
        ptrdiff_t Q, TYPE* CYPOOL_RESTRICT gi, ptrdiff_t P) {                     \
    ptrdiff_t q, t;                                                               \
    memset(gi, 0, (size_t)P * sizeof(TYPE));                                      \
    for (q = 0; q < Q; q++) {                                                     \
        const TYPE v = go[q] / dv[q];                                             \
        for (t = 0; t < cnt[q]; t++)                                              \
            gi[off[t * Q + q]] += v;                                              \
    }                                                                             \
}

CYPOOL_SMALL_AVG_BWD(f32, float)
CYPOOL_SMALL_AVG_BWD(f64, double)

/* Max pooling backward of one volume with contiguous grad_output and index
 * volumes (``Q`` elements) into a contiguous ``P``-element input gradient:
 * zeroed, then each output's gradient added at its index, outputs in order.
 * Returns 1 when an index lies outside the volume (skipped; -1 is skipped
 * silently). */
#define CYPOOL_MAX_BWD_VOL(SFX, TYPE)                                             \
CYPOOL_WIDE_VEC int cypool_max_bwd_vol_##SFX(                                     \
        const TYPE* CYPOOL_RESTRICT go, const int64_t* CYPOOL_RESTRICT idx,       \
        ptrdiff_t Q, TYPE* CYPOOL_RESTRICT gi, ptrdiff_t P) {                     \
    ptrdiff_t q;                                                                  \
    int bad = 0;                                                                  \
    memset(gi, 0, (size_t)P * sizeof(TYPE));                                      \
    for (q = 0; q < Q; q++) {                                                     \
        const int64_t i = idx[q];                                                 \
        if ((uint64_t)i < (uint64_t)P)                                            \
            gi[i] += go[q];                                                       \
        else if (i != -1)                                                         \
            bad = 1;                                                              \
    }                                                                             \
    return bad;                                                                   \
}

CYPOOL_MAX_BWD_VOL(f32, float)
CYPOOL_MAX_BWD_VOL(f64, double)

/* Row kernels for windows that tile the planes (kernel = stride = K in H
 * and W, K = 2 or 3, and KD = 1 or K in D; no padding, no dilation, every
 * window inside the input, contiguous input rows ``rs`` elements apart and
 * depth slices ``ds`` apart): output row oh from input rows oh*K ..
 * oh*K+K-1 of KD slices, each output j from columns j*K .. j*K+K-1.  No
 * offset table: the taps are plain strided loads, in scan order (slice,
 * row, column).
 *
 * Max: the select is a plain ``v > m ? v : m`` (a max instruction; exact
 * for ties and signed zeros) and the taps of every window are also summed:
 * a NaN tap makes its sum NaN, and the function then returns 1 so that the
 * caller recomputes the rows with the exact kernel (PyTorch's rule; so can
 * inf - inf: a harmless false alarm).  Integers need no alarm.
 * Average: taps summed from +0 in scan order, divided by ``dv``. */
#define CYPOOL_TILE_ARGS(TYPE)                                                    \
        const TYPE* CYPOOL_RESTRICT x, ptrdiff_t ds, ptrdiff_t rs, ptrdiff_t OH,  \
        ptrdiff_t OW, TYPE* CYPOOL_RESTRICT o, ptrdiff_t os

/* The exact kernel: PyTorch's rule (TAKES) applied to every tap. */
#define CYPOOL_TILE_RULE(VEC, W, NAME, SFX, TYPE, KD, K, TAKES)                   \
VEC void cypool_tile##W##_##NAME##KD##K##_##SFX(CYPOOL_TILE_ARGS(TYPE)) {         \
    ptrdiff_t oh, j, d, i, k;                                                     \
    for (oh = 0; oh < OH; oh++) {                                                 \
        const TYPE* CYPOOL_RESTRICT a = x + oh * K * rs;                          \
        TYPE* CYPOOL_RESTRICT op = o + oh * os;                                   \
        for (j = 0; j < OW; j++) {                                                \
            TYPE m = a[K * j];                                                    \
            for (d = 0; d < KD; d++)                                              \
                for (i = 0; i < K; i++)                                           \
                    for (k = 0; k < K; k++) {                                     \
                        TYPE v = a[d * ds + i * rs + K * j + k];                  \
                        m = TAKES(v, m) ? v : m;                                  \
                    }                                                             \
            op[j] = m;                                                            \
        }                                                                         \
    }                                                                             \
}

/* Floats: the fast kernel with its NaN alarm, and the exact one (maxx). */
#define CYPOOL_TILE_MAXF(VEC, W, SFX, TYPE, KD, K)                                \
VEC int cypool_tile##W##_max##KD##K##_##SFX(CYPOOL_TILE_ARGS(TYPE)) {             \
    ptrdiff_t oh, j, d, i, k;                                                     \
    int bad = 0;                                                                  \
    for (oh = 0; oh < OH; oh++) {                                                 \
        const TYPE* CYPOOL_RESTRICT a = x + oh * K * rs;                          \
        TYPE* CYPOOL_RESTRICT op = o + oh * os;                                   \
        for (j = 0; j < OW; j++) {                                                \
            TYPE m = a[K * j], al = 0;                                            \
            for (d = 0; d < KD; d++)                                              \
                for (i = 0; i < K; i++)                                           \
                    for (k = 0; k < K; k++) {                                     \
                        TYPE v = a[d * ds + i * rs + K * j + k];                  \
                        m = v > m ? v : m;                                        \
                        al = al + v;                                              \
                    }                                                             \
            op[j] = m;                                                            \
            bad |= al != al;                                                      \
        }                                                                         \
    }                                                                             \
    return bad;                                                                   \
}                                                                                 \
CYPOOL_TILE_RULE(VEC, W, maxx, SFX, TYPE, KD, K, CYPOOL_TAKES_F)

/* Integers: the rule is the plain max; never an alarm. */
#define CYPOOL_TILE_MAXI(VEC, W, SFX, TYPE, KD, K)                                \
CYPOOL_TILE_RULE(VEC, W, maxi, SFX, TYPE, KD, K, CYPOOL_TAKES_I)                  \
static inline int cypool_tile##W##_max##KD##K##_##SFX(CYPOOL_TILE_ARGS(TYPE)) {   \
    cypool_tile##W##_maxi##KD##K##_##SFX(x, ds, rs, OH, OW, o, os);               \
    return 0;                                                                     \
}

#define CYPOOL_TILE_AVG(VEC, W, SFX, TYPE, KD, K)                                 \
VEC void cypool_tile##W##_avg##KD##K##_##SFX(CYPOOL_TILE_ARGS(TYPE), TYPE dv) {   \
    ptrdiff_t oh, j, d, i, k;                                                     \
    for (oh = 0; oh < OH; oh++) {                                                 \
        const TYPE* CYPOOL_RESTRICT a = x + oh * K * rs;                          \
        TYPE* CYPOOL_RESTRICT op = o + oh * os;                                   \
        for (j = 0; j < OW; j++) {                                                \
            TYPE s = 0;                                                           \
            for (d = 0; d < KD; d++)                                              \
                for (i = 0; i < K; i++)                                           \
                    for (k = 0; k < K; k++)                                       \
                        s = s + a[d * ds + i * rs + K * j + k];                   \
            op[j] = s / dv;                                                       \
        }                                                                         \
    }                                                                             \
}

/* Max with indices over 2-d tiling windows (KD = 1) for output rows of 16
 * or more: the winner's tap number kept as a tag as wide as the value (so
 * that the select vectorises with the compare), turned into the flat
 * index once per output.  Only where AVX2 or wider is compiled in: gcc
 * vectorises the select there, but compiles the SSE2 baseline's (and the
 * scalar remainder's) into two data-dependent branches per tap, which
 * measured 8 ms against the table path's 1.1 on (32, 512, 14, 14).
 * 2x2 windows only (K = 2): 3x3 ones, loaded at stride 3, measured 0.26x
 * the row kernels.  Same-process A/B on the AVX-512 build, 1 thread,
 * float32 2x2: (32, 64, 56, 56) 1.51x, (32, 64, 40, 40) 2.27x. */
#if defined(__AVX2__) && defined(__GNUC__) && !defined(__clang__)
#define CYPOOL_HAVE_TILE_ARGMAX 1
#define CYPOOL_TILE_ARGMAX(SFX, TYPE, TAG, K)                                     \
CYPOOL_MID_VEC void cypool_tile_argmax1##K##_##SFX(                               \
        CYPOOL_TILE_ARGS(TYPE), int64_t* CYPOOL_RESTRICT oi, ptrdiff_t js,        \
        int64_t b0, int64_t w, TAG* CYPOOL_RESTRICT tg) {                         \
    ptrdiff_t oh, j, i, k;                                                        \
    (void)ds;                                                                     \
    for (oh = 0; oh < OH; oh++) {                                                 \
        const TYPE* CYPOOL_RESTRICT a = x + oh * K * rs;                          \
        TYPE* CYPOOL_RESTRICT op = o + oh * os;                                   \
        int64_t* CYPOOL_RESTRICT ip = oi + oh * js;                               \
        const int64_t rb = b0 + oh * K * w;                                       \
        for (j = 0; j < OW; j++) {                                                \
            TYPE m = a[K * j];                                                    \
            TAG t = 0;                                                            \
            for (i = 0; i < K; i++)                                               \
                for (k = (i == 0); k < K; k++) {                                  \
                    TYPE v = a[i * rs + K * j + k];                               \
                    int tk = CYPOOL_TAKES_F(v, m);                                \
                    m = tk ? v : m;                                               \
                    t = tk ? (TAG)(i * K + k) : t;                                \
                }                                                                 \
            op[j] = m;                                                            \
            tg[j] = t;                                                            \
        }                                                                         \
        for (j = 0; j < OW; j++)                                                  \
            ip[j] = rb + K * j + (int64_t)(tg[j] / K) * w + tg[j] % K;            \
    }                                                                             \
}
CYPOOL_TILE_ARGMAX(f32, float, int32_t, 2)
CYPOOL_TILE_ARGMAX(f64, double, int64_t, 2)
#define cypool_tile_argmax_f32 cypool_tile_argmax12_f32
#define cypool_tile_argmax_f64 cypool_tile_argmax12_f64
#else
#define CYPOOL_HAVE_TILE_ARGMAX 0
/* never called (CYPOOL_HAVE_TILE_ARGMAX is 0): the symbols _pool.pyx names */
#define CYPOOL_TILE_ARGMAX_STUB(SFX, TYPE, TAG)                                   \
static inline void cypool_tile_argmax_##SFX(CYPOOL_TILE_ARGS(TYPE),               \
        int64_t* oi, ptrdiff_t js, int64_t b0, int64_t w, TAG* tg) {              \
    (void)x; (void)ds; (void)rs; (void)OH; (void)OW; (void)o; (void)os;           \
    (void)oi; (void)js; (void)b0; (void)w; (void)tg;                              \
}
CYPOOL_TILE_ARGMAX_STUB(f32, float, int32_t)
CYPOOL_TILE_ARGMAX_STUB(f64, double, int64_t)
#endif

/* The (KD, K) variants _tiling chooses: 2-d 2x2 and 3x3 at 128-bit vectors
 * (rows under 128 bytes); at the build's width ("w") 2-d 3x3 and the 3-d
 * 2x2x2 and 3x3x3 windows. */
#define CYPOOL_TILE_ALL(KIND, SFX, TYPE)                                          \
    KIND(CYPOOL_NARROW_VEC, , SFX, TYPE, 1, 2)                                    \
    KIND(CYPOOL_NARROW_VEC, , SFX, TYPE, 1, 3)                                    \
    KIND(CYPOOL_WIDE_VEC, w, SFX, TYPE, 1, 3)                                     \
    KIND(CYPOOL_WIDE_VEC, w, SFX, TYPE, 2, 2)                                     \
    KIND(CYPOOL_WIDE_VEC, w, SFX, TYPE, 3, 3)

CYPOOL_TILE_ALL(CYPOOL_TILE_MAXF, f32, float)
CYPOOL_TILE_ALL(CYPOOL_TILE_MAXF, f64, double)
CYPOOL_TILE_ALL(CYPOOL_TILE_MAXI, i8, int8_t)
CYPOOL_TILE_ALL(CYPOOL_TILE_MAXI, u8, uint8_t)
CYPOOL_TILE_ALL(CYPOOL_TILE_MAXI, i16, int16_t)
CYPOOL_TILE_ALL(CYPOOL_TILE_MAXI, u16, uint16_t)
CYPOOL_TILE_ALL(CYPOOL_TILE_MAXI, i32, int32_t)
CYPOOL_TILE_ALL(CYPOOL_TILE_MAXI, i64, int64_t)
CYPOOL_TILE_ALL(CYPOOL_TILE_AVG, f32, float)
CYPOOL_TILE_ALL(CYPOOL_TILE_AVG, f64, double)

/* Dispatch on (wide, KD, K), one of the variants above: wide 2-d windows
 * are 3x3, narrow ones 2-d. */
#define CYPOOL_TILE_CALL(NAME, SFX, ...)                                          \
    (!wide ? (K == 2 ? cypool_tile_##NAME##12_##SFX(__VA_ARGS__)                  \
                     : cypool_tile_##NAME##13_##SFX(__VA_ARGS__))                 \
           : KD == 1 ? cypool_tilew_##NAME##13_##SFX(__VA_ARGS__)                 \
           : K == 2 ? cypool_tilew_##NAME##22_##SFX(__VA_ARGS__)                  \
                    : cypool_tilew_##NAME##33_##SFX(__VA_ARGS__))
#define CYPOOL_TILE_MAX_DISPATCH(SFX, TYPE)                                       \
static inline int cypool_tile_max_##SFX(int wide, ptrdiff_t KD, ptrdiff_t K,      \
                                        CYPOOL_TILE_ARGS(TYPE)) {                 \
    return CYPOOL_TILE_CALL(max, SFX, x, ds, rs, OH, OW, o, os);                  \
}
#define CYPOOL_TILE_FLOAT_DISPATCH(SFX, TYPE)                                     \
CYPOOL_TILE_MAX_DISPATCH(SFX, TYPE)                                               \
static inline void cypool_tile_maxx_##SFX(int wide, ptrdiff_t KD, ptrdiff_t K,    \
                                          CYPOOL_TILE_ARGS(TYPE)) {               \
    CYPOOL_TILE_CALL(maxx, SFX, x, ds, rs, OH, OW, o, os);                        \
}                                                                                 \
static inline void cypool_tile_avg_##SFX(int wide, ptrdiff_t KD, ptrdiff_t K,     \
                                         CYPOOL_TILE_ARGS(TYPE), TYPE dv) {       \
    CYPOOL_TILE_CALL(avg, SFX, x, ds, rs, OH, OW, o, os, dv);                     \
}

CYPOOL_TILE_FLOAT_DISPATCH(f32, float)
CYPOOL_TILE_FLOAT_DISPATCH(f64, double)
CYPOOL_TILE_MAX_DISPATCH(i8, int8_t)
CYPOOL_TILE_MAX_DISPATCH(u8, uint8_t)
CYPOOL_TILE_MAX_DISPATCH(i16, int16_t)
CYPOOL_TILE_MAX_DISPATCH(u16, uint16_t)
CYPOOL_TILE_MAX_DISPATCH(i32, int32_t)
CYPOOL_TILE_MAX_DISPATCH(i64, int64_t)

#endif
