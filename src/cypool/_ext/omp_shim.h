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

#endif
