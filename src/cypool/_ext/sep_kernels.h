/* Planar max pooling over 3 x 3 windows at stride 2 x 2 (padding 0 or 1,
 * either rounding), values only: the ResNet-style stem pooling.  Separable,
 * rows first: each input row is reduced once to its row maxima
 * h[j] = max(r[2j-pw], r[2j-pw+1], r[2j-pw+2]) (a ring of three such rows
 * per thread), and an output row is the maximum of the three row maxima of
 * its window rows.  That is 6 taps per output instead of 9, and an input
 * row shared by two windows (every odd one) is reduced once.
 *
 * Rows first keeps PyTorch's choice among equal values (which matters for
 * the sign of a zero): every select keeps the earlier operand on a tie, so
 * a row's maximum is its first maximal element, and the output takes the
 * first row whose maximum is the window's: the first maximal element in
 * scan order (row-major), as PyTorch's loop.  (Columns first would pick
 * the first maximal element in column-major order.)
 *
 * NaN: the selects are plain ``v > m ? v : m`` (vector max instructions),
 * which may drop a NaN, so the row pass also sums its taps; a NaN input
 * makes a sum NaN (so can inf + -inf: a harmless false alarm), the kernel
 * returns 1, and the caller recomputes the block with the exact row
 * kernels.  The outputs it wrote are then overwritten.
 *
 * Every window must have at least one in-bounds row and column (the caller
 * checks). */
#ifndef CYPOOL_SEP_KERNELS_H
#define CYPOOL_SEP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "small_kernels.h"   /* CYPOOL_RESTRICT, CYPOOL_WIDE_VEC */
#include "omp_shim.h"        /* cypool_prefetch */

/* One window's row maximum (columns clipped to [0, W)), its tap sum in s. */
#define CYPOOL_SEP_ONE(TYPE, ISF, r, W, pw, j, m, s) do {                         \
    ptrdiff_t lo_ = 2 * (j) - (pw), hi_ = lo_ + 2, c_;                            \
    TYPE v_;                                                                      \
    if (lo_ < 0) lo_ = 0;                                                         \
    if (hi_ > (W) - 1) hi_ = (W) - 1;                                             \
    m = (r)[lo_]; s = m;                                                          \
    for (c_ = lo_ + 1; c_ <= hi_; c_++) {                                         \
        v_ = (r)[c_]; if (ISF) s += v_; m = v_ > m ? v_ : m;                      \
    }                                                                             \
} while (0)

/* The interior row maximum of window j of row q (q = r - pw: taps q[2j],
 * q[2j+1], q[2j+2]), its tap sum added to s. */
#define CYPOOL_SEP_MID(ISF, q, j, m, s, v) do {                                   \
    m = (q)[2 * (j)]; s = m;                                                      \
    v = (q)[2 * (j) + 1]; if (ISF) s += v; m = v > m ? v : m;                     \
    v = (q)[2 * (j) + 2]; if (ISF) s += v; m = v > m ? v : m;                     \
} while (0)

/* Columns [a, b), one output row, from the running row maximum hp (the
 * window's first row, or none: hp NULL) and ``nr`` (1 or 2) further input
 * rows r1, r2; hp then holds the last row's maxima.  Returns the NaN alarm
 * of the rows read. */
#define CYPOOL_SEP_STEP(SFX, TYPE, ISF)                                           \
static inline int cypool_sep_step_##SFX(TYPE* CYPOOL_RESTRICT q,                  \
        TYPE* CYPOOL_RESTRICT hp, int have, const TYPE* CYPOOL_RESTRICT r1,       \
        const TYPE* CYPOOL_RESTRICT r2, int nr, ptrdiff_t W, ptrdiff_t pw,        \
        ptrdiff_t a, ptrdiff_t b) {                                               \
    ptrdiff_t ja = (pw + 1) / 2, jb = (W - 3 + pw) / 2 + 1, j, n;                 \
    int nf = 0;                                                                   \
    if (W - 3 + pw < 0) jb = 0;                                                   \
    if (ja < a) ja = a;                                                           \
    if (jb > b) jb = b;                                                           \
    if (jb < ja) jb = ja;                                                         \
    n = jb - ja;                                                                  \
    {                                                                             \
        const TYPE* CYPOOL_RESTRICT p1 = r1 + 2 * ja - pw;                        \
        const TYPE* CYPOOL_RESTRICT p2 = r2 + 2 * ja - pw;                        \
        TYPE* CYPOOL_RESTRICT qq = q + (ja - a);                                  \
        TYPE* CYPOOL_RESTRICT hh = hp + (ja - a);                                 \
        if (nr == 2 && have) {                                                    \
            for (j = 0; j < n; j++) {                                             \
                TYPE m1, m2, s1, s2, v, m = hh[j];                                \
                CYPOOL_SEP_MID(ISF, p1, j, m1, s1, v);                            \
                CYPOOL_SEP_MID(ISF, p2, j, m2, s2, v);                            \
                m = m1 > m ? m1 : m;                                              \
                qq[j] = m2 > m ? m2 : m;                                          \
                hh[j] = m2;                                                       \
                if (ISF) nf |= ((s1 + s2) != (s1 + s2));                          \
            }                                                                     \
        } else if (nr == 2) {                                                     \
            for (j = 0; j < n; j++) {                                             \
                TYPE m1, m2, s1, s2, v;                                           \
                CYPOOL_SEP_MID(ISF, p1, j, m1, s1, v);                            \
                CYPOOL_SEP_MID(ISF, p2, j, m2, s2, v);                            \
                qq[j] = m2 > m1 ? m2 : m1;                                        \
                hh[j] = m2;                                                       \
                if (ISF) nf |= ((s1 + s2) != (s1 + s2));                          \
            }                                                                     \
        } else if (have) {                                                        \
            for (j = 0; j < n; j++) {                                             \
                TYPE m1, s1, v, m = hh[j];                                        \
                CYPOOL_SEP_MID(ISF, p1, j, m1, s1, v);                            \
                qq[j] = m1 > m ? m1 : m;                                          \
                hh[j] = m1;                                                       \
                if (ISF) nf |= (s1 != s1);                                        \
            }                                                                     \
        } else {                                                                  \
            for (j = 0; j < n; j++) {                                             \
                TYPE m1, s1, v;                                                   \
                CYPOOL_SEP_MID(ISF, p1, j, m1, s1, v);                            \
                qq[j] = m1;                                                       \
                hh[j] = m1;                                                       \
                if (ISF) nf |= (s1 != s1);                                        \
            }                                                                     \
        }                                                                         \
    }                                                                             \
    for (j = a; j < b; j++) {                                                     \
        TYPE m, m1, s1;                                                           \
        if (j == ja) { j = jb; if (j >= b) break; }                               \
        CYPOOL_SEP_ONE(TYPE, ISF, r1, W, pw, j, m1, s1);                          \
        if (ISF) nf |= (s1 != s1);                                                \
        m = have ? hp[j - a] : m1;                                                \
        if (have) m = m1 > m ? m1 : m;                                            \
        if (nr == 2) {                                                            \
            CYPOOL_SEP_ONE(TYPE, ISF, r2, W, pw, j, m1, s1);                      \
            if (ISF) nf |= (s1 != s1);                                            \
            m = m1 > m ? m1 : m;                                                  \
        }                                                                         \
        q[j - a] = m;                                                             \
        hp[j - a] = m1;                                                           \
    }                                                                             \
    return nf;                                                                    \
}

