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

/* A read-prefetch hint into L2 (kernels whose hardware prefetch stops at
 * every page boundary ask for input rows a few KiB ahead); a no-op where the
 * compiler offers none. */
#if defined(__GNUC__) || defined(__clang__)
/* the empty volatile asm keeps gcc from deleting a loop of prefetches as
 * free of side effects */
#define cypool_prefetch(p) do { __builtin_prefetch((const void*)(p), 0, 2); \
    __asm__ __volatile__("" :: "r"(p)); } while (0)
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <xmmintrin.h>
#define cypool_prefetch(p) _mm_prefetch((const char*)(p), _MM_HINT_T1)
#else
#define cypool_prefetch(p) ((void)(p))
#endif

#endif
