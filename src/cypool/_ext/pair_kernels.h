/* Planar pooling over 2 x 2 windows at stride 2 x 2 (no padding or
 * dilation) of float32 planes whose output rows hold at most 8 values
 * (e.g. 14 x 14 -> 7 x 7, the last stage of many networks): max, max with
 * indices and average, one output row per step in AVX-512 registers; and
 * max over 3 x 3 windows at stride 2 x 2 of rows of at most 7 outputs.  At
 * such widths the other paths spend their time on short vectors (the
 * 128-bit tiling kernels) or on the gathers of a tap table (with indices).
 *
 * Each step loads the two input rows of an output row (16 lanes each, of
 * which the 2*OW columns the windows read are used) and separates even and
 * odd columns with one two-source permute per parity: lanes 0-7 hold row
 * 0's, lanes 8-15 row 1's.
 *
 * Max, rows first, as PyTorch's scan: each row's pair is reduced with
 * PyTorch's rule (the odd column is taken when it is larger or NaN), then
 * row 1's result against row 0's by the same rule.  That is the scan's
 * choice: the first maximum in row-major order (a tie keeps the earlier
 * operand at every step), and a NaN in row 1 beats anything in row 0
 * while within a row the later NaN wins, so the last NaN in scan order is
 * the result, as in PyTorch's loop.  The flat index is the window's first
 * tap plus the chosen column (+1) and row (+w), kept in vector lanes
 * (int32 within the two rows, w < 2**31, then widened and offset in
 * int64).
 *
 * Average: the other paths' sum, from +0 in scan order
 * (((0 + a) + b) + c) + d, divided by dv.
 *
 * x: the slice's first input row; rs: input row stride (elements); OH, OW
 * (<= 8): output rows and columns; o/os, oi/js: outputs and indices with
 * their row strides; b0: the slice's first flat index; w: the input row
 * length (for the flat index). */
#ifndef CYPOOL_PAIR_KERNELS_H
#define CYPOOL_PAIR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define CYPOOL_HAVE_PAIR 1

/* 16 floats from p, of which the lanes in m are used: a plain load when the
 * 64 bytes lie in one 4 KiB page (mapped, since the first lane is; the
 * unused lanes are ignored), which the hardware prefetcher follows (masked
 * loads measured 0.5x from memory), else a masked load, which reads
 * nothing past the lanes in m. */
#define CYPOOL_PAIR_LOAD(m, p)                                                    \
    ((((uintptr_t)(p)) & 4095u) <= 4096u - 64u ? _mm512_loadu_ps(p)               \
                                              : _mm512_maskz_loadu_ps((m), (p)))

#define CYPOOL_PAIR_SETUP                                                         \
    const __mmask16 lm = (__mmask16)((1u << (2 * OW)) - 1u);                      \
    const __mmask16 om = (__mmask16)((1u << OW) - 1u);                            \
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,               \
                                         16, 18, 20, 22, 24, 26, 28, 30);         \
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15,               \
                                         17, 19, 21, 23, 25, 27, 29, 31);         \
    ptrdiff_t oh

/* e: even columns, d: odd columns of output row oh's two input rows */
#define CYPOOL_PAIR_ROWS(e, d)                                                    \
    const float* a_ = x + 2 * oh * rs;                                            \
    __m512 r0_ = CYPOOL_PAIR_LOAD(lm, a_);                                        \
    __m512 r1_ = CYPOOL_PAIR_LOAD(lm, a_ + rs);                                   \
    __m512 e = _mm512_permutex2var_ps(r0_, ev, r1_);                              \
    __m512 d = _mm512_permutex2var_ps(r0_, od, r1_)

/* PyTorch's rule, v over m: larger or NaN */
#define CYPOOL_PAIR_TAKES(v, m)                                                   \
    ((__mmask16)(_mm512_cmp_ps_mask((v), (m), _CMP_GT_OQ)                         \
                 | _mm512_cmp_ps_mask((v), (v), _CMP_UNORD_Q)))

