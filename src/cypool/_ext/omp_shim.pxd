# Declarations of omp_shim.h (OpenMP queries with a serial fallback, the
# prefetch hint and the non-temporal output stream), cimported by every
# kernel module: ``from cypool._ext.omp_shim cimport ...``.

cdef extern from "omp_shim.h" nogil:
    int cypool_omp_get_thread_num()
    int cypool_omp_get_max_threads()
    int CYPOOL_HAVE_OPENMP
    void cypool_prefetch(const void* p)
    int CYPOOL_HAVE_STREAM
    void cypool_stream_copy(char* dst, const char* src, size_t n)
    void cypool_sfence()
    ctypedef struct cypool_stream_t:
        pass
    void cypool_stream_init(cypool_stream_t* s)
    void cypool_stream_flush(cypool_stream_t* s)
    void cypool_stream_put(cypool_stream_t* s, char* dst, const char* src, size_t n)
