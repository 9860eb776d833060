/* A scatter of one contiguous volume, streamed out while it is built: the
 * max pooling backward (``+=``, _pool.pyx ``_max_bwd_plane``) and max
 * unpooling (``=``, _unpool.pyx ``_scatter_plane``), into a large result.
 *
 * The volume is built in a per-thread buffer ``buf`` (P elements, 64-byte
 * aligned, all zero on entry and again on return) and written to ``gp`` with
 * non-temporal stores.  Instead of a scatter pass followed by a copy pass
 * (the copy's stores then wait for nothing but memory, and the scatter's
 * reads idle the stores), the part of the volume that no later window can
 * reach is streamed out after each row of sources: ``bnd[r]`` is an element
 * offset below which no source after row r has a window tap (the first tap
 * of the next rows' windows, from stride and padding).  Streamed lines of
 * ``buf`` are zeroed as they go, so the next volume needs no fill.
 *
 * Any index is still handled exactly: one that lands in a part already
 * streamed (only indices outside their windows do) is stored into ``gp``
 * itself after a fence; the sources are taken in order all the same, so
 * every element receives its values in C order (PyTorch's order of
 * accumulation; the last of repeated unpooling indices wins).
 *
 * ``go``, ``idx``: the volume's Q source values and indices, in rows of OW
 * (the last one may be shorter; ``bnd`` has one bound per row), and ``pf``
 * the distance (sources) at which each row hints the ones ahead.  Returns 1
 * when an index lies outside the volume (skipped; -1 is skipped silently).
 * Instances: cypool_max_bwd_stream_f32/f64 (+=) and
 * cypool_unpool_stream_u8/u16/u32/u64 (=, by item size). */
#ifndef CYPOOL_SCATTER_STREAM_H
#define CYPOOL_SCATTER_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "omp_shim.h"

#if defined(__GNUC__) || defined(__clang__)
#define CYPOOL_SCATTER_NOINLINE static __attribute__((noinline, unused))
#define CYPOOL_SCATTER_RESTRICT __restrict__
#elif defined(_MSC_VER)
#define CYPOOL_SCATTER_NOINLINE static
#define CYPOOL_SCATTER_RESTRICT __restrict
#else
#define CYPOOL_SCATTER_NOINLINE static
#define CYPOOL_SCATTER_RESTRICT
#endif

/* The indices of one row that fall outside [lo, P): those in the part of
 * gp already written (from ``head`` bytes on) are stored there (OP), the others in
 * the buffer; returns 1 for an index outside the volume.  Outputs in order,
 * from the first one (``j0``) that left [lo, P). */
#define CYPOOL_SCATTER_SLOW(NAME, TYPE, OP)                                            \
static int NAME##_slow(                                             \
        const TYPE* gr, const int64_t* ir, ptrdiff_t j0, ptrdiff_t n,             \
        ptrdiff_t lo, ptrdiff_t head_e, TYPE* buf, TYPE* gp, ptrdiff_t P) {       \
    ptrdiff_t j;                                                                  \
    int bad = 0;                                                                  \
    cypool_sfence();            /* gp's streamed lines, before reading them */    \
    for (j = j0; j < n; j++) {                                                    \
        const int64_t i = ir[j];                                                  \
        if ((uint64_t)(i - lo) < (uint64_t)(P - lo) || (i >= 0 && i < head_e))    \
            buf[i] OP gr[j];                                                      \
        else if (i >= 0 && i < P)                                                 \
            gp[i] OP gr[j];                                                       \
        else if (i != -1)                                                         \
            bad = 1;                                                              \
    }                                                                             \
    return bad;                                                                   \
}