/* row 1's lanes (8-15) moved to lanes 0-7 */
#define CYPOOL_PAIR_HI(v) _mm512_shuffle_f32x4((v), (v), _MM_SHUFFLE(3, 2, 3, 2))

static inline void cypool_pair_max_f32(const float* x, ptrdiff_t rs,
        ptrdiff_t OH, ptrdiff_t OW, float* o, ptrdiff_t os) {
    CYPOOL_PAIR_SETUP;
    for (oh = 0; oh < OH; oh++) {
        CYPOOL_PAIR_ROWS(e, d);
        __m512 h = _mm512_mask_blend_ps(CYPOOL_PAIR_TAKES(d, e), e, d);
        __m512 h1 = CYPOOL_PAIR_HI(h);
        _mm512_mask_storeu_ps(o + oh * os, om,
                              _mm512_mask_blend_ps(CYPOOL_PAIR_TAKES(h1, h), h, h1));
    }
}

static inline void cypool_pair_argmax_f32(const float* x, ptrdiff_t rs,
        ptrdiff_t OH, ptrdiff_t OW, float* o, ptrdiff_t os, int64_t* oi,
        ptrdiff_t js, int64_t b0, int64_t w) {
    CYPOOL_PAIR_SETUP;
    /* each lane's first tap within the window pair's rows: 2j (row 0),
     * w + 2j (row 1) */
    const int32_t w32 = (int32_t)w;
    const __m512i first = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,
                                            w32, w32 + 2, w32 + 4, w32 + 6,
                                            w32 + 8, w32 + 10, w32 + 12, w32 + 14);
    const __m512i one = _mm512_set1_epi32(1);
    __m512i base = _mm512_set1_epi64(b0);
    const __m512i step = _mm512_set1_epi64(2 * w);
    for (oh = 0; oh < OH; oh++) {
        CYPOOL_PAIR_ROWS(e, d);
        /* each row: the odd column if larger or NaN */
        __mmask16 tc = CYPOOL_PAIR_TAKES(d, e);
        __m512 h = _mm512_mask_blend_ps(tc, e, d);
        __m512i hi = _mm512_mask_add_epi32(first, tc, first, one);
        /* row 1's result against row 0's */
        __m512 h1 = CYPOOL_PAIR_HI(h);
        __m512i hi1 = _mm512_shuffle_i32x4(hi, hi, _MM_SHUFFLE(3, 2, 3, 2));
        __mmask16 tr = CYPOOL_PAIR_TAKES(h1, h);
        __m512 m = _mm512_mask_blend_ps(tr, h, h1);
        __m512i fi = _mm512_mask_blend_epi32(tr, hi, hi1);
        __m512i iv = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(fi)),
                                      base);
        _mm512_mask_storeu_ps(o + oh * os, om, m);
        _mm512_mask_storeu_epi64(oi + oh * js, (__mmask8)om, iv);
        base = _mm512_add_epi64(base, step);
    }
}

static inline void cypool_pair_avg_f32(const float* x, ptrdiff_t rs,
        ptrdiff_t OH, ptrdiff_t OW, float* o, ptrdiff_t os, float dv) {
    CYPOOL_PAIR_SETUP;
    const __m512 zero = _mm512_setzero_ps(), dvv = _mm512_set1_ps(dv);
    for (oh = 0; oh < OH; oh++) {
        CYPOOL_PAIR_ROWS(e, d);
        /* lanes 0-7: ((0 + a) + b) + c) + d, a b row 0's taps, c d row 1's */
        __m512 s = _mm512_add_ps(_mm512_add_ps(zero, e), d);
        s = _mm512_add_ps(s, CYPOOL_PAIR_HI(e));
        s = _mm512_add_ps(s, CYPOOL_PAIR_HI(d));
        _mm512_mask_storeu_ps(o + oh * os, om, _mm512_div_ps(s, dvv));
    }
}
/* 3 x 3 windows at stride 2 x 2, values: output rows of at most 7 (so that
 * window j's last column, 2j + 2, lies in the same 16 lanes as its row).
 * Two input rows per step, one in each half (lanes 0-6 and 8-14), each
 * reduced to its row maxima (columns 2j, 2j+1, 2j+2 by PyTorch's rule, in
 * that order); an output row is its three window rows' maxima by the same
 * rule, rows in order: rows first, as the max with indices above.  Row
 * 2oh + 2 serves output rows oh and oh + 1 and is reduced once.  lm: the
 * 2*OW + 1 columns the windows read. */