/* Output rows [oh0, oh1), columns [a, b) of one plane x (H x W, rows rs
 * elements apart); output row i at o + (i - oh0) * os, column a first.
 * ``hp`` holds b - a elements; ``pfr``: input rows ahead to hint (0:
 * none), past the plane those of the next work item's plane, ``nxt``
 * elements on (0: none).  Each output row reads the one or two input rows that its
 * predecessor did not (both in one loop: two streams from memory). */
#define CYPOOL_SEP33(SFX, TYPE, ISF)                                              \
CYPOOL_SEP_STEP(SFX, TYPE, ISF)                                                   \
CYPOOL_WIDE_VEC int cypool_sep33_##SFX(const TYPE* x, ptrdiff_t H, ptrdiff_t W,   \
        ptrdiff_t rs, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t oh0, ptrdiff_t oh1,   \
        ptrdiff_t a, ptrdiff_t b, TYPE* o, ptrdiff_t os, TYPE* hp,                \
        ptrdiff_t pfr, ptrdiff_t nxt) {                                           \
    ptrdiff_t i, y, hy = -1, ylo, yhi, k, off, nb;                                \
    ptrdiff_t c0 = 2 * a - pw, c1 = 2 * (b - 1) - pw + 3;                         \
    int nf = 0, have;                                                             \
    if (c0 < 0) c0 = 0;                                                           \
    if (c1 > W) c1 = W;                                                           \
    nb = (c1 - c0) * (ptrdiff_t)sizeof(TYPE);                                     \
    for (i = oh0; i < oh1; i++) {                                                 \
        ylo = 2 * i - ph; yhi = ylo + 2;                                          \
        if (ylo < 0) ylo = 0;                                                     \
        if (yhi > H - 1) yhi = H - 1;                                             \
        have = hy == ylo;                                                         \
        y = have ? ylo + 1 : ylo;                                                 \
        if (pfr) {                                                                \
            for (k = y + pfr; k <= yhi + pfr && (k < H || (nxt && k < 2 * H)); k++) { \
                const char* p = (const char*)(k < H ? x + k * rs + c0             \
                                              : x + nxt + (k - H) * rs + c0);     \
                for (off = 0; off < nb; off += 64) cypool_prefetch(p + off);      \
            }                                                                     \
        }                                                                         \
        if (y > yhi) {                                                            \
            /* a window of one row, which its predecessor ended with */           \
            TYPE* q_ = o + (i - oh0) * os;                                        \
            for (k = 0; k < b - a; k++) q_[k] = hp[k];                            \
            continue;                                                             \
        }                                                                         \
        if (yhi - y == 2) {                                                       \
            /* no predecessor: the first row alone, then the other two */         \
            nf |= cypool_sep_step_##SFX(o + (i - oh0) * os, hp, 0, x + y * rs,    \
                                       x + y * rs, 1, W, pw, a, b);               \
            have = 1;                                                             \
            y++;                                                                  \
        }                                                                         \
        nf |= cypool_sep_step_##SFX(o + (i - oh0) * os, hp, have, x + y * rs,     \
                                   x + (y + 1) * rs, (int)(yhi - y + 1), W, pw,   \
                                   a, b);                                         \
        hy = yhi;                                                                 \
    }                                                                             \
    return nf;                                                                    \
}

CYPOOL_SEP33(f32, float, 1)
CYPOOL_SEP33(f64, double, 1)
CYPOOL_SEP33(i32, int32_t, 0)
CYPOOL_SEP33(i64, int64_t, 0)

#endif
