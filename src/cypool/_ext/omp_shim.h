/* OpenMP shim: the same Cython sources build and import with or without
 * OpenMP.  Without it the thread queries answer as a single thread. */
#ifndef CYPOOL_OMP_SHIM_H
#define CYPOOL_OMP_SHIM_H

#ifdef _OPENMP
#include <omp.h>
#define CYPOOL_HAVE_OPENMP 1
static inline int cypool_omp_get_thread_num(void) { return omp_get_thread_num(); }
static inline int cypool_omp_get_max_threads(void) { return omp_get_max_threads(); }
#else
#define CYPOOL_HAVE_OPENMP 0
static inline int cypool_omp_get_thread_num(void) { return 0; }
static inline int cypool_omp_get_max_threads(void) { return 1; }
#endif

/* A read-prefetch hint into every cache level (kernels whose hardware
 * prefetch stops at every page boundary ask for input rows a few KiB ahead);
 * a no-op where the compiler offers none.  All levels (T0) rather than L2
 * and outwards (T1): 1.03-1.14x on the forward kernels that hint, measured
 * on an AMD EPYC (AVX-512) VM, none slower. */
#if defined(__GNUC__) || defined(__clang__)
/* the empty volatile asm keeps gcc from deleting a loop of prefetches as
 * free of side effects */
#define cypool_prefetch(p) do { __builtin_prefetch((const void*)(p), 0, 3); \
    __asm__ __volatile__("" :: "r"(p)); } while (0)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define cypool_prefetch(p) _mm_prefetch((const char*)(p), _MM_HINT_T0)
#else
#define cypool_prefetch(p) ((void)(p))
#endif


/* Streaming (non-temporal) output.  A kernel whose output is far larger than
 * the caches may build it in a small per-thread buffer and copy it out with
 * non-temporal stores: ordinary stores first read every output line from
 * memory (read for ownership), as much traffic again as the writes.  Only
 * the first and last line of a copy are written with ordinary stores.  A
 * thread fences (cypool_sfence) after its last copy, so that the stores are
 * visible before the parallel region ends.  Where the instruction set has no
 * such stores the copy is a memcpy. */
#include <string.h>
#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <immintrin.h>
#define CYPOOL_HAVE_STREAM 1
#else
#define CYPOOL_HAVE_STREAM 0
#endif

static inline void cypool_stream_copy(char* dst, const char* src, size_t n) {
#if CYPOOL_HAVE_STREAM
    size_t head = (64 - ((size_t)dst & 63)) & 63;
    if (head > n) head = n;
    memcpy(dst, src, head);
    dst += head; src += head; n -= head;
    while (n >= 64) {
#if defined(__AVX512F__)
        _mm512_stream_si512((__m512i*)dst, _mm512_loadu_si512((const void*)src));
#elif defined(__AVX__)
        _mm256_stream_si256((__m256i*)dst, _mm256_loadu_si256((const __m256i*)src));
        _mm256_stream_si256((__m256i*)(dst + 32),
                            _mm256_loadu_si256((const __m256i*)(src + 32)));
#else
        _mm_stream_si128((__m128i*)dst, _mm_loadu_si128((const __m128i*)src));
        _mm_stream_si128((__m128i*)(dst + 16), _mm_loadu_si128((const __m128i*)(src + 16)));
        _mm_stream_si128((__m128i*)(dst + 32), _mm_loadu_si128((const __m128i*)(src + 32)));
        _mm_stream_si128((__m128i*)(dst + 48), _mm_loadu_si128((const __m128i*)(src + 48)));
#endif
        dst += 64; src += 64; n -= 64;
    }
#endif
    memcpy(dst, src, n);
}

/* Streaming a sequence of pieces (output rows) that are often adjacent in
 * the destination: a piece's last partial line is held back (``line``) and
 * completed by the next piece if that one starts where it ends, then
 * written with one non-temporal store.  Ordinary stores to partial lines
 * would read each such line from memory first (a demand miss per row: with
 * rows of a few hundred bytes that made streaming slower than plain
 * stores).  ``cypool_stream_flush`` writes a held line (ordinary stores);
 * each thread flushes, then fences, after its last piece. */
typedef struct {
    char line[64];
    char* base;     /* destination of line[0] (64-byte aligned), or NULL */
    size_t fill;    /* bytes held in line */
} cypool_stream_t;

static inline void cypool_stream_init(cypool_stream_t* s) {
    s->base = NULL;
    s->fill = 0;
}

static inline void cypool_stream_flush(cypool_stream_t* s) {
    if (s->fill) memcpy(s->base, s->line, s->fill);
    s->base = NULL;
    s->fill = 0;
}

static inline void cypool_stream_put(cypool_stream_t* s, char* dst,
                                     const char* src, size_t n) {
#if CYPOOL_HAVE_STREAM
    size_t head, k;
    if (s->fill) {
        if (dst == s->base + s->fill) {
            k = 64 - s->fill;
            if (k > n) k = n;
            memcpy(s->line + s->fill, src, k);
            s->fill += k;
            dst += k; src += k; n -= k;
            if (s->fill < 64) return;           /* n is 0: still partial */
            cypool_stream_copy(s->base, s->line, 64);
            s->base = NULL;
            s->fill = 0;
        } else {
            cypool_stream_flush(s);
        }
    }
    head = (64 - ((size_t)dst & 63)) & 63;
    if (head > n) head = n;
    memcpy(dst, src, head);
    dst += head; src += head; n -= head;
    k = n & ~(size_t)63;
    if (k) cypool_stream_copy(dst, src, k);
    dst += k; src += k; n -= k;
    if (n) {                                   /* dst is line-aligned here */
        memcpy(s->line, src, n);
        s->base = dst;
        s->fill = n;
    }
#else
    memcpy(dst, src, n);
#endif
}

static inline void cypool_sfence(void) {
#if CYPOOL_HAVE_STREAM
    _mm_sfence();
#endif
}

#endif