static inline void cypool_pair3_max_f32(const float* x, ptrdiff_t rs,
        ptrdiff_t OH, ptrdiff_t OW, float* o, ptrdiff_t os) {
    const __mmask16 lm = (__mmask16)((1u << (2 * OW + 1)) - 1u);
    const __mmask16 om = (__mmask16)((1u << OW) - 1u);
    const __m512i c0 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14,
                                         16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i c1 = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15,
                                         17, 19, 21, 23, 25, 27, 29, 31);
    const __m512i c2 = _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 0,
                                         18, 20, 22, 24, 26, 28, 30, 16);
    __m512 r, m, v, top;
    ptrdiff_t oh;
#define CYPOOL_PAIR3_ROWMAX(out, ra, rb) do {                                     \
        __m512 t0_ = _mm512_permutex2var_ps((ra), c0, (rb));                      \
        __m512 t1_ = _mm512_permutex2var_ps((ra), c1, (rb));                      \
        __m512 t2_ = _mm512_permutex2var_ps((ra), c2, (rb));                      \
        t0_ = _mm512_mask_blend_ps(CYPOOL_PAIR_TAKES(t1_, t0_), t0_, t1_);        \
        (out) = _mm512_mask_blend_ps(CYPOOL_PAIR_TAKES(t2_, t0_), t0_, t2_);      \
    } while (0)
    /* row 0's maxima, in lanes 0-7 */
    r = CYPOOL_PAIR_LOAD(lm, x);
    CYPOOL_PAIR3_ROWMAX(top, r, r);
    for (oh = 0; oh < OH; oh++) {
        const float* a = x + (2 * oh + 1) * rs;
        __m512 ra = CYPOOL_PAIR_LOAD(lm, a), rb = CYPOOL_PAIR_LOAD(lm, a + rs);
        CYPOOL_PAIR3_ROWMAX(v, ra, rb);          /* rows 2oh+1 | 2oh+2 */
        m = _mm512_mask_blend_ps(CYPOOL_PAIR_TAKES(v, top), top, v);
        v = CYPOOL_PAIR_HI(v);
        m = _mm512_mask_blend_ps(CYPOOL_PAIR_TAKES(v, m), m, v);
        _mm512_mask_storeu_ps(o + oh * os, om, m);
        top = v;
    }
#undef CYPOOL_PAIR3_ROWMAX
}
#else
#define CYPOOL_HAVE_PAIR 0
/* never called (CYPOOL_HAVE_PAIR is 0): the symbols _pool.pyx names */
static inline void cypool_pair_max_f32(const float* x, ptrdiff_t rs,
        ptrdiff_t OH, ptrdiff_t OW, float* o, ptrdiff_t os) {
    (void)x; (void)rs; (void)OH; (void)OW; (void)o; (void)os;
}
static inline void cypool_pair_argmax_f32(const float* x, ptrdiff_t rs,
        ptrdiff_t OH, ptrdiff_t OW, float* o, ptrdiff_t os, int64_t* oi,
        ptrdiff_t js, int64_t b0, int64_t w) {
    (void)x; (void)rs; (void)OH; (void)OW; (void)o; (void)os; (void)oi;
    (void)js; (void)b0; (void)w;
}
static inline void cypool_pair_avg_f32(const float* x, ptrdiff_t rs,
        ptrdiff_t OH, ptrdiff_t OW, float* o, ptrdiff_t os, float dv) {
    (void)x; (void)rs; (void)OH; (void)OW; (void)o; (void)os; (void)dv;
}
static inline void cypool_pair3_max_f32(const float* x, ptrdiff_t rs,
        ptrdiff_t OH, ptrdiff_t OW, float* o, ptrdiff_t os) {
    (void)x; (void)rs; (void)OH; (void)OW; (void)o; (void)os;
}
#endif

#endif