#define CYPOOL_SCATTER_STREAM(NAME, TYPE, OP)                                          \
CYPOOL_SCATTER_SLOW(NAME, TYPE, OP)                                                    \
CYPOOL_SCATTER_NOINLINE int NAME(                              \
        const TYPE* CYPOOL_SCATTER_RESTRICT go, const int64_t* CYPOOL_SCATTER_RESTRICT idx,\
        ptrdiff_t Q, ptrdiff_t OW, const int64_t* CYPOOL_SCATTER_RESTRICT bnd,        \
        TYPE* CYPOOL_SCATTER_RESTRICT buf, TYPE* gp, ptrdiff_t P, ptrdiff_t pf) {     \
    const size_t es = sizeof(TYPE);                                               \
    const size_t total = (size_t)P * es;                                          \
    /* bytes of gp before its first whole line, and its last line start */       \
    size_t head = (64 - ((size_t)gp & 63)) & 63;                                  \
    size_t body_end, sent, tb;                                                    \
    ptrdiff_t r, j, n, lo, head_e, lim, R = (Q + OW - 1) / OW;                    \
    int bad = 0;                                                                  \
    char* gb = (char*)gp;                                                         \
    char* bb = (char*)buf;                                                        \
    if (head > total) head = total;                                               \
    body_end = head + ((total - head) & ~(size_t)63);                             \
    sent = head;                 /* gp [head, sent) is written */                 \
    head_e = (ptrdiff_t)(head / es);                                              \
    lo = 0;                      /* indices in [lo, P) go to the buffer */        \
    for (r = 0; r < R; r++) {                                                     \
        const TYPE* gr = go + r * OW;                                             \
        const int64_t* ir = idx + r * OW;                                         \
        n = Q - r * OW < OW ? Q - r * OW : OW;                                    \
        /* hints for the indices and values pf outputs ahead */               \
        for (j = 0; j < n * 8; j += 64) {                                         \
            cypool_prefetch((const char*)(ir + pf) + j);                          \
            if (j < n * (ptrdiff_t)es)                                            \
                cypool_prefetch((const char*)(gr + pf) + j);                      \
        }                                                                         \
        for (j = 0; j < n; j++) {                                                 \
            const int64_t i = ir[j];                                              \
            if ((uint64_t)(i - lo) >= (uint64_t)(P - lo))                         \
                break;                                                            \
            buf[i] OP gr[j];                                                      \
        }                                                                         \
        if (j < n)                                                                \
            bad |= NAME##_slow(gr, ir, j, n, lo, head_e, buf, gp, P);  \
        lim = bnd[r];                                                             \
        if (lim > P) lim = P;                                                     \
        if (lim < 0) lim = 0;                                                     \
        /* whole lines of gp below the bound */                                   \
        tb = (size_t)lim * es;                                                    \
        if (tb <= head) continue;                                                 \
        tb = head + ((tb - head) & ~(size_t)63);                                  \
        if (tb > sent) {                                                          \
            cypool_stream_copy(gb + sent, bb + sent, tb - sent);                  \
            memset(bb + sent, 0, tb - sent);                                      \
            sent = tb;                                                            \
            lo = (ptrdiff_t)(sent / es);                                          \
        }                                                                         \
    }                                                                             \
    if (body_end > sent) {                                                        \
        cypool_stream_copy(gb + sent, bb + sent, body_end - sent);                \
        memset(bb + sent, 0, body_end - sent);                                    \
    }                                                                             \
    /* the partial lines at both ends, ordinary stores */                         \
    memcpy(gb + body_end, bb + body_end, total - body_end);                       \
    memset(bb + body_end, 0, total - body_end);                                   \
    memcpy(gb, bb, head);                                                         \
    memset(bb, 0, head);                                                          \
    return bad;                                                                   \
}

CYPOOL_SCATTER_STREAM(cypool_max_bwd_stream_f32, float, +=)
CYPOOL_SCATTER_STREAM(cypool_max_bwd_stream_f64, double, +=)
CYPOOL_SCATTER_STREAM(cypool_unpool_stream_u8, uint8_t, =)
CYPOOL_SCATTER_STREAM(cypool_unpool_stream_u16, uint16_t, =)
CYPOOL_SCATTER_STREAM(cypool_unpool_stream_u32, uint32_t, =)
CYPOOL_SCATTER_STREAM(cypool_unpool_stream_u64, uint64_t, =)

#endif
