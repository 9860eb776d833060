# cython: language_level=3, cdivision=True, cpow=True
# (boundscheck, wraparound, initializedcheck and nonecheck are set for the
# whole build in setup.py: off, or on with CYPOOL_CYTHON_DEBUG=1)
"""Max and average pooling kernels, forward and backward.

One N-d design: every array arrives as a 5-d ``(N, C, D, H, W)`` view (1-d and
2-d inputs carry singleton D/H axes) with arbitrary element strides, and the
kernels treat the rank as runtime data.  The unit of work is an output "row":
one ``(n, c, od, oh)`` and a chunk of consecutive ``ow`` positions.  For each
row the kernel collects the in-bounds input rows of the window (in scan order
``kd``, then ``kh``) and then, tap by tap (``kw`` innermost), applies a
branch-free update to all output positions of the chunk at once, so that the
inner loop runs along contiguous output positions and vectorises.  Scan order
per output element is exactly PyTorch's row-major ``(kd, kh, kw)`` order,
which is what makes NaN propagation, ties and the returned index identical.

Input rows that are not contiguous along W are first staged into a per-thread
buffer; outputs are always written C-contiguous along W.

Validation happens in Python (``cypool._params``); the kernels assume valid
geometry.  Python-facing functions here only check what memory safety
depends on (ranks, shapes and dtypes of the arrays they are handed).
"""

cimport numpy as cnp
from libc.stdlib cimport malloc, calloc, free
from cython.parallel cimport prange, parallel
from libc.stdint cimport (int8_t, uint8_t, int16_t, uint16_t, int32_t,
                          int64_t, uint64_t, INT8_MIN, INT16_MIN, INT32_MIN,
                          INT64_MIN)
from libc.string cimport memset, memcpy
from libc.math cimport INFINITY

cnp.import_array()

from cypool._ext.omp_shim cimport (cypool_omp_get_thread_num,
    cypool_omp_get_max_threads, CYPOOL_HAVE_OPENMP, cypool_prefetch,
    CYPOOL_HAVE_STREAM, cypool_stream_copy, cypool_sfence, cypool_stream_t,
    cypool_stream_init, cypool_stream_flush, cypool_stream_put)


cdef extern from "small_kernels.h" nogil:
    void cypool_small_max_f32(const float* x, const int32_t* off, Py_ssize_t T, Py_ssize_t Q, float* m)
    void cypool_small_max_f64(const double* x, const int32_t* off, Py_ssize_t T, Py_ssize_t Q, double* m)
    void cypool_small_max_i8(const int8_t* x, const int32_t* off, Py_ssize_t T, Py_ssize_t Q, int8_t* m)
    void cypool_small_max_u8(const uint8_t* x, const int32_t* off, Py_ssize_t T, Py_ssize_t Q, uint8_t* m)
    void cypool_small_max_i16(const int16_t* x, const int32_t* off, Py_ssize_t T, Py_ssize_t Q, int16_t* m)
    void cypool_small_max_u16(const uint16_t* x, const int32_t* off, Py_ssize_t T, Py_ssize_t Q, uint16_t* m)
    void cypool_small_max_i32(const int32_t* x, const int32_t* off, Py_ssize_t T, Py_ssize_t Q, int32_t* m)
    void cypool_small_max_i64(const int64_t* x, const int32_t* off, Py_ssize_t T, Py_ssize_t Q, int64_t* m)
    void cypool_small_argmax_f32(const float* x, const int32_t* off, const int32_t* fid, Py_ssize_t T, Py_ssize_t Q, float* m, int32_t* ib)
    void cypool_small_argmax_f64(const double* x, const int32_t* off, const int32_t* fid, Py_ssize_t T, Py_ssize_t Q, double* m, int32_t* ib)
    void cypool_small_argmax_i8(const int8_t* x, const int32_t* off, const int32_t* fid, Py_ssize_t T, Py_ssize_t Q, int8_t* m, int32_t* ib)
    void cypool_small_argmax_u8(const uint8_t* x, const int32_t* off, const int32_t* fid, Py_ssize_t T, Py_ssize_t Q, uint8_t* m, int32_t* ib)
    void cypool_small_argmax_i16(const int16_t* x, const int32_t* off, const int32_t* fid, Py_ssize_t T, Py_ssize_t Q, int16_t* m, int32_t* ib)
    void cypool_small_argmax_u16(const uint16_t* x, const int32_t* off, const int32_t* fid, Py_ssize_t T, Py_ssize_t Q, uint16_t* m, int32_t* ib)
    void cypool_small_argmax_i32(const int32_t* x, const int32_t* off, const int32_t* fid, Py_ssize_t T, Py_ssize_t Q, int32_t* m, int32_t* ib)
    void cypool_small_argmax_i64(const int64_t* x, const int32_t* off, const int32_t* fid, Py_ssize_t T, Py_ssize_t Q, int64_t* m, int32_t* ib)
    void cypool_small_avg_f32(const float* x, const int32_t* off, const int32_t* cnt, const float* dv, Py_ssize_t T, Py_ssize_t Q, float* s)
    void cypool_small_avg_f64(const double* x, const int32_t* off, const int32_t* cnt, const double* dv, Py_ssize_t T, Py_ssize_t Q, double* s)
    int CYPOOL_HAVE_TILE_ARGMAX
    void cypool_tile_argmax_f32(const float* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, float* o, Py_ssize_t os, int64_t* oi, Py_ssize_t js, int64_t b0, int64_t w, int32_t* tg)
    void cypool_tile_argmax_f64(const double* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, double* o, Py_ssize_t os, int64_t* oi, Py_ssize_t js, int64_t b0, int64_t w, int64_t* tg)
    int cypool_max_bwd_vol_f32(const float* go, const int64_t* idx, Py_ssize_t Q, float* gi, Py_ssize_t P)
    int cypool_max_bwd_vol_f64(const double* go, const int64_t* idx, Py_ssize_t Q, double* gi, Py_ssize_t P)
    void cypool_small_avg_bwd_f32(const float* go, const int32_t* off, const int32_t* cnt, const float* dv, Py_ssize_t Q, float* gi, Py_ssize_t P)
    void cypool_small_avg_bwd_f64(const double* go, const int32_t* off, const int32_t* cnt, const double* dv, Py_ssize_t Q, double* gi, Py_ssize_t P)

cdef extern from "pair_kernels.h" nogil:
    int CYPOOL_HAVE_PAIR
    void cypool_pair_max_f32(const float* x, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, float* o, Py_ssize_t os)
    void cypool_pair_argmax_f32(const float* x, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, float* o, Py_ssize_t os, int64_t* oi, Py_ssize_t js, int64_t b0, int64_t w)
    void cypool_pair_avg_f32(const float* x, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, float* o, Py_ssize_t os, float dv)
    void cypool_pair3_max_f32(const float* x, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, float* o, Py_ssize_t os)


cdef extern from "avg3_kernels.h" nogil:
    int CYPOOL_HAVE_AVG3
    void cypool_avg3_f32(float* o, const float* r0, const float* r1, const float* r2, Py_ssize_t n, float dv, int mul)
    void cypool_avg3_f64(double* o, const double* r0, const double* r1, const double* r2, Py_ssize_t n, double dv, int mul)


cdef extern from "scatter_stream.h" nogil:
    int cypool_max_bwd_stream_f32(const float* go, const int64_t* idx, Py_ssize_t Q, Py_ssize_t OW, const int64_t* bnd, float* buf, float* gp, Py_ssize_t P, Py_ssize_t pf)
    int cypool_max_bwd_stream_f64(const double* go, const int64_t* idx, Py_ssize_t Q, Py_ssize_t OW, const int64_t* bnd, double* buf, double* gp, Py_ssize_t P, Py_ssize_t pf)
    int cypool_tile_max_f32(int wide, Py_ssize_t KD, Py_ssize_t K, const float* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, float* o, Py_ssize_t os)
    int cypool_tile_max_f64(int wide, Py_ssize_t KD, Py_ssize_t K, const double* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, double* o, Py_ssize_t os)
    int cypool_tile_max_i8(int wide, Py_ssize_t KD, Py_ssize_t K, const int8_t* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, int8_t* o, Py_ssize_t os)
    int cypool_tile_max_u8(int wide, Py_ssize_t KD, Py_ssize_t K, const uint8_t* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, uint8_t* o, Py_ssize_t os)
    int cypool_tile_max_i16(int wide, Py_ssize_t KD, Py_ssize_t K, const int16_t* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, int16_t* o, Py_ssize_t os)
    int cypool_tile_max_u16(int wide, Py_ssize_t KD, Py_ssize_t K, const uint16_t* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, uint16_t* o, Py_ssize_t os)
    int cypool_tile_max_i32(int wide, Py_ssize_t KD, Py_ssize_t K, const int32_t* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, int32_t* o, Py_ssize_t os)
    int cypool_tile_max_i64(int wide, Py_ssize_t KD, Py_ssize_t K, const int64_t* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, int64_t* o, Py_ssize_t os)
    void cypool_tile_maxx_f32(int wide, Py_ssize_t KD, Py_ssize_t K, const float* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, float* o, Py_ssize_t os)
    void cypool_tile_avg_f32(int wide, Py_ssize_t KD, Py_ssize_t K, const float* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, float* o, Py_ssize_t os, float dv)
    void cypool_tile_maxx_f64(int wide, Py_ssize_t KD, Py_ssize_t K, const double* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, double* o, Py_ssize_t os)
    void cypool_tile_avg_f64(int wide, Py_ssize_t KD, Py_ssize_t K, const double* x, Py_ssize_t ds, Py_ssize_t rs, Py_ssize_t OH, Py_ssize_t OW, double* o, Py_ssize_t os, double dv)


cdef extern from "sep_kernels.h" nogil:
    int cypool_sep33_f32(const float* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t rs, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t a, Py_ssize_t b, float* o, Py_ssize_t os, float* hb, Py_ssize_t pfr, Py_ssize_t nxt)
    int cypool_sep33_f64(const double* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t rs, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t a, Py_ssize_t b, double* o, Py_ssize_t os, double* hb, Py_ssize_t pfr, Py_ssize_t nxt)
    int cypool_sep33_i32(const int32_t* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t rs, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t a, Py_ssize_t b, int32_t* o, Py_ssize_t os, int32_t* hb, Py_ssize_t pfr, Py_ssize_t nxt)
    int cypool_sep33_i64(const int64_t* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t rs, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t oh0, Py_ssize_t oh1, Py_ssize_t a, Py_ssize_t b, int64_t* o, Py_ssize_t os, int64_t* hb, Py_ssize_t pfr, Py_ssize_t nxt)


cdef extern from "pix3_kernels.h" nogil:
    int CYPOOL_HAVE_PIX3
    int CYPOOL_HAVE_PIX3_AVG
    void cypool_pix3_avg22_u8(const uint8_t* r0, const uint8_t* r1, uint8_t* o, Py_ssize_t OW, const uint8_t* n0, int nearest)
    void cypool_pix3_avg22_i8(const int8_t* r0, const int8_t* r1, int8_t* o, Py_ssize_t OW, const int8_t* n0, int nearest)
    void cypool_pix3_max22_u8(const uint8_t* r0, const uint8_t* r1, uint8_t* o, Py_ssize_t OW, const uint8_t* n0)
    void cypool_pix3_max22_i8(const int8_t* r0, const int8_t* r1, int8_t* o, Py_ssize_t OW, const int8_t* n0)

ctypedef fused pool_t:
    float
    double
    int8_t
    uint8_t
    int16_t
    uint16_t
    int32_t
    int64_t

ctypedef fused real_t:
    float
    double

ctypedef fused int_t:
    int8_t
    uint8_t
    int16_t
    uint16_t
    int32_t
    int64_t


cdef enum:
    # Below this many (estimated) element operations a call runs on one
    # thread: starting a team costs more than it saves.
    PARALLEL_MIN_WORK = 32768
    # Longest run of output positions one work item handles (keeps the
    # output chunk and its indices in L1 while the taps stream over it).
    MAX_CHUNK = 2048
    # Per-thread scratch is padded to whole cache lines (no false sharing).
    LINE = 64


cdef struct Geo:
    Py_ssize_t N
    Py_ssize_t C
    Py_ssize_t isz[3]      # input spatial size (D, H, W)
    Py_ssize_t osz[3]      # output spatial size
    Py_ssize_t ks[3]      # kernel
    Py_ssize_t st[3]      # stride
    Py_ssize_t dl[3]     # dilation
    Py_ssize_t pd[3]      # padding before
    Py_ssize_t pa[3]      # padding after (average pooling's divisor)
    Py_ssize_t xs[5]     # strides (elements) of the array read by windows
    Py_ssize_t os[5]     # strides (elements) of the output-shaped array
    Py_ssize_t js[5]     # strides (elements) of the indices array
    Py_ssize_t chunk     # positions per work item along W
    Py_ssize_t nchunk    # work items per row
    Py_ssize_t band      # output rows (H) per work item
    Py_ssize_t nband     # work items per (n, c, od)
    int nthreads         # team size
    bint parallel        # False: run on the calling thread
    Py_ssize_t rmax      # most in-bounds input rows one window can have
    Py_ssize_t kw0       # first W tap that is in bounds for some output
    Py_ssize_t kwn       # number of W taps from kw0 that can be in bounds
    bint sparse          # W taps too scattered for tap-major passes
    bint stream          # build output planes in a per-thread buffer and
                         # write them with non-temporal stores (max backward)
    bint square          # 2x2 / 3x3 window over H and W, unit dilation,
                         # W stride 1 or 2 (and, once the strides are
                         # known, W-contiguous input): the whole-window
                         # row pass of ``_max_row_square``
    bint sep3            # 3x3 windows at stride 2x2, values only: the
                         # separable kernel (``_sep3_ok``, sep_kernels.h)


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(CYPOOL_HAVE_OPENMP)


def omp_max_threads():
    """``omp_get_max_threads()`` of the calling thread (1 without OpenMP)."""
    return cypool_omp_get_max_threads()


# ---------------------------------------------------------------- helpers

cdef inline Py_ssize_t _floordiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Floor division for b > 0 (C division truncates toward zero).  The
    common b == 1 and b == 2 (unit dilation, strides 1 and 2) skip the slow
    64-bit divide: window rows are located with these once per row (the
    shift of a signed value is arithmetic, a floor, in gcc, clang and MSVC)."""
    if b == 1:
        return a
    if b == 2:
        return a >> 1
    cdef Py_ssize_t q = a / b
    if (a % b != 0) and (a < 0):
        q -= 1
    return q


cdef inline Py_ssize_t _ceildiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return -_floordiv(-a, b)


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef inline Py_ssize_t _imax(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


cdef inline pool_t _lowest(pool_t dummy) noexcept nogil:
    """The identity of max: -inf for floats, the minimum for integers."""
    if pool_t is float:
        return -INFINITY
    elif pool_t is double:
        return -INFINITY
    elif pool_t is int8_t:
        return INT8_MIN
    elif pool_t is int16_t:
        return INT16_MIN
    elif pool_t is int32_t:
        return INT32_MIN
    elif pool_t is int64_t:
        return INT64_MIN
    else:
        return 0


cdef inline bint _takes(pool_t v, pool_t m) noexcept nogil:
    """PyTorch's max update test: the new value is larger, or NaN."""
    if pool_t is float or pool_t is double:
        return (v > m) | (v != v)
    else:
        return v > m


# ------------------------------------------------- branch-free row passes
# One pass applies 1 to 3 consecutive taps of one input row to a run of
# output positions: ``o[j] = max(o[j], src[j*S + i*Dl])`` for i < gsz, in
# tap order, with PyTorch's rule (take the new value when it is larger or
# NaN).  Strides 1 and 2 get their own loops so that the compiler sees a
# constant stride and vectorises; the select compiles to compare + blend.
#
# Indices are tracked as "tags" stored in the value dtype itself (the tap
# number in scan order), so that the tag select has the width of the value
# compare and vectorises with it; tags become flat int64 indices once per
# output row.  Where a dtype cannot hold every tap number of the kernel
# (8/16-bit integers with huge kernels) the int64 single-tap path runs.

# Two modes: _Exact applies PyTorch's rule literally (compare, NaN test,
# blend); _Fast assumes no NaN, so the select is a plain ``v > m ? v : m``
# (one max instruction, exact for ties and signed zeros), and it detects NaN
# cheaply by also summing the taps of each output: a NaN input makes the sum
# NaN.  (So can inf + -inf or an overflow: harmless false alarms.)  A row
# whose fast pass raised the alarm is recomputed in exact mode, so results
# never depend on the mode.

cdef struct _Fast:
    char unused

cdef struct _Exact:
    char unused

ctypedef fused mode_t:
    _Fast
    _Exact


cdef inline bint _isnan(pool_t v) noexcept nogil:
    if pool_t is float or pool_t is double:
        return v != v
    else:
        return 0


cdef inline void _sel(mode_t* mode, pool_t v, pool_t* m, pool_t* s) noexcept nogil:
    """m = PyTorch's max update of m by v; s accumulates v (fast, floats)."""
    if mode_t is _Fast:
        if pool_t is float or pool_t is double:
            s[0] = s[0] + v
        m[0] = v if v > m[0] else m[0]
    else:
        m[0] = v if _takes(v, m[0]) else m[0]


cdef inline bint _take(mode_t* mode, pool_t v, pool_t m, pool_t* s) noexcept nogil:
    """Whether v replaces the running maximum m: ``v > m`` (fast mode, which
    also adds v to the NaN alarm's sum s) or PyTorch's rule (exact mode)."""
    if mode_t is _Fast:
        if pool_t is float or pool_t is double:
            s[0] = s[0] + v
        return v > m
    else:
        return _takes(v, m)


cdef inline void _sel_tag(mode_t* mode, pool_t v, pool_t tv, pool_t* m, pool_t* t,
                          pool_t* s) noexcept nogil:
    """_sel, also keeping the tag (tap number) of the winner."""
    cdef bint take = _take(mode, v, m[0], s)
    m[0] = v if take else m[0]
    t[0] = tv if take else t[0]


cdef inline bint _alarm(mode_t* mode, pool_t s) noexcept nogil:
    """The NaN alarm of one output's tap sum (fast mode, floats)."""
    if mode_t is _Fast:
        return _isnan(s)
    else:
        return 0


cdef inline bint _max_pass(mode_t* mode, pool_t* o, const pool_t* src,
                           Py_ssize_t S, Py_ssize_t gsz,
                           Py_ssize_t n) noexcept nogil:
    """Taps ``src[j*S + i]``, i < gsz (consecutive: dilation 1), applied in
    order to ``o[j]``; gsz > 1 only for S 1 or 2.  Returns the NaN alarm."""
    cdef Py_ssize_t j
    cdef pool_t m, sm
    cdef bint nf = 0
    if S == 2:
        if gsz == 1:
            for j in range(n):
                m = o[j]; sm = 0
                _sel(mode, src[2 * j], &m, &sm)
                o[j] = m
                nf = nf | _alarm(mode, sm)
        elif gsz == 2:
            for j in range(n):
                m = o[j]; sm = 0
                _sel(mode, src[2 * j], &m, &sm)
                _sel(mode, src[2 * j + 1], &m, &sm)
                o[j] = m
                nf = nf | _alarm(mode, sm)
        else:
            for j in range(n):
                m = o[j]; sm = 0
                _sel(mode, src[2 * j], &m, &sm)
                _sel(mode, src[2 * j + 1], &m, &sm)
                _sel(mode, src[2 * j + 2], &m, &sm)
                o[j] = m
                nf = nf | _alarm(mode, sm)
    elif S == 1:
        if gsz == 1:
            for j in range(n):
                m = o[j]; sm = 0
                _sel(mode, src[j], &m, &sm)
                o[j] = m
                nf = nf | _alarm(mode, sm)
        elif gsz == 2:
            for j in range(n):
                m = o[j]; sm = 0
                _sel(mode, src[j], &m, &sm)
                _sel(mode, src[j + 1], &m, &sm)
                o[j] = m
                nf = nf | _alarm(mode, sm)
        else:
            for j in range(n):
                m = o[j]; sm = 0
                _sel(mode, src[j], &m, &sm)
                _sel(mode, src[j + 1], &m, &sm)
                _sel(mode, src[j + 2], &m, &sm)
                o[j] = m
                nf = nf | _alarm(mode, sm)
    else:
        for j in range(n):
            m = o[j]; sm = 0
            _sel(mode, src[j * S], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    return nf


cdef inline Py_ssize_t _head_len(Py_ssize_t n, Py_ssize_t B) noexcept nogil:
    """Row cutting for the whole-window passes (B outputs = one 64-byte
    vector): the first call covers ``k*B + 1`` outputs, the largest such
    length up to n; if that falls short of n, a second call covers the last
    ``B + 1`` outputs, overlapping the first (every output is a pure function
    of the input rows, so the overlap rewrites equal values).  The compiled
    loops leave the remainder of the trip count to scalar code, and for
    3-wide stride-2 windows gcc keeps at least one whole vector's worth
    scalar (it will not read the element past the last tap); with these
    lengths each call leaves one output to scalar code instead of up to 16,
    a large share of a 56-wide CNN row."""
    return ((n - 1) // B) * B + 1


cdef inline bint _max_win(mode_t* mode, pool_t* o, const pool_t* r0,
                          const pool_t* r1, const pool_t* r2, Py_ssize_t S,
                          Py_ssize_t kk, Py_ssize_t R, Py_ssize_t n) noexcept nogil:
    """Whole windows of R input rows (R = kk: ``_max_win_run``; R = 1, 1-d
    pooling or kernels one row high: ``_max_win1_run``, r0 only), cut as
    ``_head_len`` says."""
    cdef Py_ssize_t B = 64 // sizeof(pool_t)
    cdef Py_ssize_t h, t
    cdef bint nf
    if n <= B + 1:
        return _max_win_rows(mode, o, r0, r1, r2, S, kk, R, n)
    h = _head_len(n, B)
    nf = _max_win_rows(mode, o, r0, r1, r2, S, kk, R, h)
    if h < n:
        t = n - (B + 1)
        nf |= _max_win_rows(mode, o + t, r0 + t * S, r1 + t * S, r2 + t * S, S, kk, R,
                            B + 1)
    return nf


cdef inline bint _max_win_rows(mode_t* mode, pool_t* o, const pool_t* r0,
                               const pool_t* r1, const pool_t* r2, Py_ssize_t S,
                               Py_ssize_t kk, Py_ssize_t R,
                               Py_ssize_t n) noexcept nogil:
    if R == 1:
        return _max_win1_run(mode, o, r0, S, kk, n)
    return _max_win_run(mode, o, r0, r1, r2, S, kk, n)


cdef inline bint _max_win1_run(mode_t* mode, pool_t* o, const pool_t* r0,
                               Py_ssize_t S, Py_ssize_t K,
                               Py_ssize_t n) noexcept nogil:
    """Windows of one input row and K = 2 or 3 consecutive taps, written
    once (no lowest-value fill and read-back of the tap passes)."""
    cdef Py_ssize_t j
    cdef pool_t m, sm
    cdef bint nf = 0
    if K == 2 and S == 2:
        for j in range(n):
            m = r0[2 * j]; sm = m
            _sel(mode, r0[2 * j + 1], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    elif K == 2 and S == 1:
        for j in range(n):
            m = r0[j]; sm = m
            _sel(mode, r0[j + 1], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    elif S == 2:
        for j in range(n):
            m = r0[2 * j]; sm = m
            _sel(mode, r0[2 * j + 1], &m, &sm)
            _sel(mode, r0[2 * j + 2], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    else:
        for j in range(n):
            m = r0[j]; sm = m
            _sel(mode, r0[j + 1], &m, &sm)
            _sel(mode, r0[j + 2], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    return nf


cdef inline bint _max_win_run(mode_t* mode, pool_t* o, const pool_t* r0,
                              const pool_t* r1, const pool_t* r2, Py_ssize_t S,
                              Py_ssize_t kk, Py_ssize_t n) noexcept nogil:
    """A whole kk x kk window (kk 2 or 3, dilation 1, S 1 or 2) in one pass:
    ``o[j]`` = max over rows r0.. and taps ``j*S + i``, in scan order.  The
    first tap initialises (it is the first in-bounds tap of every interior
    window), so the output is written once.  For the common CNN poolings
    (2x2 stride 2, 3x3 stride 2 or 1) this replaces 1 + kk passes."""
    cdef Py_ssize_t j
    cdef pool_t m, sm
    cdef bint nf = 0
    if kk == 2 and S == 2:
        for j in range(n):
            m = r0[2 * j]; sm = m
            _sel(mode, r0[2 * j + 1], &m, &sm)
            _sel(mode, r1[2 * j], &m, &sm)
            _sel(mode, r1[2 * j + 1], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    elif kk == 2:
        for j in range(n):
            m = r0[j]; sm = m
            _sel(mode, r0[j + 1], &m, &sm)
            _sel(mode, r1[j], &m, &sm)
            _sel(mode, r1[j + 1], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    elif S == 2:
        for j in range(n):
            m = r0[2 * j]; sm = m
            _sel(mode, r0[2 * j + 1], &m, &sm)
            _sel(mode, r0[2 * j + 2], &m, &sm)
            _sel(mode, r1[2 * j], &m, &sm)
            _sel(mode, r1[2 * j + 1], &m, &sm)
            _sel(mode, r1[2 * j + 2], &m, &sm)
            _sel(mode, r2[2 * j], &m, &sm)
            _sel(mode, r2[2 * j + 1], &m, &sm)
            _sel(mode, r2[2 * j + 2], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    else:
        for j in range(n):
            m = r0[j]; sm = m
            _sel(mode, r0[j + 1], &m, &sm)
            _sel(mode, r0[j + 2], &m, &sm)
            _sel(mode, r1[j], &m, &sm)
            _sel(mode, r1[j + 1], &m, &sm)
            _sel(mode, r1[j + 2], &m, &sm)
            _sel(mode, r2[j], &m, &sm)
            _sel(mode, r2[j + 1], &m, &sm)
            _sel(mode, r2[j + 2], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    return nf


cdef inline void _sel_idx(mode_t* mode, pool_t v, int64_t vi, pool_t* m,
                          int64_t* mi, pool_t* s) noexcept nogil:
    """_sel, also keeping the flat index of the winner."""
    cdef bint take = _take(mode, v, m[0], s)
    m[0] = v if take else m[0]
    mi[0] = vi if take else mi[0]


cdef inline bint _max_win_idx_cut(mode_t* mode, pool_t* o, int64_t* oi,
                                  const pool_t* r0, const pool_t* r1,
                                  const pool_t* r2, int64_t i0, int64_t i1,
                                  int64_t i2, Py_ssize_t S, Py_ssize_t kk,
                                  Py_ssize_t n) noexcept nogil:
    """``_max_win_idx`` over a row cut as ``_head_len`` says."""
    cdef Py_ssize_t B = 64 // sizeof(pool_t)
    cdef Py_ssize_t h, t
    cdef bint nf
    if n <= B + 1:
        return _max_win_idx(mode, o, oi, r0, r1, r2, i0, i1, i2, S, kk, n)
    h = _head_len(n, B)
    nf = _max_win_idx(mode, o, oi, r0, r1, r2, i0, i1, i2, S, kk, h)
    if h < n:
        t = n - (B + 1)
        nf |= _max_win_idx(mode, o + t, oi + t, r0 + t * S, r1 + t * S, r2 + t * S,
                           i0 + t * S, i1 + t * S, i2 + t * S, S, kk, B + 1)
    return nf


cdef inline bint _max_win_idx(mode_t* mode, pool_t* o, int64_t* oi,
                              const pool_t* r0, const pool_t* r1,
                              const pool_t* r2, int64_t i0, int64_t i1,
                              int64_t i2, Py_ssize_t S, Py_ssize_t kk,
                              Py_ssize_t n) noexcept nogil:
    """``_max_win_run`` with the flat index of each winner: ``i0``.. are the
    flat indices of ``r0[0]``.. (the first tap of output 0 in each row).
    Values and indices are each written once."""
    cdef Py_ssize_t j
    cdef pool_t m, sm
    cdef int64_t mi, js
    cdef bint nf = 0
    if kk == 2 and S == 2:
        for j in range(n):
            js = 2 * j
            m = r0[2 * j]; sm = m; mi = i0 + js
            _sel_idx(mode, r0[2 * j + 1], i0 + js + 1, &m, &mi, &sm)
            _sel_idx(mode, r1[2 * j], i1 + js, &m, &mi, &sm)
            _sel_idx(mode, r1[2 * j + 1], i1 + js + 1, &m, &mi, &sm)
            o[j] = m; oi[j] = mi
            nf = nf | _alarm(mode, sm)
    elif kk == 2:
        for j in range(n):
            m = r0[j]; sm = m; mi = i0 + j
            _sel_idx(mode, r0[j + 1], i0 + j + 1, &m, &mi, &sm)
            _sel_idx(mode, r1[j], i1 + j, &m, &mi, &sm)
            _sel_idx(mode, r1[j + 1], i1 + j + 1, &m, &mi, &sm)
            o[j] = m; oi[j] = mi
            nf = nf | _alarm(mode, sm)
    elif S == 2:
        for j in range(n):
            js = 2 * j
            m = r0[2 * j]; sm = m; mi = i0 + js
            _sel_idx(mode, r0[2 * j + 1], i0 + js + 1, &m, &mi, &sm)
            _sel_idx(mode, r0[2 * j + 2], i0 + js + 2, &m, &mi, &sm)
            _sel_idx(mode, r1[2 * j], i1 + js, &m, &mi, &sm)
            _sel_idx(mode, r1[2 * j + 1], i1 + js + 1, &m, &mi, &sm)
            _sel_idx(mode, r1[2 * j + 2], i1 + js + 2, &m, &mi, &sm)
            _sel_idx(mode, r2[2 * j], i2 + js, &m, &mi, &sm)
            _sel_idx(mode, r2[2 * j + 1], i2 + js + 1, &m, &mi, &sm)
            _sel_idx(mode, r2[2 * j + 2], i2 + js + 2, &m, &mi, &sm)
            o[j] = m; oi[j] = mi
            nf = nf | _alarm(mode, sm)
    else:
        for j in range(n):
            m = r0[j]; sm = m; mi = i0 + j
            _sel_idx(mode, r0[j + 1], i0 + j + 1, &m, &mi, &sm)
            _sel_idx(mode, r0[j + 2], i0 + j + 2, &m, &mi, &sm)
            _sel_idx(mode, r1[j], i1 + j, &m, &mi, &sm)
            _sel_idx(mode, r1[j + 1], i1 + j + 1, &m, &mi, &sm)
            _sel_idx(mode, r1[j + 2], i1 + j + 2, &m, &mi, &sm)
            _sel_idx(mode, r2[j], i2 + j, &m, &mi, &sm)
            _sel_idx(mode, r2[j + 1], i2 + j + 1, &m, &mi, &sm)
            _sel_idx(mode, r2[j + 2], i2 + j + 2, &m, &mi, &sm)
            o[j] = m; oi[j] = mi
            nf = nf | _alarm(mode, sm)
    return nf


cdef inline bint _max_win4_run(mode_t* mode, pool_t* o, const pool_t* r0,
                               const pool_t* r1, const pool_t* r2,
                               const pool_t* r3, Py_ssize_t S,
                               Py_ssize_t n) noexcept nogil:
    """Whole 2 x 2 x 2 windows (3-d pooling; S 1 or 2 along W): the four
    input rows in scan order, two taps each, written once."""
    cdef Py_ssize_t j
    cdef pool_t m, sm
    cdef bint nf = 0
    if S == 2:
        for j in range(n):
            m = r0[2 * j]; sm = m
            _sel(mode, r0[2 * j + 1], &m, &sm)
            _sel(mode, r1[2 * j], &m, &sm)
            _sel(mode, r1[2 * j + 1], &m, &sm)
            _sel(mode, r2[2 * j], &m, &sm)
            _sel(mode, r2[2 * j + 1], &m, &sm)
            _sel(mode, r3[2 * j], &m, &sm)
            _sel(mode, r3[2 * j + 1], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    else:
        for j in range(n):
            m = r0[j]; sm = m
            _sel(mode, r0[j + 1], &m, &sm)
            _sel(mode, r1[j], &m, &sm)
            _sel(mode, r1[j + 1], &m, &sm)
            _sel(mode, r2[j], &m, &sm)
            _sel(mode, r2[j + 1], &m, &sm)
            _sel(mode, r3[j], &m, &sm)
            _sel(mode, r3[j + 1], &m, &sm)
            o[j] = m
            nf = nf | _alarm(mode, sm)
    return nf


cdef inline bint _max_pass_tag(mode_t* mode, pool_t* o, pool_t* tg,
                               const pool_t* src, Py_ssize_t S, Py_ssize_t gsz,
                               Py_ssize_t n, pool_t t0) noexcept nogil:
    """As _max_pass, also keeping the tag (tap number) of each winner."""
    cdef Py_ssize_t j
    cdef pool_t m, t, sm
    cdef pool_t t1 = t0 + 1
    cdef pool_t t2 = t0 + 2
    cdef bint nf = 0
    if S == 2 and gsz > 1:
        if gsz == 2:
            for j in range(n):
                m = o[j]; t = tg[j]; sm = 0
                _sel_tag(mode, src[2 * j], t0, &m, &t, &sm)
                _sel_tag(mode, src[2 * j + 1], t1, &m, &t, &sm)
                o[j] = m; tg[j] = t
                nf = nf | _alarm(mode, sm)
        else:
            for j in range(n):
                m = o[j]; t = tg[j]; sm = 0
                _sel_tag(mode, src[2 * j], t0, &m, &t, &sm)
                _sel_tag(mode, src[2 * j + 1], t1, &m, &t, &sm)
                _sel_tag(mode, src[2 * j + 2], t2, &m, &t, &sm)
                o[j] = m; tg[j] = t
                nf = nf | _alarm(mode, sm)
    elif S == 1 and gsz > 1:
        if gsz == 2:
            for j in range(n):
                m = o[j]; t = tg[j]; sm = 0
                _sel_tag(mode, src[j], t0, &m, &t, &sm)
                _sel_tag(mode, src[j + 1], t1, &m, &t, &sm)
                o[j] = m; tg[j] = t
                nf = nf | _alarm(mode, sm)
        else:
            for j in range(n):
                m = o[j]; t = tg[j]; sm = 0
                _sel_tag(mode, src[j], t0, &m, &t, &sm)
                _sel_tag(mode, src[j + 1], t1, &m, &t, &sm)
                _sel_tag(mode, src[j + 2], t2, &m, &t, &sm)
                o[j] = m; tg[j] = t
                nf = nf | _alarm(mode, sm)
    elif S == 2:
        for j in range(n):
            m = o[j]; t = tg[j]; sm = 0
            _sel_tag(mode, src[2 * j], t0, &m, &t, &sm)
            o[j] = m; tg[j] = t
            nf = nf | _alarm(mode, sm)
    elif S == 1:
        for j in range(n):
            m = o[j]; t = tg[j]; sm = 0
            _sel_tag(mode, src[j], t0, &m, &t, &sm)
            o[j] = m; tg[j] = t
            nf = nf | _alarm(mode, sm)
    else:
        for j in range(n):
            m = o[j]; t = tg[j]; sm = 0
            _sel_tag(mode, src[j * S], t0, &m, &t, &sm)
            o[j] = m; tg[j] = t
            nf = nf | _alarm(mode, sm)
    return nf


cdef inline void _max_pass_idx(pool_t* o, int64_t* oi, const pool_t* src,
                               Py_ssize_t S, Py_ssize_t n,
                               int64_t base) noexcept nogil:
    """Single tap with direct int64 indices (kernels too big for tags)."""
    cdef Py_ssize_t j
    cdef pool_t v
    for j in range(n):
        v = src[j * S]
        if _takes(v, o[j]):
            o[j] = v
            oi[j] = base + j * S


cdef inline void _sum_pass(real_t* o, const real_t* src, Py_ssize_t S,
                           Py_ssize_t gsz, Py_ssize_t n) noexcept nogil:
    """``o[j] += src[j*S + i]`` for i < gsz, in tap order."""
    cdef Py_ssize_t j
    if gsz == 1:
        if S == 1:
            for j in range(n):
                o[j] = o[j] + src[j]
        elif S == 2:
            for j in range(n):
                o[j] = o[j] + src[2 * j]
        else:
            for j in range(n):
                o[j] = o[j] + src[j * S]
    elif gsz == 2:
        if S == 1:
            for j in range(n):
                o[j] = o[j] + src[j] + src[j + 1]
        elif S == 2:
            for j in range(n):
                o[j] = o[j] + src[2 * j] + src[2 * j + 1]
        else:
            for j in range(n):
                o[j] = o[j] + src[j * S] + src[j * S + 1]
    else:
        if S == 1:
            for j in range(n):
                o[j] = o[j] + src[j] + src[j + 1] + src[j + 2]
        elif S == 2:
            for j in range(n):
                o[j] = o[j] + src[2 * j] + src[2 * j + 1] + src[2 * j + 2]
        else:
            for j in range(n):
                o[j] = o[j] + src[j * S] + src[j * S + 1] + src[j * S + 2]


# --------------------------------------------------- window row gathering

cdef struct Plan:
    # shared, read-only tables of one call (W direction)
    Py_ssize_t* wlo      # per kw: first ow whose tap kw is in bounds
    Py_ssize_t* whi      # per kw: one past the last such ow
    Py_ssize_t ilo       # interior [ilo, ihi): every tap in bounds
    Py_ssize_t ihi
    void* ftag           # per ow: tag of the first in-bounds tap (pool_t)
    int64_t* fac         # average divisor factors, D then H then W
    void* dw             # per ow: W divisor factor as the value type
    bint use_tags        # indices through value-typed tags
    bint exact_div       # divisors are exact in the value type
    int64_t fwu          # the W divisor factor when every column has it, else 0


cdef struct Scratch:
    # per-thread buffers
    void** rows          # input row pointers of one window
    int64_t* rbase       # flat in-plane offset of column 0 of each row
    void* stage          # staged copies of strided rows
    void* tg             # tags of one output chunk
    int64_t* tab         # tap number -> flat offset minus ow*S
    void* hb             # a row of row maxima (g.sep3)


cdef inline Py_ssize_t _gather_rows(const pool_t* x, const Geo* g,
                                    Py_ssize_t n, Py_ssize_t c,
                                    Py_ssize_t od, Py_ssize_t oh,
                                    const pool_t** rows,
                                    int64_t* rbase) noexcept nogil:
    """Collect the in-bounds input rows of window (od, oh), in scan order."""
    cdef Py_ssize_t kd, kh, id_, ih, nr = 0
    cdef Py_ssize_t d0 = od * g.st[0] - g.pd[0], h0 = oh * g.st[1] - g.pd[1]
    cdef Py_ssize_t kd1 = _imin(g.ks[0], _ceildiv(g.isz[0] - d0, g.dl[0]))
    cdef Py_ssize_t kh1 = _imin(g.ks[1], _ceildiv(g.isz[1] - h0, g.dl[1]))
    cdef const pool_t* xp = x + n * g.xs[0] + c * g.xs[1]
    # only taps in bounds are visited (kernels may be far larger than the input)
    for kd in range(_imax(0, _ceildiv(-d0, g.dl[0])), kd1):
        id_ = d0 + kd * g.dl[0]
        for kh in range(_imax(0, _ceildiv(-h0, g.dl[1])), kh1):
            ih = h0 + kh * g.dl[1]
            rows[nr] = xp + id_ * g.xs[2] + ih * g.xs[3]
            rbase[nr] = (id_ * g.isz[1] + ih) * g.isz[2]
            nr += 1
    return nr


cdef inline Py_ssize_t _window_rows(const pool_t* x, const Geo* g,
                                    Py_ssize_t n, Py_ssize_t c,
                                    Py_ssize_t od, Py_ssize_t oh,
                                    Py_ssize_t a, Py_ssize_t b,
                                    Scratch* sc, Py_ssize_t* w0) noexcept nogil:
    """In-bounds rows of window (od, oh) for output chunk [a, b), each
    contiguous along W: ``rows[r][w - w0]`` is input column ``w``.  Rows
    with a non-unit W stride are staged into scratch first."""
    cdef const pool_t** rows = <const pool_t**>sc.rows
    cdef Py_ssize_t nr = _gather_rows(x, g, n, c, od, oh, rows, sc.rbase)
    cdef Py_ssize_t wlo, whi, r, w, span, ws = g.xs[4]
    cdef pool_t* dst
    cdef const pool_t* src
    w0[0] = 0
    if ws != 1 and nr > 0:
        wlo = _imax(a * g.st[2] - g.pd[2] + g.kw0 * g.dl[2], 0)
        whi = _imin((b - 1) * g.st[2] - g.pd[2] + (g.kw0 + g.kwn - 1) * g.dl[2] + 1,
                    g.isz[2])
        span = whi - wlo
        if span > 0:
            for r in range(nr):
                dst = <pool_t*>sc.stage + r * span
                src = rows[r]
                # constant strides for the common views (reversed and
                # every-other-column), so that the copy vectorises
                if ws == -1:
                    src = src - wlo
                    for w in range(span):
                        dst[w] = src[-w]
                elif ws == 2:
                    src = src + 2 * wlo
                    for w in range(span):
                        dst[w] = src[2 * w]
                else:
                    for w in range(span):
                        dst[w] = src[(wlo + w) * ws]
                rows[r] = dst
            w0[0] = wlo
    return nr


cdef inline void _decode(const Geo* g, Py_ssize_t it, Py_ssize_t* n,
                         Py_ssize_t* c, Py_ssize_t* od, Py_ssize_t* oh0,
                         Py_ssize_t* oh1, Py_ssize_t* a,
                         Py_ssize_t* b) noexcept nogil:
    """Work item -> (n, c, od), output rows [oh0, oh1), columns [a, b)."""
    cdef Py_ssize_t ch = it % g.nchunk
    cdef Py_ssize_t bd
    it = it // g.nchunk
    bd = it % g.nband
    it = it // g.nband
    od[0] = it % g.osz[0]
    it = it // g.osz[0]
    c[0] = it % g.C
    n[0] = it // g.C
    oh0[0] = bd * g.band
    oh1[0] = _imin(oh0[0] + g.band, g.osz[1])
    a[0] = ch * g.chunk
    b[0] = _imin(a[0] + g.chunk, g.osz[2])


cdef int _w_plan(const Geo* g, Plan* pl) noexcept nogil:
    """Valid output ranges of the useful W taps (tap ``g.kw0 + i`` at entry
    ``i``), and the interior where all of them are in bounds.  Not built in
    sparse mode."""
    cdef Py_ssize_t i, off
    pl.ilo = 0
    pl.ihi = 0
    if g.sparse:
        return 0
    pl.wlo = <Py_ssize_t*>malloc((g.kwn + 1) * sizeof(Py_ssize_t))
    pl.whi = <Py_ssize_t*>malloc((g.kwn + 1) * sizeof(Py_ssize_t))
    if pl.wlo == NULL or pl.whi == NULL:
        return -1
    pl.ihi = g.osz[2]
    for i in range(g.kwn):
        off = (g.kw0 + i) * g.dl[2] - g.pd[2]
        pl.wlo[i] = _imin(_imax(0, _ceildiv(-off, g.st[2])), g.osz[2])
        pl.whi[i] = _imax(_imin(g.osz[2], _floordiv(g.isz[2] - 1 - off, g.st[2]) + 1),
                          pl.wlo[i])
        pl.ilo = _imax(pl.ilo, pl.wlo[i])
        pl.ihi = _imin(pl.ihi, pl.whi[i])
    if pl.ihi < pl.ilo:
        pl.ihi = pl.ilo
    return 0


cdef void _free_plan(Plan* pl) noexcept nogil:
    free(pl.wlo)
    free(pl.whi)
    free(pl.ftag)
    free(pl.fac)
    free(pl.dw)


cdef char* _scratch(const Geo* g, Py_ssize_t elsize, bint tags, bint staged,
                    Scratch* layout, Py_ssize_t* per_thread) noexcept nogil:
    """One block of per-thread scratch, cache-line aligned parts.  The
    returned ``layout`` holds offsets (as pointers) from a thread's base."""
    cdef Py_ssize_t nrows = g.rmax
    cdef Py_ssize_t span = g.isz[2]
    cdef Py_ssize_t off = 0
    if not g.sparse:
        span = _imin(span, (g.chunk - 1) * g.st[2] + (g.kwn - 1) * g.dl[2] + 1)
    layout.rows = <void**>off
    off += _lines(nrows * sizeof(void*))
    layout.rbase = <int64_t*>off
    off += _lines(nrows * sizeof(int64_t))
    layout.stage = <void*>off
    if staged:
        off += _lines(nrows * span * elsize)
    layout.tg = <void*>off
    if tags:
        off += _lines(g.chunk * elsize)
    layout.tab = <int64_t*>off
    if tags:
        off += _lines(nrows * g.kwn * sizeof(int64_t))
    layout.hb = <void*>off
    if g.sep3:
        off += _lines(g.chunk * elsize)
    per_thread[0] = off
    return <char*>malloc(off * g.nthreads + LINE)


cdef inline char* _aligned(char* p) noexcept nogil:
    """``p`` rounded up to a cache line: per-thread scratch blocks (whole
    lines each, allocated with a line to spare) then never share a line."""
    return p + (LINE - <size_t>p % LINE) % LINE


cdef inline Py_ssize_t _lines(Py_ssize_t nbytes) noexcept nogil:
    return (nbytes + LINE - 1) // LINE * LINE


cdef inline void _bind(Scratch* sc, const Scratch* layout, char* base) noexcept nogil:
    sc.rows = <void**>(base + <Py_ssize_t>layout.rows)
    sc.rbase = <int64_t*>(base + <Py_ssize_t>layout.rbase)
    sc.stage = <void*>(base + <Py_ssize_t>layout.stage)
    sc.tg = <void*>(base + <Py_ssize_t>layout.tg)
    sc.tab = <int64_t*>(base + <Py_ssize_t>layout.tab)
    sc.hb = <void*>(base + <Py_ssize_t>layout.hb)


# ------------------------------------------------------ streaming output
# A kernel may write an output of at least ``_STREAM_MIN`` bytes (far beyond
# the caches, where it is not read again soon) by building each part in a
# per-thread buffer and copying it out with non-temporal stores
# (``cypool_stream_copy``, ``omp_shim.h``); that saves the read of every
# output line that an ordinary store costs.  Used by the backward kernels:
# the max backward per plane (where it also replaces the zero fill's pass),
# streamed while it is built (``scatter_stream.h``: into fresh memory too,
# where that measured 1.27x) or, for volumes of one output row, copied out
# whole into a caller's array; the average backward into a caller's array
# per row through ``cypool_stream_put``, which carries a row's last partial
# line over to the next row (ordinary stores to the partial lines, one
# demand miss per row, had made per-row streaming slower than plain
# stores).  Into fresh memory the whole-plane and per-row copies are
# slower: the page faults have just brought every line into the cache.
# (This module's forward kernels store directly: their outputs are a
# quarter of their inputs or are compute-bound, and the average's square
# blocks streamed per row as the Lp forward's fused rows are (_lp.pyx)
# measured 0.78-0.96x; the same-size 3x3 average, with its rows from
# avg3_kernels.h, 0.82-0.88x into out= and 1.0x into fresh memory.)

cdef Py_ssize_t _STREAM_MIN = 16 << 20

# Inputs from this size (bytes) on are taken to come from memory, not the
# caches, by the prefetch hints that only pay there.
cdef Py_ssize_t _BIG_INPUT = 16 << 20


def _stream_min(Py_ssize_t nbytes=-1):
    """The output size (bytes) from which kernels stream their output;
    with ``nbytes >= 0`` it is set (tests lower it to cover the path).
    Returns the previous value.  0 where the platform has no streaming
    stores."""
    global _STREAM_MIN
    cdef Py_ssize_t old = _STREAM_MIN
    if nbytes >= 0:
        _STREAM_MIN = nbytes
    return old if CYPOOL_HAVE_STREAM else 0


def _big_input(Py_ssize_t nbytes=-1):
    """The input size (bytes) from which the channels-last kernels hint
    the next output row's input rows; with ``nbytes >= 0`` it is set (tests
    lower it to run that path on small inputs).  Returns the previous
    value."""
    global _BIG_INPUT
    cdef Py_ssize_t old = _BIG_INPUT
    if nbytes >= 0:
        _BIG_INPUT = nbytes
    return old


cdef bint _wants_stream(cnp.ndarray out) noexcept:
    return CYPOOL_HAVE_STREAM and cnp.PyArray_NBYTES(out) >= _STREAM_MIN


def _streams(Py_ssize_t nbytes):
    """Would an output of ``nbytes`` be streamed (``_stream_min``, and a
    platform with streaming stores)?"""
    return bool(CYPOOL_HAVE_STREAM and nbytes >= _STREAM_MIN)


# ------------------------------------------------------------ max forward

cdef inline bint _tags_fit(pool_t dummy, Py_ssize_t ntaps) noexcept nogil:
    """Can every tap number (and the no-tap mark) be held by pool_t?"""
    if pool_t is float:
        return ntaps < (1 << 24)
    elif pool_t is int8_t:
        return ntaps <= 127
    elif pool_t is uint8_t:
        return ntaps <= 255
    elif pool_t is int16_t:
        return ntaps <= 32767
    elif pool_t is uint16_t:
        return ntaps <= 65535
    else:
        return ntaps < (<Py_ssize_t>1 << 31)


cdef inline pool_t _notag(pool_t dummy) noexcept nogil:
    """Tag of a window with no in-bounds tap (maps to index -1)."""
    if pool_t is uint8_t:
        return 255
    elif pool_t is uint16_t:
        return 65535
    else:
        return -1


cdef inline bint _max_row_mode(mode_t* mode, const Geo* g, const Plan* pl,
                               Scratch* sc, Py_ssize_t nr, Py_ssize_t w0,
                               Py_ssize_t a, Py_ssize_t b, pool_t* o,
                               int64_t* oi) noexcept nogil:
    """Max of output columns [a, b) of one output row over the ``nr``
    gathered input rows.  Returns: a NaN went by (fast mode only)."""
    cdef const pool_t** rows = <const pool_t**>sc.rows
    cdef pool_t* tg = <pool_t*>sc.tg
    cdef const pool_t* ftag = <const pool_t*>pl.ftag
    cdef Py_ssize_t S = g.st[2], Dl = g.dl[2], K = g.kwn
    cdef Py_ssize_t P = g.pd[2] - g.kw0 * Dl  # taps renumbered from kw0
    cdef Py_ssize_t n = b - a, ia, ib, r, kw, gsz, lo, hi, seg, sa, sb, j, t
    cdef Py_ssize_t ntap = nr * K
    cdef pool_t low = _lowest(<pool_t>0)
    cdef bint tags = oi != NULL and pl.use_tags
    cdef bint direct = oi != NULL and not pl.use_tags
    cdef bint grouped = Dl == 1 and S <= 2
    cdef bint whole = False
    cdef bint nf = 0
    ia = _imax(a, pl.ilo)
    ib = _imin(b, pl.ihi)
    if ib < ia:
        ib = ia
    if (oi == NULL and grouped and nr == K and (K == 2 or K == 3) and ia < ib
            and K == g.ks[2]):
        # the whole window in one pass over the interior columns
        whole = True
        lo = ia * S - P - w0
        nf = _max_win(mode, o + (ia - a), rows[0] + lo, rows[1] + lo,
                      rows[K - 1] + lo, S, K, K, ib - ia)
        for j in range(ia - a):
            o[j] = low
        for j in range(ib - a, n):
            o[j] = low
    elif (oi == NULL and grouped and nr == 4 and K == 2 and g.ks[0] == 2
            and g.ks[1] == 2 and ia < ib and K == g.ks[2]):
        # 2 x 2 x 2 windows with every row in bounds: the same, four rows
        whole = True
        lo = ia * S - P - w0
        nf = _max_win4_run(mode, o + (ia - a), rows[0] + lo, rows[1] + lo,
                           rows[2] + lo, rows[3] + lo, S, ib - ia)
        for j in range(ia - a):
            o[j] = low
        for j in range(ib - a, n):
            o[j] = low
    elif (oi == NULL and grouped and nr == 1 and (K == 2 or K == 3) and ia < ib
            and K == g.ks[2]):
        # one input row (1-d pooling): the same, row by row
        whole = True
        lo = ia * S - P - w0
        nf = _max_win(mode, o + (ia - a), rows[0] + lo, rows[0] + lo, rows[0] + lo, S,
                      K, 1, ib - ia)
        for j in range(ia - a):
            o[j] = low
        for j in range(ib - a, n):
            o[j] = low
    else:
        for j in range(n):
            o[j] = low
    if oi != NULL and nr == 0:
        for j in range(n):
            oi[j] = -1
        return 0
    if tags:
        for j in range(n):
            tg[j] = ftag[a + j]
    elif direct:
        for j in range(n):
            oi[j] = -1
            for kw in range(K):
                if pl.wlo[kw] <= a + j < pl.whi[kw]:
                    oi[j] = sc.rbase[0] + (a + j) * S - P + kw * Dl
                    break
    for r in range(nr):
        # interior columns: every tap in bounds, up to 3 taps per pass
        if ia < ib and not direct and not whole:
            kw = 0
            while kw < K:
                gsz = _imin(3, K - kw) if grouped else 1
                lo = ia * S + kw * Dl - P - w0
                if tags:
                    nf |= _max_pass_tag(mode, o + (ia - a), tg + (ia - a), rows[r] + lo,
                                        S, gsz, ib - ia, <pool_t>(r * K + kw))
                else:
                    nf |= _max_pass(mode, o + (ia - a), rows[r] + lo, S, gsz, ib - ia)
                kw += gsz
        # border columns (and everything on the int64 path): tap by tap
        for seg in range(2):
            if direct:
                if seg == 1:
                    break
                sa = a
                sb = b
            elif seg == 0:
                sa = a
                sb = ia
            else:
                sa = ib
                sb = b
            if sa >= sb:
                continue
            for kw in range(K):
                lo = _imax(sa, pl.wlo[kw])
                hi = _imin(sb, pl.whi[kw])
                if lo >= hi:
                    continue
                if tags:
                    nf |= _max_pass_tag(mode, o + (lo - a), tg + (lo - a),
                                        rows[r] + (lo * S + kw * Dl - P - w0), S, 1,
                                        hi - lo, <pool_t>(r * K + kw))
                elif direct:
                    _max_pass_idx(o + (lo - a), oi + (lo - a),
                                  rows[r] + (lo * S + kw * Dl - P - w0), S, hi - lo,
                                  sc.rbase[r] + lo * S + kw * Dl - P)
                else:
                    nf |= _max_pass(mode, o + (lo - a),
                                    rows[r] + (lo * S + kw * Dl - P - w0), S, 1, hi - lo)
    if tags:
        # tap number -> flat index: rbase[row] + kw*Dl - P + ow*S
        for r in range(nr):
            for kw in range(K):
                sc.tab[r * K + kw] = sc.rbase[r] + kw * Dl - P
        for j in range(n):
            t = <Py_ssize_t>tg[j]
            oi[j] = sc.tab[t] + (a + j) * S if <size_t>t < <size_t>ntap else -1
    return nf


cdef inline void _max_row_sparse(const Geo* g, Scratch* sc, Py_ssize_t nr,
                                 Py_ssize_t w0, Py_ssize_t a, Py_ssize_t b,
                                 pool_t* o, int64_t* oi) noexcept nogil:
    """Output by output over its in-bounds taps only: for W taps so scattered
    (huge kernels, strides and padding) that tap-major passes would visit
    mostly empty taps."""
    cdef const pool_t** rows = <const pool_t**>sc.rows
    cdef Py_ssize_t S = g.st[2], Dl = g.dl[2], K = g.ks[2], L = g.isz[2]
    cdef Py_ssize_t j, r, kw, k0, k1, w, start
    cdef int64_t best_i
    cdef pool_t m, v
    for j in range(b - a):
        start = (a + j) * S - g.pd[2]
        k0 = _imax(0, _ceildiv(-start, Dl))
        k1 = _imin(K, _ceildiv(L - start, Dl))
        m = _lowest(<pool_t>0)
        best_i = -1
        for r in range(nr):
            for kw in range(k0, k1):
                w = start + kw * Dl
                v = rows[r][w - w0]
                if best_i == -1:
                    best_i = sc.rbase[r] + w   # PyTorch's initial index
                if _takes(v, m):
                    m = v
                    best_i = sc.rbase[r] + w
        o[j] = m
        if oi != NULL:
            oi[j] = best_i


cdef inline void _max_row(const Geo* g, const Plan* pl, Scratch* sc,
                          Py_ssize_t nr, Py_ssize_t w0, Py_ssize_t a,
                          Py_ssize_t b, pool_t* o, int64_t* oi) noexcept nogil:
    """Fast mode first; rows that met a NaN are recomputed exactly."""
    if g.sparse:
        _max_row_sparse(g, sc, nr, w0, a, b, o, oi)
    elif _max_row_mode(<_Fast*>NULL, g, pl, sc, nr, w0, a, b, o, oi):
        _max_row_mode(<_Exact*>NULL, g, pl, sc, nr, w0, a, b, o, oi)


cdef inline Py_ssize_t _edge_cols(Py_ssize_t start, Py_ssize_t K, Py_ssize_t L,
                                  Py_ssize_t* lo) noexcept nogil:
    """Columns ``start .. start+K-1`` clipped to [0, L): the first in ``lo``,
    their count returned (<= 0 when none)."""
    lo[0] = _imax(start, 0)
    return _imin(start + K, L) - lo[0]


cdef inline bint _max_edge(mode_t* mode, const pool_t* p0, const pool_t* p1,
                           const pool_t* p2, Py_ssize_t K, Py_ssize_t lo,
                           Py_ssize_t cnt, pool_t* out) noexcept nogil:
    """Max of one K x K window (K 2 or 3) cut by the W border: rows p0, p1
    (and p2 when K is 3), ``cnt`` columns from index ``lo`` of each row (the
    interior columns take the whole windows, so cnt is 1 or 2; none gives
    the lowest value), in scan order, in straight-line code (the loops it
    replaced cost a 3x3 block a tenth of its time).  Branch-free select;
    returns the NaN alarm (fast mode)."""
    cdef pool_t m, sm
    if cnt <= 0:
        out[0] = _lowest(<pool_t>0)
        return 0
    m = p0[lo]; sm = m
    if cnt == 1:
        _sel(mode, p1[lo], &m, &sm)
        if K == 3:
            _sel(mode, p2[lo], &m, &sm)
    else:
        _sel(mode, p0[lo + 1], &m, &sm)
        _sel(mode, p1[lo], &m, &sm)
        _sel(mode, p1[lo + 1], &m, &sm)
        if K == 3:
            _sel(mode, p2[lo], &m, &sm)
            _sel(mode, p2[lo + 1], &m, &sm)
    out[0] = m
    return _alarm(mode, sm)


cdef inline void _max_row_square(const Geo* g, const Plan* pl, const pool_t* p0,
                                 const pool_t* p1, const pool_t* p2,
                                 Py_ssize_t w0, Py_ssize_t a, Py_ssize_t b,
                                 pool_t* o) noexcept nogil:
    """Output columns [a, b) of a row of K x K windows (``g.square``) over
    input rows p0, p1 (and p2 when K is 3); ``p[w - w0]`` is column ``w``
    (W-contiguous input rows, or rows staged contiguous).  A window cut by
    the top or bottom edge repeats a neighbouring in-bounds row next to
    itself: that changes no maximum, no tie and no NaN choice of the scan
    order (a repeated element right after its own row is never taken over
    what its first copy gave).  Interior columns in one whole-window pass
    (NaN-free fast mode, recomputed exactly if a NaN went by), border
    columns one by one, branch-free.  This is the hot loop of the common
    CNN poolings, kept free of per-row bookkeeping."""
    cdef Py_ssize_t K = g.ks[2], S = g.st[2], P = g.pd[2], L = g.isz[2]
    cdef Py_ssize_t ia = _imax(a, pl.ilo), ib = _imin(b, pl.ihi), j, lo, cnt
    if ib < ia:
        ib = ia
    if ia < ib:
        lo = ia * S - P - w0
        if _max_win(<_Fast*>NULL, o + (ia - a), p0 + lo, p1 + lo, p2 + lo, S, K, K,
                    ib - ia):
            _max_win(<_Exact*>NULL, o + (ia - a), p0 + lo, p1 + lo, p2 + lo, S, K, K,
                     ib - ia)
    for j in range(a, ia):
        cnt = _edge_cols(j * S - P, K, L, &lo)
        if _max_edge(<_Fast*>NULL, p0, p1, p2, K, lo - w0, cnt, o + (j - a)):
            _max_edge(<_Exact*>NULL, p0, p1, p2, K, lo - w0, cnt, o + (j - a))
    for j in range(ib, b):
        cnt = _edge_cols(j * S - P, K, L, &lo)
        if _max_edge(<_Fast*>NULL, p0, p1, p2, K, lo - w0, cnt, o + (j - a)):
            _max_edge(<_Exact*>NULL, p0, p1, p2, K, lo - w0, cnt, o + (j - a))


cdef struct Cut:
    # one row of a block of square windows (``_block_cut``)
    Py_ssize_t ia, ib     # interior columns [ia, ib): every tap in bounds
    Py_ssize_t n, h, t    # n = ib - ia, cut as _head_len says: [0, h) and,
                          # when h < n, the last B + 1 from t
    Py_ssize_t lo         # input column of the first interior window
    Py_ssize_t kn         # the first window row that a next output row adds
    Py_ssize_t c0, nb     # the input columns the row reads: from c0, nb bytes


cdef inline void _block_cut(const Geo* g, const Plan* pl, Py_ssize_t a,
                            Py_ssize_t b, Py_ssize_t isz, Cut* c) noexcept nogil:
    """The column cut shared by every row of a block over output columns
    [a, b) (W taps ``j*S - P + kw``, kw < K; vectors of 64 bytes)."""
    cdef Py_ssize_t K = g.ks[2], S = g.st[2], P = g.pd[2], B = 64 // isz
    c.ia = _imax(a, pl.ilo)
    c.ib = _imax(c.ia, _imin(b, pl.ihi))
    c.n = c.ib - c.ia
    c.h = c.n if c.n <= B + 1 else _head_len(c.n, B)
    c.t = c.n - (B + 1)
    c.lo = c.ia * S - P
    c.kn = _imax(0, g.ks[1] - g.st[1])
    c.c0 = _imax(0, a * S - P)
    c.nb = (_imin(g.isz[2], (b - 1) * S - P + K) - c.c0) * isz


cdef inline void _inside_rows(const Geo* g, Py_ssize_t oh0, Py_ssize_t oh1,
                              Py_ssize_t* blo, Py_ssize_t* bhi) noexcept nogil:
    """The output rows [blo, bhi) of [oh0, oh1) whose window rows (H taps
    at unit dilation) all lie in the input: a block's rows."""
    blo[0] = _imin(oh1, _imax(oh0, _ceildiv(g.pd[1], g.st[1])))
    bhi[0] = _imax(blo[0], _imin(oh1, _floordiv(g.isz[1] - g.ks[1] + g.pd[1], g.st[1]) + 1))


cdef inline void _hint_rows(const char* p, Py_ssize_t rs, Py_ssize_t k0,
                            Py_ssize_t k1, Py_ssize_t nb) noexcept nogil:
    """Hint rows k0 .. k1-1 of ``p`` (``rs`` bytes apart), ``nb`` bytes of
    each (the rows a block's row i + pfd adds while row i runs)."""
    cdef Py_ssize_t k, off
    for k in range(k0, k1):
        for off in range(0, nb, 64):
            cypool_prefetch(p + k * rs + off)


cdef inline void _hint_block_row(const char* r, Py_ssize_t i, Py_ssize_t pfd,
                                 Py_ssize_t nrows, Py_ssize_t rstep, Py_ssize_t nxt,
                                 Py_ssize_t rs, const Cut* cut, Py_ssize_t K,
                                 Py_ssize_t isz) noexcept nogil:
    """While row i of a block of ``nrows`` output rows (from ``r``, ``rstep``
    elements apart; window rows ``rs`` apart) runs, hint the rows that row
    i + pfd adds; past the block, with ``nxt`` != 0, those of the next
    block ``nxt`` elements on (all K rows of its first row; ``_next_off``)."""
    if i + pfd < nrows:
        _hint_rows(r + ((i + pfd) * rstep + cut.c0) * isz, rs * isz, cut.kn, K, cut.nb)
    elif nxt != 0:
        _hint_rows(r + (nxt + (i + pfd - nrows) * rstep + cut.c0) * isz, rs * isz,
                   0 if i + pfd == nrows else cut.kn, K, cut.nb)


cdef inline Py_ssize_t _next_off(const Geo* g, Py_ssize_t n, Py_ssize_t c,
                                 Py_ssize_t od, Py_ssize_t oh0, Py_ssize_t oh1,
                                 Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """Elements from this work item's input to that of the item after it
    (the one a thread's static schedule runs next: the next depth slice, or
    the next (n, c) volume), when items are whole blocks of rows, so that a
    block can hint the next one's first rows while its last rows run; 0
    when there is none (no hint).  Measured on the blocks of 2x2x2 windows,
    (4, 32, 64, 64, 64) float32, 1 thread: 1.4x (a 32-row block left a
    quarter of its rows unhinted, and the next block started cold)."""
    if oh0 != 0 or oh1 != g.osz[1] or a != 0 or b != g.osz[2]:
        return 0
    if od + 1 < g.osz[0]:
        return g.st[0] * g.xs[2]
    if c + 1 < g.C:
        return g.xs[1] - od * g.st[0] * g.xs[2]
    if n + 1 < g.N:
        return g.xs[0] - c * g.xs[1] - od * g.st[0] * g.xs[2]
    return 0


cdef inline bint _max_sq_block(mode_t* mode, const Geo* g, const Plan* pl,
                               const pool_t* r, Py_ssize_t rs, Py_ssize_t rstep,
                               pool_t* o, Py_ssize_t os3, Py_ssize_t nrows,
                               Py_ssize_t a, Py_ssize_t b,
                               Py_ssize_t pfd, Py_ssize_t nxt) noexcept nogil:
    """``_max_row_square`` for ``nrows`` consecutive output rows of 2 x 2 or
    3 x 3 windows at W stride 1 or 2 whose rows all lie in the input: row i reads
    rows ``r + i*rstep + k*rs`` (W-contiguous, column 0 first) and writes
    columns [a, b) at ``o + i*os3``.  One function for the block, so that a
    row costs its vector passes and little else (per-row calls and
    bookkeeping were half the time of a 56-wide row).  Interior columns cut
    as ``_head_len`` says, border columns by ``_max_edge``; while row i
    runs, the input rows that row i + pfd adds are hinted (past the block,
    with ``nxt`` != 0, those of the next block, ``nxt`` elements on; see
    ``_next_off``).  Returns the NaN alarm of the whole block (fast mode):
    the caller then reruns it in exact mode."""
    cdef Py_ssize_t K = g.ks[2], S = g.st[2], P = g.pd[2], L = g.isz[2]
    cdef Py_ssize_t B = 64 // sizeof(pool_t), i, j, lw, cnt
    cdef Cut cut
    _block_cut(g, pl, a, b, sizeof(pool_t), &cut)
    cdef Py_ssize_t ia = cut.ia, ib = cut.ib, n = cut.n, h = cut.h, t = cut.t, lo = cut.lo
    cdef const pool_t* p0
    cdef const pool_t* p1
    cdef const pool_t* p2
    cdef pool_t* q
    cdef bint nf = 0
    for i in range(nrows):
        p0 = r + i * rstep
        p1 = p0 + rs
        p2 = p1 + rs if K == 3 else p1
        _hint_block_row(<const char*>r, i, pfd, nrows, rstep, nxt, rs, &cut, K, sizeof(pool_t))
        q = o + i * os3
        if n > 0:
            nf = nf | _max_win_run(mode, q + (ia - a), p0 + lo, p1 + lo, p2 + lo, S, K, h)
            if h < n:
                nf = nf | _max_win_run(mode, q + (ia - a) + t, p0 + lo + S * t,
                                       p1 + lo + S * t, p2 + lo + S * t, S, K, B + 1)
        for j in range(a, ia):
            cnt = _edge_cols(j * S - P, K, L, &lw)
            nf = nf | _max_edge(mode, p0, p1, p2, K, lw, cnt, q + (j - a))
        for j in range(ib, b):
            cnt = _edge_cols(j * S - P, K, L, &lw)
            nf = nf | _max_edge(mode, p0, p1, p2, K, lw, cnt, q + (j - a))
    return nf


cdef inline bint _max_cube_edge(mode_t* mode, const pool_t* p, Py_ssize_t ds,
                                Py_ssize_t rs, Py_ssize_t start, Py_ssize_t L,
                                pool_t* out) noexcept nogil:
    """One 2 x 2 x 2 window cut by the W edge: rows ``p`` + {0, rs, ds,
    ds + rs} (``p[w]`` is column w), columns ``start, start + 1`` clipped to
    [0, L), in scan order.  Branch-free select; the NaN alarm (fast mode)."""
    cdef Py_ssize_t k, w, lo = _imax(start, 0), hi = _imin(start + 2, L)
    cdef const pool_t* q
    cdef pool_t m, sm
    if lo >= hi:
        out[0] = _lowest(<pool_t>0)
        return 0
    m = p[lo]; sm = m
    for k in range(4):
        q = p + (k >> 1) * ds + (k & 1) * rs
        for w in range(lo + (k == 0), hi):
            _sel(mode, q[w], &m, &sm)
    out[0] = m
    return _alarm(mode, sm)


cdef inline bint _max_cube_block(mode_t* mode, const Geo* g, const Plan* pl,
                                 const pool_t* r, Py_ssize_t rstep, pool_t* o,
                                 Py_ssize_t nrows, Py_ssize_t a, Py_ssize_t b,
                                 Py_ssize_t pfd, Py_ssize_t nxt) noexcept nogil:
    """``nrows`` consecutive output rows of 2 x 2 x 2 windows (3-d pooling,
    unit dilation) whose four input rows all lie in the input: row i reads
    rows ``r + i*rstep`` + {0, xs3, xs2, xs2 + xs3} (scan order: depth,
    then height; W-contiguous, column 0 first) and writes columns [a, b) at
    ``o + i*os3``: interior columns through ``_max_win4_run``, the columns
    cut by padding or ceil mode by ``_max_cube_edge``.  As
    ``_max_sq_block``: one call for the block, the rows of row i + pfd
    hinted (past the block, with ``nxt`` != 0, those of the next block,
    ``nxt`` elements on: the next depth slice's block, which the thread
    runs next), one NaN alarm."""
    cdef Py_ssize_t S = g.st[2], P = g.pd[2], L = g.isz[2]
    cdef Py_ssize_t ds = g.xs[2], rs = g.xs[3], os3 = g.os[3], i, j
    cdef Cut cut
    _block_cut(g, pl, a, b, sizeof(pool_t), &cut)
    cdef Py_ssize_t ia = cut.ia, ib = cut.ib, lo = cut.lo
    cdef const pool_t* p
    cdef const char* pf
    cdef pool_t* q
    cdef bint nf = 0
    for i in range(nrows):
        p = r + i * rstep
        q = o + i * os3
        if i + pfd < nrows or nxt != 0:
            if i + pfd < nrows:
                pf = <const char*>(p + pfd * rstep + cut.c0)
            else:
                pf = <const char*>(r + nxt + (i + pfd - nrows) * rstep + cut.c0)
            _hint_rows(pf, rs * sizeof(pool_t), 0, 2, cut.nb)
            _hint_rows(pf + ds * sizeof(pool_t), rs * sizeof(pool_t), 0, 2, cut.nb)
        if ia < ib:
            nf = nf | _max_win4_run(mode, q + (ia - a), p + lo, p + rs + lo, p + ds + lo,
                                    p + ds + rs + lo, S, ib - ia)
        for j in range(a, ia):
            nf = nf | _max_cube_edge(mode, p, ds, rs, j * S - P, L, q + (j - a))
        for j in range(ib, b):
            nf = nf | _max_cube_edge(mode, p, ds, rs, j * S - P, L, q + (j - a))
    return nf


cdef inline bint _max_edge_idx(mode_t* mode, const pool_t* p0, const pool_t* p1,
                               const pool_t* p2, int64_t b0, int64_t b1,
                               int64_t b2, Py_ssize_t w0, Py_ssize_t K,
                               Py_ssize_t start, Py_ssize_t L, pool_t* out,
                               int64_t* outi) noexcept nogil:
    """``_max_edge`` with the flat index of the winner; ``b0``.. are the
    flat indices of column 0 of each row."""
    cdef Py_ssize_t w, lo = _imax(start, 0), hi = _imin(start + K, L)
    cdef pool_t m, sm
    cdef int64_t mi
    if lo >= hi:
        out[0] = _lowest(<pool_t>0)
        outi[0] = -1
        return 0
    m = p0[lo - w0]; sm = m; mi = b0 + lo
    for w in range(lo + 1, hi):
        _sel_idx(mode, p0[w - w0], b0 + w, &m, &mi, &sm)
    for w in range(lo, hi):
        _sel_idx(mode, p1[w - w0], b1 + w, &m, &mi, &sm)
    if K == 3:
        for w in range(lo, hi):
            _sel_idx(mode, p2[w - w0], b2 + w, &m, &mi, &sm)
    out[0] = m
    outi[0] = mi
    return _alarm(mode, sm)


cdef inline void _max_row_square_idx(const Geo* g, const Plan* pl,
                                     const pool_t** rp, const int64_t* rb,
                                     Py_ssize_t w0, Py_ssize_t a, Py_ssize_t b,
                                     pool_t* o, int64_t* oi) noexcept nogil:
    """``_max_row_square`` with indices: ``rb[k]`` is the flat index of
    column 0 of row ``rp[k]`` (a repeated row has its original's indices,
    so the index of the winner is unchanged too)."""
    cdef Py_ssize_t K = g.ks[2], S = g.st[2], P = g.pd[2], L = g.isz[2]
    cdef Py_ssize_t ia = _imax(a, pl.ilo), ib = _imin(b, pl.ihi), j, lo
    if ib < ia:
        ib = ia
    if ia < ib:
        lo = ia * S - P
        if _max_win_idx_cut(<_Fast*>NULL, o + (ia - a), oi + (ia - a), rp[0] + lo - w0,
                        rp[1] + lo - w0, rp[2] + lo - w0, rb[0] + lo, rb[1] + lo,
                        rb[2] + lo, S, K, ib - ia):
            _max_win_idx_cut(<_Exact*>NULL, o + (ia - a), oi + (ia - a), rp[0] + lo - w0,
                         rp[1] + lo - w0, rp[2] + lo - w0, rb[0] + lo, rb[1] + lo,
                         rb[2] + lo, S, K, ib - ia)
    for j in range(a, ia):
        if _max_edge_idx(<_Fast*>NULL, rp[0], rp[1], rp[2], rb[0], rb[1], rb[2], w0,
                         K, j * S - P, L, o + (j - a), oi + (j - a)):
            _max_edge_idx(<_Exact*>NULL, rp[0], rp[1], rp[2], rb[0], rb[1], rb[2], w0,
                          K, j * S - P, L, o + (j - a), oi + (j - a))
    for j in range(ib, b):
        if _max_edge_idx(<_Fast*>NULL, rp[0], rp[1], rp[2], rb[0], rb[1], rb[2], w0,
                         K, j * S - P, L, o + (j - a), oi + (j - a)):
            _max_edge_idx(<_Exact*>NULL, rp[0], rp[1], rp[2], rb[0], rb[1], rb[2], w0,
                          K, j * S - P, L, o + (j - a), oi + (j - a))


cdef inline bint _max_sq_block_idx(mode_t* mode, const Geo* g, const Plan* pl,
                                   const pool_t* r, Py_ssize_t rs, Py_ssize_t rstep,
                                   int64_t rb, pool_t* o, int64_t* oi,
                                   Py_ssize_t nrows, Py_ssize_t a, Py_ssize_t b,
                                   Py_ssize_t pfd, Py_ssize_t nxt) noexcept nogil:
    """``_max_sq_block`` with indices (``_max_row_square_idx`` row by row):
    ``rb`` is the flat in-plane index of column 0 of the block's first
    window row; row i's outputs and indices go to ``o + i*os3`` and
    ``oi + i*js3``."""
    cdef Py_ssize_t K = g.ks[2], S = g.st[2], P = g.pd[2], L = g.isz[2], i, j
    cdef Cut cut
    _block_cut(g, pl, a, b, sizeof(pool_t), &cut)
    cdef Py_ssize_t ia = cut.ia, ib = cut.ib, n = cut.n, lo = cut.lo
    cdef int64_t b0, b1, b2, bstep = g.st[1] * g.isz[2]
    cdef const pool_t* p0
    cdef const pool_t* p1
    cdef const pool_t* p2
    cdef pool_t* q
    cdef int64_t* qi
    cdef bint nf = 0
    for i in range(nrows):
        p0 = r + i * rstep
        p1 = p0 + rs
        p2 = p1 + rs if K == 3 else p1
        b0 = rb + i * bstep
        b1 = b0 + L
        b2 = b1 + L if K == 3 else b1
        _hint_block_row(<const char*>r, i, pfd, nrows, rstep, nxt, rs, &cut, K, sizeof(pool_t))
        q = o + i * g.os[3]
        qi = oi + i * g.js[3]
        if n > 0:
            nf = nf | _max_win_idx_cut(mode, q + (ia - a), qi + (ia - a), p0 + lo,
                                       p1 + lo, p2 + lo, b0 + lo, b1 + lo, b2 + lo,
                                       S, K, n)
        for j in range(a, ia):
            nf = nf | _max_edge_idx(mode, p0, p1, p2, b0, b1, b2, 0, K, j * S - P, L,
                                    q + (j - a), qi + (j - a))
        for j in range(ib, b):
            nf = nf | _max_edge_idx(mode, p0, p1, p2, b0, b1, b2, 0, K, j * S - P, L,
                                    q + (j - a), qi + (j - a))
    return nf


cdef inline Py_ssize_t _pf_dist(const Geo* g, Py_ssize_t a, Py_ssize_t b,
                                Py_ssize_t isz) noexcept nogil:
    """How many output rows ahead to hint: about 4 KiB of input, 1 to 8."""
    cdef Py_ssize_t span = _imin((b - a) * g.st[2] + g.ks[2], g.isz[2]) * isz
    span = _imax(1, span * _imin(g.st[1], g.ks[1]))
    return _imax(1, _imin(8, 4096 // span))


cdef inline void _prefetch_window(const char* xp, const Geo* g, Py_ssize_t isz,
                                  Py_ssize_t od, Py_ssize_t oh, Py_ssize_t a,
                                  Py_ssize_t b) noexcept nogil:
    """Hint the input rows that output row ``oh`` adds to its predecessor's
    window, over the columns that outputs [a, b) read; ``xp`` is the (n, c)
    plane.  Small windows over W-contiguous (or reversed) rows only; never
    dereferences."""
    cdef Py_ssize_t kd, kh, id_, ih, w0, w1, off, nb, kh0, first
    cdef const char* p
    if (oh >= g.osz[1] or (g.xs[4] != 1 and g.xs[4] != -1) or g.ks[0] > 4
            or g.ks[1] > 8 or g.st[1] > 8):
        return
    w0 = _imax(0, a * g.st[2] - g.pd[2])
    w1 = _imin(g.isz[2], (b - 1) * g.st[2] - g.pd[2]
               + (g.ks[2] - 1) * g.dl[2] + 1) if g.ks[2] <= g.isz[2] else g.isz[2]
    if w1 <= w0:
        return
    nb = (w1 - w0) * isz
    # the lowest address of the span: column w0, or w1 - 1 in reversed rows
    first = w0 if g.xs[4] == 1 else -(w1 - 1)
    kh0 = _imax(0, g.ks[1] - g.st[1])
    for kd in range(g.ks[0]):
        id_ = od * g.st[0] - g.pd[0] + kd * g.dl[0]
        if id_ < 0 or id_ >= g.isz[0]:
            continue
        for kh in range(kh0, g.ks[1]):
            ih = oh * g.st[1] - g.pd[1] + kh * g.dl[1]
            if ih < 0 or ih >= g.isz[1]:
                continue
            p = xp + (id_ * g.xs[2] + ih * g.xs[3] + first) * isz
            for off in range(0, nb, 64):
                cypool_prefetch(p + off)


# 3 x 3 windows at stride 2 x 2 (the ResNet-style stem pooling), values
# only: the separable kernel of sep_kernels.h (row maxima first, 6 taps per
# output instead of 9, each input row read once; PyTorch's choice among
# equal values kept).  A block whose row pass saw a NaN is recomputed by
# the row kernels below.  Against the row kernels, same process, AMD EPYC,
# pad 1, 1 thread: float32 (32, 64, 112, 112) 1.33x in the AVX-512 build,
# 1.53x AVX2, 1.47x SSE2; output rows of 9 to 28 float32 1.3-1.5x; float64
# 1.1-1.5x, int32 1.4x; the 8192 x 8192 image 1.07x (2 threads 1.14x).
# 8- and 16-bit values measured 0.83-0.99x (their stride-2 loads are byte
# and word shuffles) and keep the row kernels.  Against the tap table it
# wins from 7 outputs per row (14 x 14 planes, pad 1: 1.28x) and loses at 4
# (0.8x): ``_SEP3_MIN_OW``, checked before the table.
cdef bint _SEP3 = True
cdef Py_ssize_t _SEP3_MIN_OW = 7
cdef Py_ssize_t _SEP3_PF = 8192    # bytes of input rows to hint ahead


def _sep3(int on=-1, Py_ssize_t min_ow=-1):
    """Whether planar 3x3/2 max pooling (values only) runs the separable
    kernel, and from how many output columns on; arguments >= 0 set them
    (tests and A/B).  Returns the previous settings."""
    global _SEP3, _SEP3_MIN_OW
    old = (_SEP3, _SEP3_MIN_OW)
    if on >= 0:
        _SEP3 = on != 0
    if min_ow >= 0:
        _SEP3_MIN_OW = min_ow
    return old


cdef bint _sep3_ok(const Geo* g, Py_ssize_t elsize) noexcept nogil:
    """3 x 3 windows (1 x 3 x 3 in 3-d) at H and W stride 2, unit dilation,
    padding 0 or 1, W-contiguous input, every window with an in-bounds row
    and column (the rule valid geometry keeps; a direct kernel call with a
    larger output need not)."""
    return (_SEP3 and elsize >= 4 and g.osz[2] >= _SEP3_MIN_OW
            and g.square and g.ks[1] == 3 and g.ks[2] == 3
            and g.st[1] == 2 and g.st[2] == 2 and g.pd[1] <= 1 and g.pd[2] <= 1
            and g.xs[4] == 1 and g.os[4] == 1
            and (g.osz[1] - 1) * 2 - g.pd[1] <= g.isz[1] - 1
            and (g.osz[2] - 1) * 2 - g.pd[2] <= g.isz[2] - 1)


cdef inline int _sep3_block(const pool_t* xp, const Geo* g, Py_ssize_t oh0,
                            Py_ssize_t oh1, Py_ssize_t a, Py_ssize_t b,
                            pool_t* o, pool_t* hb, Py_ssize_t pfr,
                            Py_ssize_t nxt) noexcept nogil:
    """Output rows [oh0, oh1), columns [a, b) of plane ``xp`` (at depth
    slice od already), the next item's rows hinted ``nxt`` elements on
    (``_next_off``); 1 when a NaN (or inf - inf) went by."""
    cdef Py_ssize_t H = g.isz[1], W = g.isz[2], rs = g.xs[3], ph = g.pd[1]
    cdef Py_ssize_t pw = g.pd[2], os = g.os[3]
    if pool_t is float:
        return cypool_sep33_f32(xp, H, W, rs, ph, pw, oh0, oh1, a, b, o, os, hb, pfr, nxt)
    elif pool_t is double:
        return cypool_sep33_f64(xp, H, W, rs, ph, pw, oh0, oh1, a, b, o, os, hb, pfr, nxt)
    elif pool_t is int32_t:
        return cypool_sep33_i32(xp, H, W, rs, ph, pw, oh0, oh1, a, b, o, os, hb, pfr, nxt)
    elif pool_t is int64_t:
        return cypool_sep33_i64(xp, H, W, rs, ph, pw, oh0, oh1, a, b, o, os, hb, pfr, nxt)
    else:
        return 1    # 8- and 16-bit values (never admitted): the row kernels


cdef inline void _max_fwd_item(const pool_t* x, pool_t* out, int64_t* idx,
                               const Geo* g, const Plan* pl, Py_ssize_t it,
                               const Scratch* layout, char* mine) noexcept nogil:
    cdef Py_ssize_t n, c, od, oh0, oh1, oh, a, b, nr, w0, h0, pfd, lo, hi, k, r
    cdef Py_ssize_t blo, bhi, nxt
    cdef int64_t rbase
    cdef bint cube
    cdef pool_t* o
    cdef int64_t* oi = NULL
    cdef const pool_t* xp
    cdef const pool_t* rr
    cdef const pool_t* rp[3]
    cdef int64_t rb[3]
    cdef Scratch scr
    cdef Scratch* sc = &scr
    _bind(sc, layout, mine)
    _decode(g, it, &n, &c, &od, &oh0, &oh1, &a, &b)
    xp = x + n * g.xs[0] + c * g.xs[1] + od * g.st[0] * g.xs[2]
    pfd = _pf_dist(g, a, b, sizeof(pool_t))
    if g.sep3:
        o = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh0 * g.os[3] + a
        if not _sep3_block(xp, g, oh0, oh1, a, b, o, <pool_t*>sc.hb,
                           _imin(16, _imax(2, _SEP3_PF // ((b - a) * 2 * sizeof(pool_t)))),
                           _next_off(g, n, c, od, oh0, oh1, a, b)):
            return
    # the rows whose windows lie inside the input, values only: one
    # _max_cube_block (2x2x2) or _max_sq_block (2x2, 3x3); the rest row by
    # row below
    # 2 x 2 x 2 windows (values only) or square 2 x 2 / 3 x 3 ones (8-byte
    # values measured 0.80-0.90x in blocks: they keep the row path)
    cube = (not g.square and g.ks[0] == 2 and g.ks[1] == 2 and g.ks[2] == 2
            and g.dl[0] == 1 and g.dl[1] == 1 and g.dl[2] == 1 and g.st[2] <= 2
            and g.xs[4] == 1 and idx == NULL and g.kw0 == 0 and g.kwn == 2
            and 0 <= od * g.st[0] - g.pd[0] <= g.isz[0] - 2)
    blo = bhi = oh0
    if cube or (g.square and g.xs[4] == 1 and sizeof(pool_t) < 8):
        _inside_rows(g, oh0, oh1, &blo, &bhi)
    if bhi > blo:
        o = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + blo * g.os[3] + a
        rr = (x + n * g.xs[0] + c * g.xs[1] + (od * g.st[0] - g.pd[0]) * g.xs[2]
              + (blo * g.st[1] - g.pd[1]) * g.xs[3])
        if cube:
            # the next item of this thread: the next depth slice's block, when
            # the (n, c) volume has one and it holds as many rows
            nxt = 0
            if od + 1 < g.osz[0] and (od + 1) * g.st[0] - g.pd[0] <= g.isz[0] - 2:
                nxt = _next_off(g, n, c, od, oh0, oh1, a, b)
            if _max_cube_block(<_Fast*>NULL, g, pl, rr, g.st[1] * g.xs[3], o, bhi - blo,
                               a, b, pfd, nxt):
                _max_cube_block(<_Exact*>NULL, g, pl, rr, g.st[1] * g.xs[3], o,
                                bhi - blo, a, b, 0, 0)
        elif idx != NULL:
            oi = idx + n * g.js[0] + c * g.js[1] + od * g.js[2] + blo * g.js[3] + a
            rbase = (od * g.st[0] * g.isz[1] + blo * g.st[1] - g.pd[1]) * g.isz[2]
            if _max_sq_block_idx(<_Fast*>NULL, g, pl, rr, g.xs[3], g.st[1] * g.xs[3],
                                 rbase, o, oi, bhi - blo, a, b, pfd,
                                 _next_off(g, n, c, od, oh0, oh1, a, b)):
                _max_sq_block_idx(<_Exact*>NULL, g, pl, rr, g.xs[3], g.st[1] * g.xs[3],
                                  rbase, o, oi, bhi - blo, a, b, 0, 0)
        elif _max_sq_block(<_Fast*>NULL, g, pl, rr, g.xs[3], g.st[1] * g.xs[3], o,
                           g.os[3], bhi - blo, a, b, pfd,
                           _next_off(g, n, c, od, oh0, oh1, a, b)):
            _max_sq_block(<_Exact*>NULL, g, pl, rr, g.xs[3], g.st[1] * g.xs[3], o,
                          g.os[3], bhi - blo, a, b, 0, 0)
    for oh in range(oh0, oh1):
        if blo <= oh < bhi:
            continue
        _prefetch_window(<const char*>(x + n * g.xs[0] + c * g.xs[1]), g,
                         sizeof(pool_t), od, oh + pfd, a, b)
        o = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3] + a
        if idx != NULL:
            oi = idx + n * g.js[0] + c * g.js[1] + od * g.js[2] + oh * g.js[3] + a
        if g.square:
            # window rows h0 .. h0+K-1, those outside the input replaced by
            # the nearest in-bounds one (see _max_row_square)
            h0 = oh * g.st[1] - g.pd[1]
            lo = _imax(h0, 0)
            hi = _imin(h0 + g.ks[1], g.isz[1]) - 1
            if lo <= hi:
                if g.xs[4] == 1:
                    w0 = 0
                    for k in range(3):
                        r = _imax(lo, _imin(h0 + k, hi))
                        rp[k] = xp + r * g.xs[3]
                        rb[k] = (od * g.st[0] * g.isz[1] + r) * g.isz[2]
                else:
                    # strided rows (negative, stepped or transposed views):
                    # the in-bounds rows staged contiguous first
                    nr = _window_rows(x, g, n, c, od, oh, a, b, sc, &w0)
                    for k in range(3):
                        r = _imax(0, _imin(h0 + k - lo, nr - 1))
                        rp[k] = (<const pool_t**>sc.rows)[r]
                        rb[k] = sc.rbase[r]
                if g.ks[2] == 2:
                    rp[2] = rp[1]
                    rb[2] = rb[1]
                if oi == NULL:
                    _max_row_square(g, pl, rp[0], rp[1], rp[2], w0, a, b, o)
                else:
                    _max_row_square_idx(g, pl, rp, rb, w0, a, b, o, oi)
                continue
        nr = _window_rows(x, g, n, c, od, oh, a, b, sc, &w0)
        _max_row(g, pl, sc, nr, w0, a, b, o, oi)


cdef int _max_fwd(const pool_t* x, pool_t* out, int64_t* idx,
                  Geo* g) noexcept nogil:
    cdef Py_ssize_t nitems = g.N * g.C * g.osz[0] * g.nband * g.nchunk
    cdef Py_ssize_t it, ow, kw, per_thread
    cdef Plan pl
    cdef Scratch layout
    cdef char* mine
    cdef char* scratch
    cdef pool_t* ftag
    cdef int tid
    memset(&pl, 0, sizeof(Plan))
    pl.use_tags = (idx != NULL and not g.sparse
                   and _tags_fit(<pool_t>0, g.rmax * g.kwn))
    if _w_plan(g, &pl) != 0:
        _free_plan(&pl)
        return -1
    if pl.use_tags:
        # first in-bounds W tap of every output column (its tag with row 0)
        ftag = <pool_t*>malloc(g.osz[2] * sizeof(pool_t))
        pl.ftag = ftag
        if ftag == NULL:
            _free_plan(&pl)
            return -1
        for ow in range(g.osz[2]):
            ftag[ow] = _notag(<pool_t>0)
            for kw in range(g.kwn):
                if pl.wlo[kw] <= ow < pl.whi[kw]:
                    ftag[ow] = <pool_t>kw
                    break
    scratch = _scratch(g, sizeof(pool_t), pl.use_tags, g.xs[4] != 1, &layout,
                       &per_thread)
    if scratch == NULL:
        _free_plan(&pl)
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        mine = _aligned(scratch) + tid * per_thread
        for it in prange(nitems, schedule='static'):
            _max_fwd_item(x, out, idx, g, &pl, it, &layout, mine)
    free(scratch)
    _free_plan(&pl)
    return 0


# ------------------------------------------------ channels-last forward
# Output laid out (N, *spatial, C) with the channels contiguous (the caller's
# ``channels_last``).  The unit of work is a run of output positions of one
# (n, od, oh); for each position the in-bounds taps are visited in scan
# order and each tap updates all C channels at once, so the inner loop runs
# along the contiguous channel axis and vectorises.  The first in-bounds tap
# initialises (PyTorch starts from -inf with the first tap's index, which
# gives the same values and indices).  Indices are written directly.

cdef inline void _tap_range(Py_ssize_t start, Py_ssize_t k, Py_ssize_t d,
                            Py_ssize_t L, Py_ssize_t* lo,
                            Py_ssize_t* hi) noexcept nogil:
    """Taps t in [lo, hi) with 0 <= start + t*d < L."""
    lo[0] = _imax(0, _ceildiv(-start, d))
    hi[0] = _imin(k, _ceildiv(L - start, d))
    if hi[0] < lo[0]:
        hi[0] = lo[0]


cdef inline void _max_cl_pos(const pool_t* x, pool_t* o, int64_t* oi,
                             const Geo* g, Py_ssize_t n, Py_ssize_t od,
                             Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t C = g.C, cs = g.xs[1], c, kd, kh, kw
    cdef Py_ssize_t d0 = od * g.st[0] - g.pd[0], h0 = oh * g.st[1] - g.pd[1]
    cdef Py_ssize_t w0 = ow * g.st[2] - g.pd[2], id_, ih, iw
    cdef Py_ssize_t dlo, dhi, hlo, hhi, wlo, whi
    cdef const pool_t* src
    cdef int64_t flat
    cdef bint first = True, take
    cdef pool_t v
    _tap_range(d0, g.ks[0], g.dl[0], g.isz[0], &dlo, &dhi)
    _tap_range(h0, g.ks[1], g.dl[1], g.isz[1], &hlo, &hhi)
    _tap_range(w0, g.ks[2], g.dl[2], g.isz[2], &wlo, &whi)
    for kd in range(dlo, dhi):
        id_ = d0 + kd * g.dl[0]
        for kh in range(hlo, hhi):
            ih = h0 + kh * g.dl[1]
            for kw in range(wlo, whi):
                iw = w0 + kw * g.dl[2]
                src = x + n * g.xs[0] + id_ * g.xs[2] + ih * g.xs[3] + iw * g.xs[4]
                flat = (id_ * g.isz[1] + ih) * g.isz[2] + iw
                if first:
                    first = False
                    if cs == 1:
                        for c in range(C):
                            o[c] = src[c]
                    else:
                        for c in range(C):
                            o[c] = src[c * cs]
                    if oi != NULL:
                        for c in range(C):
                            oi[c] = flat
                elif oi == NULL:
                    if cs == 1:
                        for c in range(C):
                            v = src[c]
                            o[c] = v if _takes(v, o[c]) else o[c]
                    else:
                        for c in range(C):
                            v = src[c * cs]
                            o[c] = v if _takes(v, o[c]) else o[c]
                else:
                    for c in range(C):
                        v = src[c * cs]
                        take = _takes(v, o[c])
                        o[c] = v if take else o[c]
                        oi[c] = flat if take else oi[c]
    if first:
        # the dilation hole: no tap in bounds
        for c in range(C):
            o[c] = _lowest(<pool_t>0)
        if oi != NULL:
            for c in range(C):
                oi[c] = -1


cdef inline void _decode_cl(const Geo* g, Py_ssize_t it, Py_ssize_t* n,
                            Py_ssize_t* od, Py_ssize_t* oh0, Py_ssize_t* oh1,
                            Py_ssize_t* a, Py_ssize_t* b) noexcept nogil:
    """Channels-last work item -> (n, od), output rows [oh0, oh1), columns
    [a, b); every channel belongs to the item."""
    cdef Py_ssize_t ch = it % g.nchunk
    cdef Py_ssize_t bd
    it = it // g.nchunk
    bd = it % g.nband
    it = it // g.nband
    od[0] = it % g.osz[0]
    n[0] = it // g.osz[0]
    oh0[0] = bd * g.band
    oh1[0] = _imin(oh0[0] + g.band, g.osz[1])
    a[0] = ch * g.chunk
    b[0] = _imin(a[0] + g.chunk, g.osz[2])


cdef inline void _next_row_taps(const Geo* g, Py_ssize_t isz, Py_ssize_t oh,
                                Py_ssize_t* nlo, Py_ssize_t* nhi) noexcept nogil:
    """The window rows [nlo, nhi) that output row ``oh + 1`` adds to row
    ``oh``'s (unit dilation), for the channels-last kernels to hint a row
    ahead: none unless the input is large (``_BIG_INPUT``: the hardware
    prefetcher, following the rows being read, leaves the next row's first
    reads waiting on memory; from the caches the hints only cost) or past
    the last output row."""
    _tap_range((oh + 1) * g.st[1] - g.pd[1], g.ks[1], 1, g.isz[1], nlo, nhi)
    nlo[0] = _imax(nlo[0], g.ks[1] - g.st[1])
    if (oh + 1 >= g.osz[1]
            or g.N * g.C * g.isz[0] * g.isz[1] * g.isz[2] * isz < _BIG_INPUT):
        nhi[0] = nlo[0]


cdef inline void _prefetch_cl(const char* plane, const Geo* g, Py_ssize_t isz,
                              Py_ssize_t d0, Py_ssize_t dlo, Py_ssize_t dhi,
                              Py_ssize_t h0, Py_ssize_t hlo, Py_ssize_t hhi,
                              Py_ssize_t w) noexcept nogil:
    """Hint input columns [w, w + S) of every row of a window (channels-last
    rows with packed channels, unit dilation): the columns a position a few
    KiB further along the row will read first."""
    cdef Py_ssize_t kd, kh, off, nb
    cdef const char* p
    if w < 0 or w + g.st[2] > g.isz[2] or dhi - dlo > 4 or hhi - hlo > 8:
        return
    nb = g.st[2] * g.C * isz
    for kd in range(dlo, dhi):
        for kh in range(hlo, hhi):
            p = plane + ((d0 + kd) * g.xs[2] + (h0 + kh) * g.xs[3] + w * g.xs[4]) * isz
            for off in range(0, nb, 64):
                cypool_prefetch(p + off)


cdef inline bint _max_cl_win(mode_t* mode, pool_t* o, const pool_t** rp,
                             const Py_ssize_t* co, Py_ssize_t K,
                             Py_ssize_t C) noexcept nogil:
    """All C channels of one K x K window (K 2 or 3), channels contiguous:
    tap (r, k) is ``rp[r] + co[k]``, in scan order, the maximum kept in a
    register across the taps and stored once.  Returns the NaN alarm (fast
    mode)."""
    cdef const pool_t* a0 = rp[0] + co[0]
    cdef const pool_t* a1 = rp[0] + co[1]
    cdef const pool_t* a2 = rp[0] + co[2]
    cdef const pool_t* b0 = rp[1] + co[0]
    cdef const pool_t* b1 = rp[1] + co[1]
    cdef const pool_t* b2 = rp[1] + co[2]
    cdef const pool_t* c0 = rp[2] + co[0]
    cdef const pool_t* c1 = rp[2] + co[1]
    cdef const pool_t* c2 = rp[2] + co[2]
    cdef Py_ssize_t c
    cdef pool_t m, sm
    cdef bint nf = 0
    if K == 2:
        for c in range(C):
            m = a0[c]; sm = m
            _sel(mode, a1[c], &m, &sm)
            _sel(mode, b0[c], &m, &sm)
            _sel(mode, b1[c], &m, &sm)
            o[c] = m
            nf = nf | _alarm(mode, sm)
    else:
        for c in range(C):
            m = a0[c]; sm = m
            _sel(mode, a1[c], &m, &sm)
            _sel(mode, a2[c], &m, &sm)
            _sel(mode, b0[c], &m, &sm)
            _sel(mode, b1[c], &m, &sm)
            _sel(mode, b2[c], &m, &sm)
            _sel(mode, c0[c], &m, &sm)
            _sel(mode, c1[c], &m, &sm)
            _sel(mode, c2[c], &m, &sm)
            o[c] = m
            nf = nf | _alarm(mode, sm)
    return nf


cdef inline void _max_cl_run(pool_t* o, Py_ssize_t os4, const pool_t** rp,
                             Py_ssize_t s0, const Geo* g, Py_ssize_t K,
                             Py_ssize_t n, const char* pf, Py_ssize_t pfr,
                             Py_ssize_t pfd, Py_ssize_t pfw,
                             Py_ssize_t w0) noexcept nogil:
    """``n`` consecutive interior windows of ``_max_cl_item``'s square case
    (every tap in bounds; window i's first column ``s0 + i*S``), without
    the per-position bookkeeping.  ``pf`` not NULL: as ``_prefetch_cl``,
    hint columns [w, w + S) of ``pfr`` rows from ``pf`` (``pfd`` depth
    slices, at most one here) before window i, w = ``w0 + pfw + i*S``
    while that lies in the row."""
    cdef Py_ssize_t i, k, off, w, S = g.st[2], ws = g.xs[4], C = g.C
    cdef Py_ssize_t nb = S * C * <Py_ssize_t>sizeof(pool_t)
    cdef Py_ssize_t rs = g.xs[3] * <Py_ssize_t>sizeof(pool_t)
    cdef Py_ssize_t co[3]
    cdef const char* p
    if pfd != 1 or pfr > 8:
        pf = NULL
    for i in range(n):
        w = w0 + pfw + i * S
        if pf != NULL and w + S <= g.isz[2]:
            p = pf + w * ws * <Py_ssize_t>sizeof(pool_t)
            for k in range(pfr):
                for off in range(0, nb, 64):
                    cypool_prefetch(p + off)
                p += rs
        co[0] = (s0 + i * S) * ws
        co[1] = co[0] + ws
        co[2] = co[1] + ws
        if _max_cl_win(<_Fast*>NULL, o + i * os4, rp, co, K, C):
            _max_cl_win(<_Exact*>NULL, o + i * os4, rp, co, K, C)


cdef inline void _max_cl_item(const pool_t* x, pool_t* out, int64_t* idx,
                              const Geo* g, Py_ssize_t it) noexcept nogil:
    cdef Py_ssize_t n, od, oh0, oh1, oh, a, b, ow, d0, h0, dlo, dhi, hlo, hhi
    cdef Py_ssize_t pfw = 0, K = g.ks[2], s0, k, wlo, whi, nlo, nhi
    cdef Py_ssize_t run_lo, run_hi
    cdef Py_ssize_t co[3]
    cdef const pool_t* rp[3]
    cdef pool_t* o
    cdef int64_t* oi = NULL
    # 2x2 / 3x3 windows without indices, channels contiguous: each window
    # in one pass over its channels (``_max_cl_win``); taps outside the
    # input are replaced by the nearest in-bounds row or column, repeated
    # next to itself, which changes no maximum, tie or NaN choice of the
    # scan order (see ``_max_row_square``)
    cdef bint sq = (idx == NULL and g.ks[0] == 1 and g.pd[0] == 0
                    and g.ks[1] == K and (K == 2 or K == 3) and g.dl[1] == 1
                    and g.dl[2] == 1 and g.xs[1] == 1 and g.os[1] == 1)
    _decode_cl(g, it, &n, &od, &oh0, &oh1, &a, &b)
    if (g.xs[1] == 1 and g.xs[4] == g.C and g.st[2] <= 4 and g.dl[0] == 1
            and g.dl[1] == 1):
        # about 4 KiB ahead along the rows, whole output positions
        pfw = _imax(1, 4096 // (g.C * <Py_ssize_t>sizeof(pool_t) * g.st[2])) * g.st[2]
    d0 = od * g.st[0] - g.pd[0]
    _tap_range(d0, g.ks[0], 1, g.isz[0], &dlo, &dhi)
    for oh in range(oh0, oh1):
        h0 = oh * g.st[1] - g.pd[1]
        _tap_range(h0, g.ks[1], 1, g.isz[1], &hlo, &hhi)
        if sq and hlo < hhi:
            for k in range(3):
                rp[k] = (x + n * g.xs[0] + d0 * g.xs[2]
                         + (h0 + _imax(hlo, _imin(k, hhi - 1))) * g.xs[3])
        # a large input: hint the rows that the next output row adds, at
        # this position (1.10x k2s2, 1.14x k3s2p1 at (32, 112, 112, 64)
        # float32); otherwise the current rows a few KiB ahead
        _next_row_taps(g, sizeof(pool_t), oh, &nlo, &nhi)
        run_lo = run_hi = a
        if sq and hlo < hhi:
            # the interior positions (every column of the window in the
            # row) in one loop, ``_max_cl_run``; the others below
            run_lo = _imin(b, _imax(a, _ceildiv(g.pd[2], g.st[2])))
            run_hi = _imax(run_lo, _imin(b, _floordiv(g.isz[2] - K + g.pd[2], g.st[2]) + 1))
            if run_hi > run_lo:
                s0 = run_lo * g.st[2] - g.pd[2]
                o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3] + run_lo * g.os[4]
                if pfw == 0:
                    _max_cl_run(o, g.os[4], rp, s0, g, K, run_hi - run_lo,
                                NULL, 0, 0, 0, 0)
                elif nlo < nhi:
                    _max_cl_run(o, g.os[4], rp, s0, g, K, run_hi - run_lo,
                                <const char*>(x + n * g.xs[0] + d0 * g.xs[2]
                                              + (h0 + g.st[1] + nlo) * g.xs[3]),
                                nhi - nlo, dhi - dlo, 0, s0)
                else:
                    _max_cl_run(o, g.os[4], rp, s0, g, K, run_hi - run_lo,
                                <const char*>(x + n * g.xs[0] + d0 * g.xs[2]
                                              + (h0 + hlo) * g.xs[3]),
                                hhi - hlo, dhi - dlo, pfw, s0)
        for ow in range(a, b):
            if run_lo <= ow < run_hi:
                continue
            if pfw > 0:
                if nlo < nhi:
                    _prefetch_cl(<const char*>(x + n * g.xs[0]), g, sizeof(pool_t), d0,
                                 dlo, dhi, h0 + g.st[1], nlo, nhi, ow * g.st[2] - g.pd[2])
                else:
                    _prefetch_cl(<const char*>(x + n * g.xs[0]), g, sizeof(pool_t), d0,
                                 dlo, dhi, h0, hlo, hhi, ow * g.st[2] - g.pd[2] + pfw)
            o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
            if sq and hlo < hhi:
                s0 = ow * g.st[2] - g.pd[2]
                _tap_range(s0, K, 1, g.isz[2], &wlo, &whi)
                if wlo < whi:
                    for k in range(3):
                        co[k] = (s0 + _imax(wlo, _imin(k, whi - 1))) * g.xs[4]
                    if _max_cl_win(<_Fast*>NULL, o, rp, co, K, g.C):
                        _max_cl_win(<_Exact*>NULL, o, rp, co, K, g.C)
                    continue
            if idx != NULL:
                oi = idx + n * g.js[0] + od * g.js[2] + oh * g.js[3] + ow * g.js[4]
            _max_cl_pos(x, o, oi, g, n, od, oh, ow)


cdef inline void _prefetch_next_rows(const char* plane, const Geo* g,
                                     Py_ssize_t isz, Py_ssize_t d0,
                                     Py_ssize_t dlo, Py_ssize_t dhi,
                                     Py_ssize_t oh, Py_ssize_t a,
                                     Py_ssize_t b, Py_ssize_t CC) noexcept nogil:
    """Hint the input of output row ``oh + 1``, columns [a, b) of rows of
    contiguous pixels of CC elements (windows tiling W): the tiled row kernels read two
    or more whole rows per output row, and the hardware prefetcher alone
    leaves them waiting on memory.  Nothing past the last output row, and
    nothing for windows of more than four rows."""
    cdef Py_ssize_t kd, hlo, hhi, h0
    if oh + 1 >= g.osz[1] or (dhi - dlo) > 2:
        return
    h0 = (oh + 1) * g.st[1] - g.pd[1]
    _tap_range(h0, g.ks[1], g.dl[1], g.isz[1], &hlo, &hhi)
    if (dhi - dlo) * (hhi - hlo) > 4:
        return
    for kd in range(dlo, dhi):
        _hint_rows(plane + ((d0 + kd * g.dl[0]) * g.xs[2] + h0 * g.xs[3]
                            + a * g.st[2] * g.xs[4]) * isz,
                   g.dl[1] * g.xs[3] * isz, hlo, hhi, (b - a) * g.st[2] * CC * isz)


cdef inline void _max_cl_tiled_row(const pool_t* x, pool_t* o, const Geo* g,
                                   Py_ssize_t n, Py_ssize_t d0, Py_ssize_t dlo,
                                   Py_ssize_t dhi, Py_ssize_t oh, Py_ssize_t a,
                                   Py_ssize_t b, pool_t* vm) noexcept nogil:
    """Outputs [a, b) (all channels, ``o`` their first) of one row of
    integer data whose windows tile W (see ``_max_fwd_cl``): the in-bounds
    window rows are first reduced element-wise into ``vm`` (contiguous
    passes, vectorised for any channel count), then each output takes the
    max of its S pixels.  Integer maxima do not depend on the order."""
    cdef Py_ssize_t S = g.st[2], C = g.C, L = (b - a) * g.st[2] * g.C
    cdef Py_ssize_t kd, kh, hlo, hhi, q, j, c, kw, h0
    cdef const pool_t* row
    cdef const pool_t* prev = NULL
    cdef const pool_t* v
    cdef pool_t m, t
    cdef bint have = False
    h0 = oh * g.st[1] - g.pd[1]
    _tap_range(h0, g.ks[1], g.dl[1], g.isz[1], &hlo, &hhi)
    for kd in range(dlo, dhi):
        for kh in range(hlo, hhi):
            row = (x + n * g.xs[0] + (d0 + kd * g.dl[0]) * g.xs[2]
                   + (h0 + kh * g.dl[1]) * g.xs[3] + a * S * C)
            if prev == NULL and not have:
                prev = row          # held until a second row comes
            elif not have:
                for q in range(L):
                    m = prev[q]
                    t = row[q]
                    vm[q] = t if t > m else m
                have = True
            else:
                for q in range(L):
                    m = vm[q]
                    t = row[q]
                    vm[q] = t if t > m else m
    if not have:
        if prev == NULL:
            for q in range((b - a) * C):
                o[q] = _lowest(<pool_t>0)
            return
        v = prev
    else:
        v = vm
    if C == 3 and S == 2:
        # RGB-like pixels in pairs: first the element-wise max of each byte
        # and the one a pixel on, ``vm[q] = max(v[q], v[q + 3])`` (one
        # contiguous vectorised pass; in place, it reads each element before
        # overwriting it), so that pixel j's result is ``vm[6j .. 6j+2]``;
        # then one 4-element copy per pixel, its spare element overwritten
        # by the next pixel's copy (the last pixel element by element).
        if v == vm:
            for q in range(L - 3):
                m = vm[q]
                t = vm[q + 3]
                vm[q] = t if t > m else m
        else:
            for q in range(L - 3):
                m = v[q]
                t = v[q + 3]
                vm[q] = t if t > m else m
        for j in range(b - a - 1):
            memcpy(o + 3 * j, vm + 6 * j, 4 * sizeof(pool_t))
        j = b - a - 1
        o[3 * j] = vm[6 * j]
        o[3 * j + 1] = vm[6 * j + 1]
        o[3 * j + 2] = vm[6 * j + 2]
    elif C == 1 and S == 2:
        for j in range(b - a):
            m = v[2 * j]
            t = v[2 * j + 1]
            o[j] = t if t > m else m
    else:
        for j in range(b - a):
            for c in range(C):
                m = v[j * S * C + c]
                for kw in range(1, S):
                    t = v[(j * S + kw) * C + c]
                    m = t if t > m else m
                o[j * C + c] = m


cdef inline void _max_cl_rows_item(const pool_t* x, pool_t* out, const Geo* g,
                                   Py_ssize_t it, pool_t* vm) noexcept nogil:
    """Values only: one output row of all channels at a time.  The row
    (``(b - a) * C`` contiguous outputs) starts at the lowest value, then
    every in-bounds input row of the window (scan order) and every W tap of
    it updates all outputs whose tap is in bounds, so each output still sees
    its taps in PyTorch's order, and there is no per-output bookkeeping
    (small C, e.g. RGB images, is as cheap per element as large C).  Each
    row runs first with the branch-free select that assumes no NaN, and
    again with PyTorch's rule if a NaN went by.  ``vm`` not NULL: integer
    windows that tile W, ``_max_cl_tiled_row``."""
    cdef Py_ssize_t n, od, oh0, oh1, oh, a, b, d0, dlo, dhi
    cdef pool_t* orow
    _decode_cl(g, it, &n, &od, &oh0, &oh1, &a, &b)
    d0 = od * g.st[0] - g.pd[0]
    _tap_range(d0, g.ks[0], g.dl[0], g.isz[0], &dlo, &dhi)
    if vm != NULL and b * g.st[2] > g.isz[2]:
        vm = NULL     # a window clipped by the row's end (ceil mode)
    for oh in range(oh0, oh1):
        orow = out + n * g.os[0] + od * g.os[2] + oh * g.os[3]
        if vm != NULL:
            _prefetch_next_rows(<const char*>(x + n * g.xs[0]), g, sizeof(pool_t),
                                d0, dlo, dhi, oh, a, b, g.C)
            _max_cl_tiled_row(x, orow + a * g.C, g, n, d0, dlo, dhi, oh, a, b, vm)
            continue
        if _max_cl_row(<_Fast*>NULL, x, orow, g, n, d0, dlo, dhi, oh, a, b):
            _max_cl_row(<_Exact*>NULL, x, orow, g, n, d0, dlo, dhi, oh, a, b)


cdef inline bint _max_cl_row(mode_t* mode, const pool_t* x, pool_t* orow,
                             const Geo* g, Py_ssize_t n, Py_ssize_t d0,
                             Py_ssize_t dlo, Py_ssize_t dhi, Py_ssize_t oh,
                             Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """One output row of ``_max_cl_rows_item``.  Fast mode selects with
    ``v > m`` (a max instruction, exact for ties and signed zeros) and
    returns whether a NaN went by; exact mode applies PyTorch's rule."""
    cdef Py_ssize_t ow, c, C = g.C, cs = g.xs[1]
    cdef Py_ssize_t kd, kh, kw, hlo, hhi, lo, hi, off
    cdef Py_ssize_t h0, S = g.st[2], Dl = g.dl[2], P = g.pd[2], ws = g.xs[4]
    cdef Py_ssize_t os4 = g.os[4]
    cdef const pool_t* row
    cdef const pool_t* src
    cdef pool_t* dst
    cdef pool_t v, m
    cdef pool_t low = _lowest(<pool_t>0)
    cdef bint nf = 0
    for ow in range(a, b):
        dst = orow + ow * os4
        for c in range(C):
            dst[c] = low
    h0 = oh * g.st[1] - g.pd[1]
    _tap_range(h0, g.ks[1], g.dl[1], g.isz[1], &hlo, &hhi)
    for kd in range(dlo, dhi):
        for kh in range(hlo, hhi):
            row = (x + n * g.xs[0] + (d0 + kd * g.dl[0]) * g.xs[2]
                   + (h0 + kh * g.dl[1]) * g.xs[3])
            for kw in range(g.kw0, g.kw0 + g.kwn):
                off = kw * Dl - P
                # outputs ow in [a, b) with 0 <= ow*S + off < W
                lo = _imax(a, _ceildiv(-off, S))
                hi = _imin(b, _floordiv(g.isz[2] - 1 - off, S) + 1)
                if C == 3 and cs == 1:
                    for ow in range(lo, hi):
                        src = row + (ow * S + off) * ws
                        dst = orow + ow * os4
                        if mode_t is _Fast:
                            v = src[0]
                            m = dst[0]
                            dst[0] = v if v > m else m
                            nf = nf | _isnan(v)
                            v = src[1]
                            m = dst[1]
                            dst[1] = v if v > m else m
                            nf = nf | _isnan(v)
                            v = src[2]
                            m = dst[2]
                            dst[2] = v if v > m else m
                            nf = nf | _isnan(v)
                        else:
                            v = src[0]
                            dst[0] = v if _takes(v, dst[0]) else dst[0]
                            v = src[1]
                            dst[1] = v if _takes(v, dst[1]) else dst[1]
                            v = src[2]
                            dst[2] = v if _takes(v, dst[2]) else dst[2]
                elif cs == 1:
                    for ow in range(lo, hi):
                        src = row + (ow * S + off) * ws
                        dst = orow + ow * os4
                        for c in range(C):
                            v = src[c]
                            if mode_t is _Fast:
                                m = dst[c]
                                dst[c] = v if v > m else m
                                nf = nf | _isnan(v)
                            else:
                                dst[c] = v if _takes(v, dst[c]) else dst[c]
                else:
                    for ow in range(lo, hi):
                        src = row + (ow * S + off) * ws
                        dst = orow + ow * os4
                        for c in range(C):
                            v = src[c * cs]
                            if mode_t is _Fast:
                                m = dst[c]
                                dst[c] = v if v > m else m
                                nf = nf | _isnan(v)
                            else:
                                dst[c] = v if _takes(v, dst[c]) else dst[c]
    return nf


cdef int _max_fwd_cl(const pool_t* x, pool_t* out, int64_t* idx,
                     Geo* g) noexcept nogil:
    cdef Py_ssize_t nitems
    cdef Py_ssize_t it, per = 0
    cdef char* scratch = NULL
    cdef int tid
    # few channels: whole output rows (per-output bookkeeping would dominate);
    # many: one output position at a time, its channels kept in cache
    cdef bint rows = idx == NULL and not g.sparse and g.C < 16
    # integer data whose windows tile W (kernel == stride, no padding or
    # dilation, every tap in bounds for some output), pixels and output
    # rows contiguous: window rows reduced element-wise first
    cdef bint tiled = (rows and pool_t is not float and pool_t is not double
                       and g.ks[2] == g.st[2] and g.pd[2] == 0 and g.dl[2] == 1
                       and g.kw0 == 0 and g.kwn == g.ks[2] and g.xs[1] == 1
                       and g.xs[4] == g.C and g.os[1] == 1 and g.os[4] == g.C
                       and g.st[2] <= 4096)
    if tiled:
        if g.chunk * g.C * g.st[2] > 65536:
            g.chunk = _imax(1, 65536 // (g.C * g.st[2]))
            g.nchunk = (g.osz[2] + g.chunk - 1) // g.chunk
        per = _lines(g.chunk * g.C * g.st[2] * sizeof(pool_t))
        scratch = <char*>malloc(per * g.nthreads + LINE)
        if scratch == NULL:
            return -1
    nitems = g.N * g.osz[0] * g.nband * g.nchunk
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            if rows:
                _max_cl_rows_item(x, out, g, it,
                                  <pool_t*>(_aligned(scratch) + tid * per)
                                  if tiled else NULL)
            else:
                _max_cl_item(x, out, idx, g, it)
    free(scratch)
    return 0


cdef inline void _avg_cl_taps(real_t* o, const real_t** t, Py_ssize_t nt,
                              Py_ssize_t C, real_t dv, real_t rv) noexcept nogil:
    """``o[c]`` = the sum from 0 of ``t[i][c]`` for i < nt (4 or 9), in
    order, divided by ``dv``: vectorised along the channels.  ``rv`` not 0:
    ``1/dv`` with dv a power of two (``_pow2_recip``), a multiply instead."""
    cdef Py_ssize_t c
    cdef real_t acc
    cdef const real_t* t0 = t[0]
    cdef const real_t* t1 = t[1]
    cdef const real_t* t2 = t[2]
    cdef const real_t* t3 = t[3]
    cdef const real_t* t4
    cdef const real_t* t5
    cdef const real_t* t6
    cdef const real_t* t7
    cdef const real_t* t8
    if nt == 4 and rv != 0:
        for c in range(C):
            acc = 0
            acc = acc + t0[c]
            acc = acc + t1[c]
            acc = acc + t2[c]
            acc = acc + t3[c]
            o[c] = acc * rv
    elif nt == 4:
        for c in range(C):
            acc = 0
            acc = acc + t0[c]
            acc = acc + t1[c]
            acc = acc + t2[c]
            acc = acc + t3[c]
            o[c] = acc / dv
    else:
        t4 = t[4]
        t5 = t[5]
        t6 = t[6]
        t7 = t[7]
        t8 = t[8]
        for c in range(C):
            acc = 0
            acc = acc + t0[c]
            acc = acc + t1[c]
            acc = acc + t2[c]
            acc = acc + t3[c]
            acc = acc + t4[c]
            acc = acc + t5[c]
            acc = acc + t6[c]
            acc = acc + t7[c]
            acc = acc + t8[c]
            o[c] = acc / dv


cdef inline void _avg_cl_run(real_t* o, Py_ssize_t os4, const real_t** rp,
                             Py_ssize_t s0, const Geo* g, Py_ssize_t K,
                             Py_ssize_t n, const char* pf, Py_ssize_t pfr,
                             Py_ssize_t pfd, Py_ssize_t pfw, Py_ssize_t w0,
                             real_t dv, real_t rv) noexcept nogil:
    """``n`` consecutive whole K x K windows (K 2 or 3) of ``_avg_cl_item``
    (window i's first column ``s0 + i*S``, its rows ``rp[0..K)``), all with
    the divisor ``dv`` (``rv``: its reciprocal, a power of two's, or 0),
    without the per-position bookkeeping; the sums as ``_avg_cl_taps``.
    Hints as ``_max_cl_run``, written out in each (one shared hint function
    measured 0.84-0.95x on both runs)."""
    cdef Py_ssize_t i, k, r, off, w, c0, S = g.st[2], ws = g.xs[4], C = g.C
    cdef Py_ssize_t nb = S * C * <Py_ssize_t>sizeof(real_t)
    cdef Py_ssize_t rs = g.xs[3] * <Py_ssize_t>sizeof(real_t)
    cdef const real_t* taps[9]
    cdef const char* p
    if pfd != 1 or pfr > 8:
        pf = NULL
    for i in range(n):
        w = w0 + pfw + i * S
        if pf != NULL and w + S <= g.isz[2]:
            p = pf + w * ws * <Py_ssize_t>sizeof(real_t)
            for k in range(pfr):
                for off in range(0, nb, 64):
                    cypool_prefetch(p + off)
                p += rs
        c0 = (s0 + i * S) * ws
        for r in range(K):
            for k in range(K):
                taps[r * K + k] = rp[r] + c0 + k * ws
        _avg_cl_taps(o + i * os4, taps, K * K, C, dv, rv)


cdef inline void _avg_cl_item(const real_t* x, real_t* out, const Geo* g,
                              const int64_t* fac, int64_t override,
                              Py_ssize_t it) noexcept nogil:
    cdef Py_ssize_t n, c, od, oh0, oh1, oh, a, b, ow, kd, kh, kw, C = g.C, nt
    cdef Py_ssize_t pfw = 0
    cdef const real_t* taps[9]
    cdef Py_ssize_t cs = g.xs[1], d0, h0, w0, id_, ih, iw
    cdef Py_ssize_t dlo, dhi, hlo, hhi, wlo, whi, nlo, nhi
    cdef const real_t* src
    cdef real_t* o
    cdef real_t dv, rv = 0
    cdef int64_t dvi
    cdef Py_ssize_t K = g.ks[2], run_lo, run_hi, s0
    cdef const real_t* rp[3]
    # whole square windows of 2-d (or 1 x K x K) pooling, channels packed:
    # a row's interior positions through one loop (``_avg_cl_run``)
    cdef bint sq = (g.ks[0] == 1 and g.pd[0] == 0 and g.ks[1] == K
                    and (K == 2 or K == 3) and cs == 1 and g.os[1] == 1)
    _decode_cl(g, it, &n, &od, &oh0, &oh1, &a, &b)
    if cs == 1 and g.xs[4] == C and g.st[2] <= 4:
        # about 4 KiB ahead along the rows, whole output positions
        pfw = _imax(1, 4096 // (C * <Py_ssize_t>sizeof(real_t) * g.st[2])) * g.st[2]
    d0 = od * g.st[0] - g.pd[0]
    _tap_range(d0, g.ks[0], 1, g.isz[0], &dlo, &dhi)
    for oh in range(oh0, oh1):
        h0 = oh * g.st[1] - g.pd[1]
        _tap_range(h0, g.ks[1], 1, g.isz[1], &hlo, &hhi)
        # the rows the next output row adds, at this position (as _max_cl_item)
        _next_row_taps(g, sizeof(real_t), oh, &nlo, &nhi)
        run_lo = run_hi = a
        if sq and dhi - dlo == 1 and hhi - hlo == K:
            # every column of the window in the row: whole windows, one
            # divisor (the W factor of a whole window is K)
            run_lo = _imin(b, _imax(a, _ceildiv(g.pd[2], g.st[2])))
            run_hi = _imax(run_lo, _imin(b, _floordiv(g.isz[2] - K + g.pd[2], g.st[2]) + 1))
            if run_hi > run_lo:
                for kh in range(K):
                    rp[kh] = x + n * g.xs[0] + d0 * g.xs[2] + (h0 + kh) * g.xs[3]
                s0 = run_lo * g.st[2] - g.pd[2]
                o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3] + run_lo * g.os[4]
                dvi = override if override != 0 else fac[od] * fac[g.osz[0] + oh] * K
                dv = <real_t>dvi
                if not _pow2_recip(dvi, &rv):
                    rv = 0
                if pfw == 0:
                    _avg_cl_run(o, g.os[4], rp, s0, g, K, run_hi - run_lo,
                                NULL, 0, 0, 0, 0, dv, rv)
                elif nlo < nhi:
                    _avg_cl_run(o, g.os[4], rp, s0, g, K, run_hi - run_lo,
                                <const char*>(x + n * g.xs[0] + d0 * g.xs[2]
                                              + (h0 + g.st[1] + nlo) * g.xs[3]),
                                nhi - nlo, dhi - dlo, 0, s0, dv, rv)
                else:
                    _avg_cl_run(o, g.os[4], rp, s0, g, K, run_hi - run_lo,
                                <const char*>(x + n * g.xs[0] + d0 * g.xs[2]
                                              + (h0 + hlo) * g.xs[3]),
                                hhi - hlo, dhi - dlo, pfw, s0, dv, rv)
        for ow in range(a, b):
            if run_lo <= ow < run_hi:
                continue
            w0 = ow * g.st[2] - g.pd[2]
            _tap_range(w0, g.ks[2], 1, g.isz[2], &wlo, &whi)
            if pfw > 0:
                if nlo < nhi:
                    _prefetch_cl(<const char*>(x + n * g.xs[0]), g, sizeof(real_t), d0,
                                 dlo, dhi, h0 + g.st[1], nlo, nhi, w0)
                else:
                    _prefetch_cl(<const char*>(x + n * g.xs[0]), g, sizeof(real_t), d0,
                                 dlo, dhi, h0, hlo, hhi, w0 + pfw)
            o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
            if override != 0:
                dvi = override
            else:
                dvi = fac[od] * fac[g.osz[0] + oh] * fac[g.osz[0] + g.osz[1] + ow]
            dv = <real_t>dvi
            nt = (dhi - dlo) * (hhi - hlo) * (whi - wlo)
            if cs == 1 and (nt == 4 or nt == 9):
                if not _pow2_recip(dvi, &rv):
                    rv = 0
                # whole 2x2 / 3x3 windows: one pass per channel block, the
                # taps in scan order from 0 as below, no read-modify-write
                nt = 0
                for kd in range(dlo, dhi):
                    for kh in range(hlo, hhi):
                        for kw in range(wlo, whi):
                            taps[nt] = (x + n * g.xs[0] + (d0 + kd) * g.xs[2]
                                        + (h0 + kh) * g.xs[3] + (w0 + kw) * g.xs[4])
                            nt += 1
                _avg_cl_taps(o, taps, nt, C, dv, rv)
                continue
            for c in range(C):
                o[c] = 0
            for kd in range(dlo, dhi):
                id_ = d0 + kd
                for kh in range(hlo, hhi):
                    ih = h0 + kh
                    for kw in range(wlo, whi):
                        iw = w0 + kw
                        src = x + n * g.xs[0] + id_ * g.xs[2] + ih * g.xs[3] + iw * g.xs[4]
                        if cs == 1:
                            for c in range(C):
                                o[c] = o[c] + src[c]
                        else:
                            for c in range(C):
                                o[c] = o[c] + src[c * cs]
            for c in range(C):
                o[c] = o[c] / dv


cdef inline void _avg_cl_rows_item(const real_t* x, real_t* out, const Geo* g,
                                   const int64_t* fac, int64_t override,
                                   Py_ssize_t it) noexcept nogil:
    """Few channels: whole output rows of all channels, taps added in scan
    order to every output whose tap is in bounds (as ``_max_cl_rows_item``)."""
    cdef Py_ssize_t n, od, oh0, oh1, oh, a, b, ow, c, C = g.C, cs = g.xs[1]
    cdef Py_ssize_t kd, kh, kw, dlo, dhi, hlo, hhi, lo, hi, off, d0, h0
    cdef Py_ssize_t S = g.st[2], P = g.pd[2], ws = g.xs[4], os4 = g.os[4]
    cdef const real_t* row
    cdef const real_t* src
    cdef real_t* orow
    cdef real_t* dst
    cdef real_t dv
    _decode_cl(g, it, &n, &od, &oh0, &oh1, &a, &b)
    d0 = od * g.st[0] - g.pd[0]
    _tap_range(d0, g.ks[0], 1, g.isz[0], &dlo, &dhi)
    for oh in range(oh0, oh1):
        orow = out + n * g.os[0] + od * g.os[2] + oh * g.os[3]
        for ow in range(a, b):
            for c in range(C):
                orow[ow * os4 + c] = 0
        h0 = oh * g.st[1] - g.pd[1]
        _tap_range(h0, g.ks[1], 1, g.isz[1], &hlo, &hhi)
        for kd in range(dlo, dhi):
            for kh in range(hlo, hhi):
                row = x + n * g.xs[0] + (d0 + kd) * g.xs[2] + (h0 + kh) * g.xs[3]
                for kw in range(g.kw0, g.kw0 + g.kwn):
                    off = kw - P
                    lo = _imax(a, _ceildiv(-off, S))
                    hi = _imin(b, _floordiv(g.isz[2] - 1 - off, S) + 1)
                    if C == 3 and cs == 1:  # RGB
                        for ow in range(lo, hi):
                            src = row + (ow * S + off) * ws
                            dst = orow + ow * os4
                            dst[0] = dst[0] + src[0]
                            dst[1] = dst[1] + src[1]
                            dst[2] = dst[2] + src[2]
                    else:
                        for ow in range(lo, hi):
                            src = row + (ow * S + off) * ws
                            dst = orow + ow * os4
                            for c in range(C):
                                dst[c] = dst[c] + src[c * cs]
        for ow in range(a, b):
            if override != 0:
                dv = <real_t>override
            else:
                dv = <real_t>(fac[od] * fac[g.osz[0] + oh] * fac[g.osz[0] + g.osz[1] + ow])
            for c in range(C):
                orow[ow * os4 + c] = orow[ow * os4 + c] / dv


cdef int _avg_fwd_cl(const real_t* x, real_t* out, Geo* g, bint include_pad,
                     int64_t override) noexcept nogil:
    cdef Py_ssize_t nitems = g.N * g.osz[0] * g.nband * g.nchunk
    cdef Py_ssize_t it
    cdef bint rows = g.C < 16 and not g.sparse
    cdef int64_t* fac = _avg_factors(g, include_pad)
    if fac == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        for it in prange(nitems, schedule='static'):
            if rows:
                _avg_cl_rows_item(x, out, g, fac, override, it)
            else:
                _avg_cl_item(x, out, g, fac, override, it)
    free(fac)
    return 0


# ------------------------------------------------------------ avg forward

cdef inline int64_t _avg_count(Py_ssize_t o, Py_ssize_t k, Py_ssize_t s,
                               Py_ssize_t p, Py_ssize_t pa, Py_ssize_t L,
                               bint include_pad) noexcept nogil:
    """PyTorch's per-dimension divisor factor for output position ``o``.

    The window is clipped to the padded extent [-p, L + pa) (the ceil-mode
    overhang never counts) and, without ``include_pad``, to [0, L).
    """
    cdef Py_ssize_t start = o * s - p
    cdef Py_ssize_t end = _imin(start + k, L + pa)
    if include_pad:
        return end - start
    return _imin(end, L) - _imax(start, 0)


cdef int64_t* _avg_factors(const Geo* g, bint include_pad) noexcept nogil:
    """Per-dimension divisor factors, D then H then W (NULL if no memory)."""
    cdef Py_ssize_t i, dim, base = 0
    cdef int64_t* fac = <int64_t*>malloc(
        (g.osz[0] + g.osz[1] + g.osz[2]) * sizeof(int64_t))
    if fac == NULL:
        return NULL
    for dim in range(3):
        for i in range(g.osz[dim]):
            fac[base + i] = _avg_count(i, g.ks[dim], g.st[dim], g.pd[dim],
                                       g.pa[dim], g.isz[dim], include_pad)
        base += g.osz[dim]
    return fac


cdef inline bint _pow2_recip(int64_t d, real_t* r) noexcept nogil:
    """``r = 1/d`` when d is a power of two: then ``v * r`` equals ``v / d``
    bit for bit (the exact quotient is the exact product, so both round it
    alike, subnormal results, signed zeros, infinities and NaNs included),
    and a multiply costs a fraction of a divide."""
    if d > 0 and (d & (d - 1)) == 0 and d <= (<int64_t>1 << 62):
        r[0] = 1 / <real_t>d
        return 1
    return 0


cdef inline void _avg_divide(const Geo* g, const Plan* pl, real_t* o,
                             Py_ssize_t a, Py_ssize_t b, Py_ssize_t od,
                             Py_ssize_t oh, int64_t override) noexcept nogil:
    """Window sums ``o`` of output columns [a, b) of row (od, oh) -> averages."""
    cdef const real_t* dw = <const real_t*>pl.dw + a
    cdef const int64_t* fw = pl.fac + g.osz[0] + g.osz[1] + a
    cdef Py_ssize_t j, n = b - a
    cdef int64_t fdh
    cdef real_t dv, rv
    if override != 0:
        dv = <real_t>override
        if _pow2_recip(override, &rv):
            for j in range(n):
                o[j] = o[j] * rv
        else:
            for j in range(n):
                o[j] = o[j] / dv
    else:
        fdh = pl.fac[od] * pl.fac[g.osz[0] + oh]
        if (pl.fwu != 0 and fdh < (<int64_t>1 << 31)
                and _pow2_recip(fdh * pl.fwu, &rv)):
            # one divisor for the whole row, a power of two (2x2 windows)
            for j in range(n):
                o[j] = o[j] * rv
        elif pl.exact_div:
            # every divisor is below 2**mantissa: the product of the exact
            # factors equals the converted int64 product
            dv = <real_t>fdh
            for j in range(n):
                o[j] = o[j] / (dv * dw[j])
        else:
            for j in range(n):
                o[j] = o[j] / <real_t>(fdh * fw[j])


cdef inline void _avg_win1_run(real_t* o, const real_t* r0, Py_ssize_t S,
                               Py_ssize_t K, Py_ssize_t n) noexcept nogil:
    """Sums of windows of one input row and K = 2 or 3 consecutive taps, in
    the general path's order (from 0, taps left to right)."""
    cdef Py_ssize_t j
    cdef real_t z = 0
    if K == 2 and S == 2:
        for j in range(n):
            o[j] = z + r0[2 * j] + r0[2 * j + 1]
    elif K == 2 and S == 1:
        for j in range(n):
            o[j] = z + r0[j] + r0[j + 1]
    elif S == 2:
        for j in range(n):
            o[j] = z + r0[2 * j] + r0[2 * j + 1] + r0[2 * j + 2]
    else:
        for j in range(n):
            o[j] = z + r0[j] + r0[j + 1] + r0[j + 2]


cdef inline void _avg_row(const Geo* g, const Plan* pl, Scratch* sc,
                          Py_ssize_t nr, Py_ssize_t w0, Py_ssize_t a,
                          Py_ssize_t b, Py_ssize_t od, Py_ssize_t oh,
                          int64_t override, real_t* o) noexcept nogil:
    cdef const real_t** rows = <const real_t**>sc.rows
    cdef Py_ssize_t S = g.st[2], K = g.kwn
    cdef Py_ssize_t P = g.pd[2] - g.kw0  # taps renumbered from kw0
    cdef Py_ssize_t n = b - a, ia, ib, r, kw, gsz, lo, hi, seg, sa, sb, j, k0, k1
    cdef real_t acc
    cdef bint whole1 = False
    if g.sparse:
        # output by output over its in-bounds taps (scattered huge kernels)
        for j in range(n):
            lo = (a + j) * S - g.pd[2]
            k0 = _imax(0, -lo)
            k1 = _imin(g.ks[2], g.isz[2] - lo)
            acc = 0
            for r in range(nr):
                for kw in range(k0, k1):
                    acc = acc + rows[r][lo + kw - w0]
            o[j] = acc
    else:
        ia = _imax(a, pl.ilo)
        ib = _imin(b, pl.ihi)
        if ib < ia:
            ib = ia
        if nr == 1 and (K == 2 or K == 3) and ia < ib and S <= 2:
            # one input row (1-d pooling): interior sums stored once
            for j in range(ia - a):
                o[j] = 0
            for j in range(ib - a, n):
                o[j] = 0
            lo = ia * S - P - w0
            _avg_win(o + (ia - a), rows[0] + lo, rows[0] + lo, rows[0] + lo, S, K, 1,
                     ib - ia, 1, False)
            whole1 = True   # only the border columns remain, below
        else:
            for j in range(n):
                o[j] = 0
        for r in range(nr):
            if ia < ib and not whole1:
                kw = 0
                while kw < K:
                    gsz = _imin(3, K - kw)
                    _sum_pass(o + (ia - a), rows[r] + (ia * S + kw - P - w0), S, gsz,
                              ib - ia)
                    kw += gsz
            for seg in range(2):
                sa = a if seg == 0 else ib
                sb = ia if seg == 0 else b
                if sa >= sb:
                    continue
                for kw in range(K):
                    lo = _imax(sa, pl.wlo[kw])
                    hi = _imin(sb, pl.whi[kw])
                    if lo < hi:
                        _sum_pass(o + (lo - a), rows[r] + (lo * S + kw - P - w0), S, 1,
                                  hi - lo)
    _avg_divide(g, pl, o, a, b, od, oh, override)


cdef inline void _avg_win(real_t* o, const real_t* r0, const real_t* r1,
                          const real_t* r2, Py_ssize_t S, Py_ssize_t kk,
                          Py_ssize_t R, Py_ssize_t n, real_t dv,
                          bint mul) noexcept nogil:
    """Window sums of R input rows (R = kk: ``_avg_win_run``, divided by
    ``dv`` or multiplied by it; R = 1: ``_avg_win1_run``, r0 only, not divided) cut as
    ``_head_len`` says (each result is computed from the inputs alone, so
    an overlapping call rewrites equal values)."""
    cdef Py_ssize_t B = 64 // sizeof(real_t)
    cdef Py_ssize_t h, t
    if n <= B + 1:
        _avg_win_rows(o, r0, r1, r2, S, kk, R, n, dv, mul)
        return
    h = _head_len(n, B)
    _avg_win_rows(o, r0, r1, r2, S, kk, R, h, dv, mul)
    if h < n:
        t = n - (B + 1)
        _avg_win_rows(o + t, r0 + t * S, r1 + t * S, r2 + t * S, S, kk, R, B + 1, dv,
                      mul)


cdef inline void _avg_win_rows(real_t* o, const real_t* r0, const real_t* r1,
                               const real_t* r2, Py_ssize_t S, Py_ssize_t kk,
                               Py_ssize_t R, Py_ssize_t n, real_t dv,
                               bint mul) noexcept nogil:
    if R == 1:
        _avg_win1_run(o, r0, S, kk, n)
    else:
        _avg_win_run(o, r0, r1, r2, S, kk, n, dv, mul)


cdef inline void _asq(real_t* o, const real_t* r0, const real_t* r1,
                      const real_t* r2, Py_ssize_t K, Py_ssize_t S, Py_ssize_t n,
                      real_t dv, bint mul) noexcept nogil:
    """Averages of whole K x K windows (K 2 or 3) at W stride S (1 or 2):
    the sums from 0, rows r0, r1 (, r2) in scan order, taps left to right,
    divided by ``dv`` (``mul``: multiplied by it).  Every caller passes K, S
    and ``mul`` as constants, so that each call compiles to its own loop
    with no test inside (a ``mul`` gcc could not see as constant measured
    0.87x on k3s1p1)."""
    cdef Py_ssize_t j
    cdef real_t acc
    for j in range(n):
        acc = 0
        acc = acc + r0[S * j]
        acc = acc + r0[S * j + 1]
        if K == 3:
            acc = acc + r0[S * j + 2]
        acc = acc + r1[S * j]
        acc = acc + r1[S * j + 1]
        if K == 3:
            acc = acc + r1[S * j + 2]
            acc = acc + r2[S * j]
            acc = acc + r2[S * j + 1]
            acc = acc + r2[S * j + 2]
        o[j] = acc * dv if mul else acc / dv


cdef inline void _avg_win_run(real_t* o, const real_t* r0, const real_t* r1,
                              const real_t* r2, Py_ssize_t S, Py_ssize_t kk,
                              Py_ssize_t n, real_t dv, bint mul) noexcept nogil:
    """Averages of whole kk x kk windows (kk 2 or 3, S 1 or 2) in one pass:
    the sums in the order of the general row passes (from 0, rows in scan
    order, taps left to right), divided by ``dv`` (``mul``: multiplied by
    ``dv``, a power of two's exact reciprocal: the same rounding)."""
    if kk == 2:
        if S == 2:
            _asq(o, r0, r1, r1, 2, 2, n, dv, mul)
        else:
            _asq(o, r0, r1, r1, 2, 1, n, dv, mul)
    elif S == 2:
        _asq(o, r0, r1, r2, 3, 2, n, dv, mul)
    else:
        _asq(o, r0, r1, r2, 3, 1, n, dv, mul)


cdef inline real_t _avg_edge(const real_t* p0, const real_t* p1,
                             const real_t* p2, Py_ssize_t K, Py_ssize_t lo,
                             Py_ssize_t cnt) noexcept nogil:
    """Sum of one K x K window (K 2 or 3) cut by the W border whose rows are
    all in bounds: rows p0, p1 (and p2 when K is 3), ``cnt`` columns from
    index ``lo`` (1 or 2: the interior columns take the whole windows),
    from 0 in scan order, in straight-line code (the loops it replaced took
    a fifth of a 3x3 stride-1 block's time in cache)."""
    cdef real_t acc = 0
    if cnt <= 0:
        return acc
    if cnt == 1:
        acc = acc + p0[lo]
        acc = acc + p1[lo]
        if K == 3:
            acc = acc + p2[lo]
    else:
        acc = acc + p0[lo]
        acc = acc + p0[lo + 1]
        acc = acc + p1[lo]
        acc = acc + p1[lo + 1]
        if K == 3:
            acc = acc + p2[lo]
            acc = acc + p2[lo + 1]
    return acc


cdef inline void _avg_row_square(const Geo* g, const Plan* pl, const real_t* r0,
                                 Py_ssize_t rs, Py_ssize_t w0, Py_ssize_t a,
                                 Py_ssize_t b, Py_ssize_t od, Py_ssize_t oh,
                                 int64_t override, real_t* o) noexcept nogil:
    """Output columns [a, b) of a row of K x K windows (``g.square``) whose
    rows are all in bounds (``r0[w - w0]`` is column ``w`` of the first,
    the others ``rs`` apart): the
    averages in one pass over the interior and window by window at the
    borders.  Bit for bit the general path: each sum is divided by its
    divisor converted to real_t, which is what every branch of
    ``_avg_divide`` computes (a power of two's exact reciprocal rounds the
    product as the quotient rounds; below 2**mantissa the product of the
    converted factors is the converted product)."""
    cdef Py_ssize_t K = g.ks[2], S = g.st[2], P = g.pd[2], L = g.isz[2]
    cdef Py_ssize_t ia = _imax(a, pl.ilo), ib = _imin(b, pl.ihi), j, st, lw, cnt
    cdef const int64_t* fw = pl.fac + g.osz[0] + g.osz[1]
    cdef int64_t fdh = pl.fac[od] * pl.fac[g.osz[0] + oh], d
    cdef real_t rv
    cdef bint mul
    if ib < ia:
        ib = ia
    if ia < ib:
        # interior windows are whole: one W factor (K) for all of them
        st = ia * S - P - w0
        d = override if override != 0 else fdh * fw[ia]
        mul = _pow2_recip(d, &rv)
        _avg_win(o + (ia - a), r0 + st, r0 + rs + st, r0 + (K - 1) * rs + st, S, K, K,
                 ib - ia, rv if mul else <real_t>d, mul)
    for j in range(a, ia):
        cnt = _edge_cols(j * S - P, K, L, &lw)
        o[j - a] = (_avg_edge(r0, r0 + rs, r0 + (K - 1) * rs, K, lw - w0, cnt)
                    / <real_t>(override if override != 0 else fdh * fw[j]))
    for j in range(ib, b):
        cnt = _edge_cols(j * S - P, K, L, &lw)
        o[j - a] = (_avg_edge(r0, r0 + rs, r0 + (K - 1) * rs, K, lw - w0, cnt)
                    / <real_t>(override if override != 0 else fdh * fw[j]))


cdef inline void _asq_rows(real_t* q, const real_t* p0, const real_t* p1,
                           const real_t* p2, Py_ssize_t K, Py_ssize_t S,
                           Py_ssize_t n, Py_ssize_t h, Py_ssize_t t, Py_ssize_t B,
                           real_t dv, bint mul) noexcept nogil:
    """The n interior averages of one row of ``_avg_sq_block``: outputs
    [0, h) and, when h < n, the last B + 1 (from t).  ``_asq`` is called
    directly, not through ``_avg_win_run``: gcc inlines it here with
    ``mul`` a constant, and through the dispatcher it did not (0.87x,
    measured)."""
    if K == 2 and S == 2:
        _asq(q, p0, p1, p1, 2, 2, h, dv, mul)
        if h < n:
            _asq(q + t, p0 + 2 * t, p1 + 2 * t, p1 + 2 * t, 2, 2, B + 1, dv, mul)
    elif K == 2:
        _asq(q, p0, p1, p1, 2, 1, h, dv, mul)
        if h < n:
            _asq(q + t, p0 + t, p1 + t, p1 + t, 2, 1, B + 1, dv, mul)
    elif S == 2:
        _asq(q, p0, p1, p2, 3, 2, h, dv, mul)
        if h < n:
            _asq(q + t, p0 + 2 * t, p1 + 2 * t, p2 + 2 * t, 3, 2, B + 1, dv, mul)
    else:
        _asq(q, p0, p1, p2, 3, 1, h, dv, mul)
        if h < n:
            _asq(q + t, p0 + t, p1 + t, p2 + t, 3, 1, B + 1, dv, mul)


cdef bint _AVG3 = True     # avg3_kernels.h where the build has it


def _avg3_rows(int on=-1):
    """Whether the interior of rows of whole 3x3 windows at W stride 1
    (float32, float64; at least a vector of outputs) takes the row kernels
    of avg3_kernels.h in builds that have them (AVX-512, AVX2); ``on`` 0 or 1 sets
    it (tests compare with the compiled loop of ``_asq``).  Returns the
    previous setting."""
    global _AVG3
    cdef bint old = _AVG3
    if on >= 0:
        _AVG3 = on != 0
    return old


cdef inline bint _avg3_ok(Py_ssize_t n, Py_ssize_t elsize) noexcept nogil:
    """Does ``cypool_avg3`` take a row of n such averages (n at least one
    vector of 64 bytes)?"""
    return CYPOOL_HAVE_AVG3 and _AVG3 and n * elsize >= 64


cdef inline void _avg3_row(real_t* q, const real_t* p0, const real_t* p1,
                           const real_t* p2, Py_ssize_t n, real_t dv,
                           bint mul) noexcept nogil:
    if real_t is float:
        if mul:
            cypool_avg3_f32(q, p0, p1, p2, n, dv, 1)
        else:
            cypool_avg3_f32(q, p0, p1, p2, n, dv, 0)
    else:
        if mul:
            cypool_avg3_f64(q, p0, p1, p2, n, dv, 1)
        else:
            cypool_avg3_f64(q, p0, p1, p2, n, dv, 0)


cdef inline void _avg_sq_block(const Geo* g, const Plan* pl, const real_t* r,
                               Py_ssize_t rs, Py_ssize_t rstep, real_t* o,
                               Py_ssize_t os3, Py_ssize_t nrows, Py_ssize_t a,
                               Py_ssize_t b, Py_ssize_t od, Py_ssize_t oh,
                               int64_t override, Py_ssize_t pfd,
                               Py_ssize_t nxt) noexcept nogil:
    """``_avg_row_square`` for ``nrows`` consecutive output rows (the first
    is ``oh``) whose window rows all lie in the input: row i reads rows
    ``r + i*rstep + k*rs`` (W-contiguous, column 0 first) and writes columns
    [a, b) at ``o + i*os3``.  As ``_max_sq_block``: one call for the block,
    interior columns cut as ``_head_len`` says, the input rows of row
    i + pfd hinted while row i runs (past the block, the next block's, as
    ``_max_sq_block``).  Bit for bit ``_avg_row_square``."""
    cdef Py_ssize_t K = g.ks[2], S = g.st[2], P = g.pd[2], L = g.isz[2]
    cdef Py_ssize_t B = 64 // sizeof(real_t), i, j, lw, cnt
    cdef Cut cut
    _block_cut(g, pl, a, b, sizeof(real_t), &cut)
    cdef Py_ssize_t ia = cut.ia, ib = cut.ib, n = cut.n, h = cut.h, t = cut.t, lo = cut.lo
    cdef const int64_t* fw = pl.fac + g.osz[0] + g.osz[1]
    cdef int64_t fdh, d
    cdef real_t rv, dv
    cdef bint mul
    cdef const real_t* p0
    cdef const real_t* p1
    cdef const real_t* p2
    cdef real_t* q
    for i in range(nrows):
        p0 = r + i * rstep
        p1 = p0 + rs
        p2 = p1 + rs if K == 3 else p1
        _hint_block_row(<const char*>r, i, pfd, nrows, rstep, nxt, rs, &cut, K, sizeof(real_t))
        q = o + i * os3
        fdh = pl.fac[od] * pl.fac[g.osz[0] + oh + i]
        if n > 0:
            # interior windows are whole: one W factor (K) for all of them
            d = override if override != 0 else fdh * fw[ia]
            mul = _pow2_recip(d, &rv)
            dv = rv if mul else <real_t>d
            if K == 3 and S == 1 and _avg3_ok(n, sizeof(real_t)):
                _avg3_row(q + (ia - a), p0 + lo, p1 + lo, p2 + lo, n, dv, mul)
            elif mul:   # constant arguments: each loop compiles without a select
                _asq_rows(q + (ia - a), p0 + lo, p1 + lo, p2 + lo, K, S, n, h, t, B,
                          dv, True)
            else:
                _asq_rows(q + (ia - a), p0 + lo, p1 + lo, p2 + lo, K, S, n, h, t, B,
                          dv, False)
        for j in range(a, ia):
            cnt = _edge_cols(j * S - P, K, L, &lw)
            q[j - a] = (_avg_edge(p0, p1, p2, K, lw, cnt)
                        / <real_t>(override if override != 0 else fdh * fw[j]))
        for j in range(ib, b):
            cnt = _edge_cols(j * S - P, K, L, &lw)
            q[j - a] = (_avg_edge(p0, p1, p2, K, lw, cnt)
                        / <real_t>(override if override != 0 else fdh * fw[j]))


cdef inline void _avg_fwd_item(const real_t* x, real_t* out, const Geo* g,
                               const Plan* pl, Py_ssize_t it,
                               const Scratch* layout, char* mine,
                               int64_t override) noexcept nogil:
    cdef Py_ssize_t n, c, od, oh0, oh1, oh, a, b, nr, w0, h0, pfd, blo, bhi
    cdef real_t* o
    cdef const real_t* xp
    cdef Scratch scr
    cdef Scratch* sc = &scr
    _bind(sc, layout, mine)
    _decode(g, it, &n, &c, &od, &oh0, &oh1, &a, &b)
    xp = x + n * g.xs[0] + c * g.xs[1] + od * g.st[0] * g.xs[2]
    pfd = _pf_dist(g, a, b, sizeof(real_t))
    # the rows whose windows lie inside the input: one _avg_sq_block; the
    # rest row by row below
    blo = bhi = oh0
    if g.square and g.xs[4] == 1:
        _inside_rows(g, oh0, oh1, &blo, &bhi)
        if bhi > blo:
            _avg_sq_block(g, pl, xp + (blo * g.st[1] - g.pd[1]) * g.xs[3], g.xs[3],
                          g.st[1] * g.xs[3],
                          out + n * g.os[0] + c * g.os[1] + od * g.os[2] + blo * g.os[3] + a,
                          g.os[3], bhi - blo, a, b, od, blo, override, pfd,
                          _next_off(g, n, c, od, oh0, oh1, a, b))
    for oh in range(oh0, oh1):
        if blo <= oh < bhi:
            continue
        _prefetch_window(<const char*>(x + n * g.xs[0] + c * g.xs[1]), g,
                         sizeof(real_t), od, oh + pfd, a, b)
        o = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3] + a
        if g.square:
            h0 = oh * g.st[1] - g.pd[1]
            if h0 >= 0 and h0 + g.ks[1] <= g.isz[1]:
                if g.xs[4] == 1:
                    _avg_row_square(g, pl, xp + h0 * g.xs[3], g.xs[3], 0, a, b, od,
                                    oh, override, o)
                else:
                    nr = _window_rows(x, g, n, c, od, oh, a, b, sc, &w0)
                    _avg_row_square(g, pl, (<const real_t**>sc.rows)[0],
                                    (<const real_t**>sc.rows)[1]
                                    - (<const real_t**>sc.rows)[0], w0, a, b, od,
                                    oh, override, o)
                continue
        nr = _window_rows(x, g, n, c, od, oh, a, b, sc, &w0)
        _avg_row(g, pl, sc, nr, w0, a, b, od, oh, override, o)


cdef int _avg_fwd(const real_t* x, real_t* out, Geo* g, bint include_pad,
                  int64_t override) noexcept nogil:
    cdef Py_ssize_t nitems = g.N * g.C * g.osz[0] * g.nband * g.nchunk
    cdef Py_ssize_t it, ow, per_thread, dim, base
    cdef int64_t fdh, fmax
    cdef Plan pl
    cdef Scratch layout
    cdef char* mine
    cdef char* scratch
    cdef real_t* dw
    cdef int tid
    memset(&pl, 0, sizeof(Plan))
    if _w_plan(g, &pl) != 0:
        _free_plan(&pl)
        return -1
    pl.fac = _avg_factors(g, include_pad)
    dw = <real_t*>malloc(g.osz[2] * sizeof(real_t))
    pl.dw = dw
    if pl.fac == NULL or dw == NULL:
        _free_plan(&pl)
        return -1
    pl.fwu = 0
    if g.osz[2] > 0 and pl.fac[g.osz[0] + g.osz[1]] < (<int64_t>1 << 31):
        pl.fwu = pl.fac[g.osz[0] + g.osz[1]]
    for ow in range(g.osz[2]):
        dw[ow] = <real_t>pl.fac[g.osz[0] + g.osz[1] + ow]
        if pl.fac[g.osz[0] + g.osz[1] + ow] != pl.fwu:
            pl.fwu = 0
    # the largest divisor is at most the product of the largest factors
    fdh = 1
    base = 0
    for dim in range(3):
        fmax = 1
        for ow in range(g.osz[dim]):
            fmax = _imax(fmax, pl.fac[base + ow])
        base += g.osz[dim]
        fdh = _imin(fdh * fmax, <int64_t>1 << 60) if fmax < (<int64_t>1 << 30) else (<int64_t>1 << 60)
    if real_t is float:
        pl.exact_div = fdh < (1 << 24)
    else:
        pl.exact_div = fdh < (<int64_t>1 << 53)
    scratch = _scratch(g, sizeof(real_t), False, g.xs[4] != 1, &layout, &per_thread)
    if scratch == NULL:
        _free_plan(&pl)
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        mine = _aligned(scratch) + tid * per_thread
        for it in prange(nitems, schedule='static'):
            _avg_fwd_item(x, out, g, &pl, it, &layout, mine, override)
    free(scratch)
    _free_plan(&pl)
    return 0


# ------------------------------------------------- integer average forward
# Integer input: each window is summed in 64 bits (wrapping, as int64
# arithmetic does) and divided by PyTorch's divisor with the chosen rounding
# (toward zero, or to nearest with ties to even), then stored in the input's
# dtype.  One output at a time over its in-bounds taps; planar layouts walk
# each (n, c) row, channels-last layouts run all channels of a position
# together.

cdef inline int64_t _int_quot(int64_t s, int64_t d, bint nearest) noexcept nogil:
    """s / d rounded toward zero, or to nearest (ties to even); d != 0 and
    d > INT64_MIN (validated).  Both roundings are odd functions of d, so the
    quotient by |d| is taken and negated for d < 0 (wrapping, as int64
    arithmetic does, for INT64_MIN / -1).  Sums and divisors below 2**53
    (every image) divide in double precision, several times faster than a
    64-bit integer divide, and the quotient is then made exact from its
    remainder; larger ones divide as integers (d >= 1: no overflow trap)."""
    cdef int64_t q, r
    cdef int64_t big = <int64_t>1 << 53
    cdef bint neg = d < 0
    if neg:
        d = -d
    if d <= 0:
        return 0    # unreachable for validated divisors; never loop forever
    if -big < s < big and d < big:
        q = <int64_t>(<double>s / <double>d)   # within 1 of the true quotient
        r = s - q * d
        while r < 0:                            # floor: 0 <= r < d
            q -= 1
            r += d
        while r >= d:
            q += 1
            r -= d
    else:
        q = s / d
        r = s - q * d
        if r < 0:                               # floor
            q -= 1
            r += d
    if not nearest:
        q += (r != 0 and s < 0)                 # floor -> toward zero
    elif r > d - r or (r == d - r and (q & 1)):
        q += 1
    return <int64_t>(<uint64_t>0 - <uint64_t>q) if neg else q


cdef inline int _log2_exact(int64_t d) noexcept nogil:
    """k if d == 2**k with 1 <= k <= 62, else 0."""
    cdef int k = 0
    if d < 2 or (d & (d - 1)) != 0:
        return 0
    while d > 1:
        d >>= 1
        k += 1
    return k


cdef inline int64_t _int_quot_pow2(int64_t s, int sh, bint nearest) noexcept nogil:
    """``_int_quot(s, 2**sh, nearest)`` for 1 <= sh <= 62, branch-free: the
    arithmetic shift is the floor (gcc, clang and MSVC shift signed values
    arithmetically), the low bits the remainder."""
    cdef int64_t d = (<int64_t>1) << sh
    cdef int64_t q = s >> sh
    cdef int64_t r = s & (d - 1)
    cdef int64_t half = d >> 1
    if nearest:
        return q + ((r > half) | ((r == half) & (q & 1)))
    return q + ((r != 0) & (s < 0))


cdef inline int64_t _int_quot_small(int64_t s, int64_t d, bint nearest) noexcept nogil:
    """``_int_quot(s, d, nearest)`` for |s| < 2**53 and 1 <= d < 2**53,
    branch-free (the loops over a row of quotients vectorise): the double
    quotient is within 1 of the floor, so one correction step each way
    makes it exact."""
    cdef int64_t q = <int64_t>(<double>s / <double>d)
    cdef int64_t r = s - q * d
    cdef int64_t m = r < 0
    q -= m
    r += m * d
    m = r >= d
    q += m
    r -= m * d
    if nearest:
        return q + ((r > d - r) | ((r == d - r) & (q & 1)))
    return q + ((r != 0) & (s < 0))


cdef inline int64_t _avg_div(const Geo* g, const int64_t* fac, int64_t override,
                             Py_ssize_t od, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    if override != 0:
        return override
    return fac[od] * fac[g.osz[0] + oh] * fac[g.osz[0] + g.osz[1] + ow]


cdef inline void _avg_int_item(const int_t* x, int_t* out, const Geo* g,
                               const int64_t* fac, int64_t override,
                               bint nearest, bint cl, Py_ssize_t it) noexcept nogil:
    cdef Py_ssize_t n, c, c0, c1, od, oh0, oh1, oh, a, b, ow, kd, kh, kw
    cdef Py_ssize_t d0, h0, w0, dlo, dhi, hlo, hhi, wlo, whi
    cdef uint64_t acc
    cdef int64_t dv
    cdef const int_t* src
    if cl:
        _decode_cl(g, it, &n, &od, &oh0, &oh1, &a, &b)
        c0 = 0
        c1 = g.C
    else:
        _decode(g, it, &n, &c, &od, &oh0, &oh1, &a, &b)
        c0 = c
        c1 = c + 1
    d0 = od * g.st[0] - g.pd[0]
    _tap_range(d0, g.ks[0], 1, g.isz[0], &dlo, &dhi)
    for oh in range(oh0, oh1):
        h0 = oh * g.st[1] - g.pd[1]
        _tap_range(h0, g.ks[1], 1, g.isz[1], &hlo, &hhi)
        for ow in range(a, b):
            w0 = ow * g.st[2] - g.pd[2]
            _tap_range(w0, g.ks[2], 1, g.isz[2], &wlo, &whi)
            dv = _avg_div(g, fac, override, od, oh, ow)
            for c in range(c0, c1):
                acc = 0
                for kd in range(dlo, dhi):
                    for kh in range(hlo, hhi):
                        src = (x + n * g.xs[0] + c * g.xs[1] + (d0 + kd) * g.xs[2]
                               + (h0 + kh) * g.xs[3] + w0 * g.xs[4])
                        for kw in range(wlo, whi):
                            acc = acc + <uint64_t>(<int64_t>src[kw * g.xs[4]])
                out[n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
                    + ow * g.os[4]] = <int_t>_int_quot(<int64_t>acc, dv, nearest)


cdef inline void _avg_int_tiled_row(const int_t* base, const Geo* g,
                                    Py_ssize_t d0, Py_ssize_t dlo, Py_ssize_t dhi,
                                    Py_ssize_t h0, Py_ssize_t hlo, Py_ssize_t hhi,
                                    Py_ssize_t a, Py_ssize_t b, Py_ssize_t CC,
                                    uint64_t* acc, int32_t* vs) noexcept nogil:
    """Window sums of outputs [a, b) of one row into ``acc`` for windows
    that tile W (see ``_avg_int_rows_item``)."""
    cdef Py_ssize_t S = g.st[2], L = (b - a) * S * CC, q, j, kw, cc, kd, kh
    cdef const int_t* row
    cdef const int32_t* v
    cdef uint64_t t
    cdef bint first = True
    for kd in range(dlo, dhi):
        for kh in range(hlo, hhi):
            row = base + (d0 + kd) * g.xs[2] + (h0 + kh) * g.xs[3] + a * S * CC
            if first:
                for q in range(L):
                    vs[q] = <int32_t>row[q]
                first = False
            else:
                for q in range(L):
                    vs[q] = vs[q] + <int32_t>row[q]
    if first:
        for q in range(L):
            vs[q] = 0
    if CC == 1 and S == 2:
        for j in range(b - a):
            acc[j] = <uint64_t>(<int64_t>vs[2 * j] + <int64_t>vs[2 * j + 1])
    elif CC == 3 and S == 2:
        for j in range(b - a):
            v = vs + 6 * j
            acc[3 * j] = <uint64_t>(<int64_t>v[0] + <int64_t>v[3])
            acc[3 * j + 1] = <uint64_t>(<int64_t>v[1] + <int64_t>v[4])
            acc[3 * j + 2] = <uint64_t>(<int64_t>v[2] + <int64_t>v[5])
    else:
        for j in range(b - a):
            v = vs + j * S * CC
            for cc in range(CC):
                t = 0
                for kw in range(S):
                    t = t + <uint64_t>(<int64_t>v[kw * CC + cc])
                acc[j * CC + cc] = t


cdef inline void _avg_int_pair_row(const int_t* r0, const int_t* r1, int_t* o,
                                   int_t* qb, Py_ssize_t n, Py_ssize_t CC,
                                   int sh, bint nearest) noexcept nogil:
    """Outputs ``o[j*CC + c]`` (j < n, c < CC, contiguous) of windows two
    pixels wide over the two input rows ``r0`` and ``r1`` (pixels of CC
    packed channels), divided by ``2**sh`` (1 <= sh <= 30): the 8/16-bit
    2 x 2 mean of images.

    The four-term sums of 8/16-bit values fit int32, and the quotient is
    ``_int_quot_pow2``'s in closed form: toward zero ``(s + (d-1 if s < 0))
    >> sh``; to nearest, ties to even, ``(s + d/2 - 1 + (floor & 1)) >>
    sh``; both loops vectorise on narrow lanes.  With one channel the
    windows are read at stride 2.  With several, the window sum at every
    position ``q`` of the row (``r[q] + r[q + CC]``) is formed in one
    contiguous pass into ``qb`` (half of them straddle two pixels and are
    not used), and the wanted ones are then gathered pixel by pixel."""
    cdef Py_ssize_t q, j, c, L = (2 * n - 1) * CC
    cdef int32_t s, m = (<int32_t>1 << sh) - 1, h = (<int32_t>1 << (sh - 1)) - 1
    if CC == 1:
        if nearest:
            for j in range(n):
                s = (<int32_t>r0[2 * j] + <int32_t>r0[2 * j + 1]
                     + <int32_t>r1[2 * j] + <int32_t>r1[2 * j + 1])
                o[j] = <int_t>((s + h + ((s >> sh) & 1)) >> sh)
        else:
            for j in range(n):
                s = (<int32_t>r0[2 * j] + <int32_t>r0[2 * j + 1]
                     + <int32_t>r1[2 * j] + <int32_t>r1[2 * j + 1])
                o[j] = <int_t>((s + ((s >> 31) & m)) >> sh)
        return
    if nearest:
        for q in range(L):
            s = (<int32_t>r0[q] + <int32_t>r0[q + CC]
                 + <int32_t>r1[q] + <int32_t>r1[q + CC])
            qb[q] = <int_t>((s + h + ((s >> sh) & 1)) >> sh)
    else:
        for q in range(L):
            s = (<int32_t>r0[q] + <int32_t>r0[q + CC]
                 + <int32_t>r1[q] + <int32_t>r1[q + CC])
            qb[q] = <int_t>((s + ((s >> 31) & m)) >> sh)
    if CC == 3:
        # RGB: four elements per pixel; the spare one is overwritten by the
        # next pixel, and the last pixel is copied element by element
        for j in range(n - 1):
            memcpy(o + 3 * j, qb + 6 * j, 4 * sizeof(int_t))
        j = n - 1
        o[3 * j] = qb[6 * j]
        o[3 * j + 1] = qb[6 * j + 1]
        o[3 * j + 2] = qb[6 * j + 2]
    else:
        for j in range(n):
            for c in range(CC):
                o[j * CC + c] = qb[2 * j * CC + c]


cdef inline void _avg_int_rows_item(const int_t* x, int_t* out, const Geo* g,
                                    const int64_t* fac, int64_t override,
                                    bint nearest, bint cl, Py_ssize_t it,
                                    uint64_t* acc, int32_t* vs,
                                    bint wuni) noexcept nogil:
    """A run of outputs of one row (all channels when ``cl``) summed in the
    64-bit row buffer ``acc``, tap by tap over the in-bounds input rows, then
    divided: no per-output bookkeeping.

    ``vs`` (not NULL: 8/16-bit data, windows that tile W without padding,
    rows contiguous; see ``_avg_fwd_int``): the in-bounds input rows are
    first added element-wise into the 32-bit buffer ``vs`` (one contiguous,
    vectorised pass per row, for any number of channels), then each output
    sums its S pixels of ``vs``.  Integer sums: the same values in any
    order.

    ``wuni``: every output column has the same W divisor factor (or there is
    an override), so a row divides by one divisor; with the row's outputs
    contiguous the quotients then run as one branch-free loop."""
    cdef Py_ssize_t n, c = 0, od, oh0, oh1, oh, a, b, ow, j, cc, CC, cs
    cdef Py_ssize_t kd, kh, kw, dlo, dhi, hlo, hhi, lo, hi, off, d0, h0
    cdef Py_ssize_t S = g.st[2], P = g.pd[2], ws = g.xs[4], os4 = g.os[4]
    cdef const int_t* base
    cdef const int_t* row
    cdef const int_t* src
    cdef uint64_t* dst
    cdef int_t* orow
    cdef int_t* o
    cdef int64_t dv, last = 0
    cdef int sh = 0, psh
    cdef const int_t* rp[2]
    cdef bint pair
    if cl:
        _decode_cl(g, it, &n, &od, &oh0, &oh1, &a, &b)
        CC = g.C
        cs = g.xs[1]
    else:
        _decode(g, it, &n, &c, &od, &oh0, &oh1, &a, &b)
        CC = 1
        cs = 0
    base = x + n * g.xs[0] + c * g.xs[1]
    d0 = od * g.st[0] - g.pd[0]
    _tap_range(d0, g.ks[0], 1, g.isz[0], &dlo, &dhi)
    if vs != NULL and b * S > g.isz[2]:
        vs = NULL     # a window clipped by the row's end (ceil mode)
    # windows two pixels wide over two in-bounds rows, a power-of-two
    # divisor, contiguous outputs: _avg_int_pair_row (the 2 x 2 image mean)
    pair = (vs != NULL and S == 2 and wuni and os4 == CC
            and (CC == 1 or g.os[1] == 1))
    for oh in range(oh0, oh1):
        h0 = oh * g.st[1] - g.pd[1]
        _tap_range(h0, g.ks[1], 1, g.isz[1], &hlo, &hhi)
        if pair and (dhi - dlo) * (hhi - hlo) == 2:
            psh = _log2_exact(_avg_div(g, fac, override, od, oh, a))
            if 0 < psh <= 30:
                j = 0
                for kd in range(dlo, dhi):
                    for kh in range(hlo, hhi):
                        rp[j] = base + (d0 + kd) * g.xs[2] + (h0 + kh) * g.xs[3] + a * S * CC
                        j += 1
                _prefetch_next_rows(<const char*>base, g, sizeof(int_t), d0, dlo, dhi,
                                    oh, a, b, CC)
                orow = (out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
                        + a * os4)
                if psh == 2:    # 2 x 2 windows: a constant shift, narrower lanes
                    _avg_int_pair_row(rp[0], rp[1], orow, <int_t*>vs, b - a, CC, 2,
                                      nearest)
                else:
                    _avg_int_pair_row(rp[0], rp[1], orow, <int_t*>vs, b - a, CC, psh,
                                      nearest)
                continue
        if vs != NULL:
            _prefetch_next_rows(<const char*>base, g, sizeof(int_t), d0, dlo, dhi,
                                oh, a, b, CC)
            _avg_int_tiled_row(base, g, d0, dlo, dhi, h0, hlo, hhi, a, b, CC,
                               acc, vs)
        else:
            for j in range((b - a) * CC):
                acc[j] = 0
            for kd in range(dlo, dhi):
                for kh in range(hlo, hhi):
                    row = base + (d0 + kd) * g.xs[2] + (h0 + kh) * g.xs[3]
                    for kw in range(g.kw0, g.kw0 + g.kwn):
                        off = kw - P
                        lo = _imax(a, _ceildiv(-off, S))
                        hi = _imin(b, _floordiv(g.isz[2] - 1 - off, S) + 1)
                        if CC == 1:
                            for ow in range(lo, hi):
                                acc[ow - a] += <uint64_t>(<int64_t>row[(ow * S + off) * ws])
                        elif CC == 3 and cs == 1:  # RGB
                            for ow in range(lo, hi):
                                src = row + (ow * S + off) * ws
                                dst = acc + (ow - a) * 3
                                dst[0] += <uint64_t>(<int64_t>src[0])
                                dst[1] += <uint64_t>(<int64_t>src[1])
                                dst[2] += <uint64_t>(<int64_t>src[2])
                        else:
                            for ow in range(lo, hi):
                                src = row + (ow * S + off) * ws
                                dst = acc + (ow - a) * CC
                                for cc in range(CC):
                                    dst[cc] += <uint64_t>(<int64_t>src[cc * cs])
        orow = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
        if wuni and os4 == CC and (CC == 1 or g.os[1] == 1):
            dv = _avg_div(g, fac, override, od, oh, a)
            sh = _log2_exact(dv)
            o = orow + a * os4
            if sh > 0:
                for j in range((b - a) * CC):
                    o[j] = <int_t>_int_quot_pow2(<int64_t>acc[j], sh, nearest)
                continue
            if (int_t is not int32_t and int_t is not int64_t and 0 < dv < (<int64_t>1 << 53)
                    and g.rmax < 32768 and g.ks[2] <= 4096):
                # |sums| <= 2**15 * 2**12 * 2**16 < 2**53
                for j in range((b - a) * CC):
                    o[j] = <int_t>_int_quot_small(<int64_t>acc[j], dv, nearest)
                continue
        for ow in range(a, b):
            dv = _avg_div(g, fac, override, od, oh, ow)
            if dv != last:
                last = dv
                sh = _log2_exact(dv)
            if sh > 0:      # 2 x 2 windows and the like: shifts, no divide
                for cc in range(CC):
                    orow[ow * os4 + cc * g.os[1]] = <int_t>_int_quot_pow2(
                        <int64_t>acc[(ow - a) * CC + cc], sh, nearest)
            else:
                for cc in range(CC):
                    orow[ow * os4 + cc * g.os[1]] = <int_t>_int_quot(
                        <int64_t>acc[(ow - a) * CC + cc], dv, nearest)


cdef int _avg_fwd_int(const int_t* x, int_t* out, Geo* g, bint include_pad,
                      int64_t override, bint nearest, bint cl) noexcept nogil:
    cdef Py_ssize_t nitems, it, per = 0, vs_off = 0
    cdef Py_ssize_t CC = g.C if cl else 1
    cdef bint tiled = False
    cdef bint wuni = override != 0
    cdef bint rows = not g.sparse
    cdef int64_t* fac = _avg_factors(g, include_pad)
    cdef char* scratch = NULL
    cdef int tid
    if fac == NULL:
        return -1
    if not wuni:
        wuni = True
        for it in range(1, g.osz[2]):
            wuni = wuni and fac[g.osz[0] + g.osz[1] + it] == fac[g.osz[0] + g.osz[1]]
    if rows:
        # the row buffer of one item: chunk * channels 64-bit sums, bounded
        if g.chunk * CC > 16384:
            g.chunk = _imax(1, 16384 // CC)
            g.nchunk = (g.osz[2] + g.chunk - 1) // g.chunk
        # windows tiling W (kernel == stride, no padding, every tap in
        # bounds for some output) over rows whose pixels are contiguous, of
        # 8/16-bit data whose column sums fit 32 bits: vertical sums first
        tiled = (int_t is not int32_t and int_t is not int64_t
                 and g.ks[2] == g.st[2] and g.pd[2] == 0 and g.kw0 == 0
                 and g.kwn == g.ks[2] and g.rmax < 32768 and g.st[2] <= 4096
                 and g.xs[4] == CC and (CC == 1 or g.xs[1] == 1))
        if tiled and g.chunk * CC * g.st[2] > 32768:
            g.chunk = _imax(1, 32768 // (CC * g.st[2]))
            g.nchunk = (g.osz[2] + g.chunk - 1) // g.chunk
        per = _lines(g.chunk * CC * sizeof(uint64_t))
        vs_off = per
        if tiled:
            per += _lines(g.chunk * CC * g.st[2] * sizeof(int32_t))
        scratch = <char*>malloc(per * g.nthreads + LINE)
        if scratch == NULL:
            free(fac)
            return -1
    nitems = g.N * (1 if cl else g.C) * g.osz[0] * g.nband * g.nchunk
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            if rows:
                _avg_int_rows_item(x, out, g, fac, override, nearest, cl, it,
                                   <uint64_t*>(_aligned(scratch) + tid * per),
                                   <int32_t*>(_aligned(scratch) + tid * per + vs_off)
                                   if tiled else NULL, wuni)
            else:
                _avg_int_item(x, out, g, fac, override, nearest, cl, it)
    free(scratch)
    free(fac)
    return 0


# ----------------------------------------------------------- max backward
# Plane-owned scatter: each work item owns one whole (n, c) input-gradient
# plane, zeroes it and adds every output gradient into the slot its index
# names, in C order (deterministic, no races, PyTorch's accumulation order).

cdef inline void _max_bwd_plane(const real_t* go, const int64_t* idx,
                                real_t* gi, const Geo* g, Py_ssize_t it,
                                int* bad, real_t* buf,
                                const int64_t* bnd) noexcept nogil:
    """One plane, zeroed and scattered into; with ``buf`` (a contiguous
    plane, streaming on) built in ``buf`` and then copied out with
    non-temporal stores: with ``bnd`` (the windows' row bounds, one per
    output row, see ``scatter_stream.h``; ``buf`` zero on entry and left
    zero) streamed out part by part as it is built, else after it."""
    cdef Py_ssize_t n = it // g.C, c = it % g.C
    cdef Py_ssize_t od, oh, ow, P = g.isz[0] * g.isz[1] * g.isz[2]
    cdef Py_ssize_t e = g.xs[4]
    cdef const real_t* gorow
    cdef const int64_t* irow
    cdef real_t* gp = gi + n * g.xs[0] + c * g.xs[1]
    cdef real_t* dst = buf if buf != NULL else gp
    cdef int64_t i
    cdef Py_ssize_t Q = g.osz[0] * g.osz[1] * g.osz[2]
    if e == 1 and _dense_vol(g, g.os) and _dense_vol(g, g.js):
        if buf != NULL and bnd != NULL:
            if real_t is float:
                if cypool_max_bwd_stream_f32(go + n * g.os[0] + c * g.os[1],
                                             idx + n * g.js[0] + c * g.js[1],
                                             Q, g.osz[2], bnd, buf, gp, P, _BWD_PF):
                    bad[0] = 1
            else:
                if cypool_max_bwd_stream_f64(go + n * g.os[0] + c * g.os[1],
                                             idx + n * g.js[0] + c * g.js[1],
                                             Q, g.osz[2], bnd, buf, gp, P, _BWD_PF):
                    bad[0] = 1
            return
        # contiguous volumes: one flat loop (small_kernels.h; 1.5x on
        # 14 x 14 planes)
        if real_t is float:
            if cypool_max_bwd_vol_f32(go + n * g.os[0] + c * g.os[1],
                                      idx + n * g.js[0] + c * g.js[1], Q, dst, P):
                bad[0] = 1
        else:
            if cypool_max_bwd_vol_f64(go + n * g.os[0] + c * g.os[1],
                                      idx + n * g.js[0] + c * g.js[1], Q, dst, P):
                bad[0] = 1
        if buf != NULL:
            cypool_stream_copy(<char*>gp, <const char*>buf, P * sizeof(real_t))
        return
    if e == 1:
        memset(dst, 0, P * sizeof(real_t))
    else:
        for i in range(P):
            dst[i * e] = 0
    for od in range(g.osz[0]):
        for oh in range(g.osz[1]):
            gorow = go + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
            irow = idx + n * g.js[0] + c * g.js[1] + od * g.js[2] + oh * g.js[3]
            for ow in range(g.osz[2]):
                i = irow[ow * g.js[4]]
                if <uint64_t>i < <uint64_t>P:
                    dst[i * e] += gorow[ow * g.os[4]]
                elif i != -1:
                    bad[0] = 1
    if buf != NULL:
        cypool_stream_copy(<char*>gp, <const char*>buf, P * sizeof(real_t))


# The streamed max backward's tuning: the largest plane (bytes) streamed
# while built into a caller's array (fresh results: 256 KiB), and the
# distance (outputs) at which each row hints the indices and gradients
# ahead (measured on the (32, 64, 112, 112) k3s2p1 backward, 1 thread: no
# hints 7.7 ms, 128 6.1, 256 5.4, 512 5.2, 1024 5.3; hints spread through
# the row, one line per 8 outputs, measured slower)
cdef Py_ssize_t _ROWS_PLANE_MAX = 4 << 20
cdef Py_ssize_t _BWD_PF = 512


def _bwd_stream_tuning(Py_ssize_t pf=-1, Py_ssize_t plane_max=-1):
    """``(hint distance, largest plane)`` of the streamed max backward (see
    above); each argument that is ``>= 0`` sets its value.  Returns the
    previous values."""
    global _BWD_PF, _ROWS_PLANE_MAX
    cdef tuple old = (_BWD_PF, _ROWS_PLANE_MAX)
    if pf >= 0:
        _BWD_PF = pf
    if plane_max >= 0:
        _ROWS_PLANE_MAX = plane_max
    return old


cdef int _max_bwd(const real_t* go, const int64_t* idx, real_t* gi,
                  Geo* g, const int64_t* bnd) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.C, per = 0
    cdef char* planes = NULL
    cdef real_t* buf
    cdef int* bad
    cdef int tid, anybad = 0
    cdef Py_ssize_t slot = LINE // sizeof(int)
    bad = <int*>malloc(g.nthreads * LINE)
    if bad == NULL:
        return -1
    for tid in range(g.nthreads):
        bad[tid * slot] = 0
    if g.stream:
        # one plane per thread (see max_pool_backward for the sizes);
        # without the memory the planes are written directly
        per = _lines(g.isz[0] * g.isz[1] * g.isz[2] * sizeof(real_t))
        if bnd != NULL:     # streamed while built: the buffers start zero
            planes = <char*>calloc(per * g.nthreads + LINE, 1)
        else:
            planes = <char*>malloc(per * g.nthreads + LINE)
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        buf = <real_t*>(_aligned(planes) + tid * per) if planes != NULL else NULL
        for it in prange(nitems, schedule='static'):
            _max_bwd_plane(go, idx, gi, g, it, bad + tid * slot, buf, bnd)
        if buf != NULL:
            cypool_sfence()     # the streamed stores, visible before the join
    free(planes)
    for tid in range(g.nthreads):
        anybad = anybad | bad[tid * slot]
    free(bad)
    return -2 if anybad else 0


# ---------------------------------------------- channels-last backward
# Gradients laid out (N, *spatial, C) with the channels contiguous.  Each work
# item owns one sample n and a block of channels [c0, c1): it zeroes that
# part of the input gradient and scatters every output gradient of its
# channels into it, outputs in C order (deterministic, no races, the same
# accumulation order as the planar kernels).  The inner loops run along the
# contiguous channel axis.

cdef inline void _cl_block(const Geo* g, Py_ssize_t it, Py_ssize_t cb,
                           Py_ssize_t* n, Py_ssize_t* c0,
                           Py_ssize_t* c1) noexcept nogil:
    cdef Py_ssize_t nb = (g.C + cb - 1) // cb
    n[0] = it // nb
    c0[0] = (it % nb) * cb
    c1[0] = _imin(c0[0] + cb, g.C)


cdef inline void _zero_cl(real_t* gp, const Geo* g, Py_ssize_t c0,
                          Py_ssize_t c1) noexcept nogil:
    cdef Py_ssize_t s, c, e = g.xs[4], P = g.isz[0] * g.isz[1] * g.isz[2]
    if c0 == 0 and c1 == g.C and e == g.C:
        memset(gp, 0, P * g.C * sizeof(real_t))
    else:
        for s in range(P):
            for c in range(c0, c1):
                gp[s * e + c] = 0


cdef inline void _max_bwd_cl_item(const real_t* go, const int64_t* idx,
                                  real_t* gi, const Geo* g, Py_ssize_t it,
                                  Py_ssize_t cb, int* bad) noexcept nogil:
    cdef Py_ssize_t n, c0, c1, c, od, oh, ow, e = g.xs[4]
    cdef Py_ssize_t P = g.isz[0] * g.isz[1] * g.isz[2]
    cdef const real_t* gop
    cdef const int64_t* ip
    cdef real_t* gp
    cdef int64_t i
    _cl_block(g, it, cb, &n, &c0, &c1)
    gp = gi + n * g.xs[0]
    _zero_cl(gp, g, c0, c1)
    for od in range(g.osz[0]):
        for oh in range(g.osz[1]):
            for ow in range(g.osz[2]):
                gop = go + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
                ip = idx + n * g.js[0] + od * g.js[2] + oh * g.js[3] + ow * g.js[4]
                for c in range(c0, c1):
                    i = ip[c]
                    if <uint64_t>i < <uint64_t>P:
                        gp[i * e + c] += gop[c]
                    elif i != -1:
                        bad[0] = 1


cdef int _max_bwd_cl(const real_t* go, const int64_t* idx, real_t* gi,
                     Geo* g, Py_ssize_t cb) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * ((g.C + cb - 1) // cb)
    cdef int* bad
    cdef int tid, anybad = 0
    cdef Py_ssize_t slot = LINE // sizeof(int)
    bad = <int*>malloc(g.nthreads * LINE)
    if bad == NULL:
        return -1
    for tid in range(g.nthreads):
        bad[tid * slot] = 0
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _max_bwd_cl_item(go, idx, gi, g, it, cb, bad + tid * slot)
    for tid in range(g.nthreads):
        anybad = anybad | bad[tid * slot]
    free(bad)
    return -2 if anybad else 0


cdef inline void _avg_bwd_cl_item(const real_t* go, real_t* gi, const Geo* g,
                                  const int64_t* fac, int64_t override,
                                  Py_ssize_t it, Py_ssize_t cb) noexcept nogil:
    cdef Py_ssize_t n, c0, c1, c, od, oh, ow, kd, kh, kw, e = g.xs[4]
    cdef Py_ssize_t d0, h0, w0, dlo, dhi, hlo, hhi, wlo, whi
    cdef const real_t* gop
    cdef real_t* gp
    cdef real_t* dst
    cdef real_t dv
    _cl_block(g, it, cb, &n, &c0, &c1)
    gp = gi + n * g.xs[0]
    _zero_cl(gp, g, c0, c1)
    for od in range(g.osz[0]):
        d0 = od * g.st[0] - g.pd[0]
        _tap_range(d0, g.ks[0], 1, g.isz[0], &dlo, &dhi)
        for oh in range(g.osz[1]):
            h0 = oh * g.st[1] - g.pd[1]
            _tap_range(h0, g.ks[1], 1, g.isz[1], &hlo, &hhi)
            for ow in range(g.osz[2]):
                w0 = ow * g.st[2] - g.pd[2]
                _tap_range(w0, g.ks[2], 1, g.isz[2], &wlo, &whi)
                gop = go + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
                if override != 0:
                    dv = <real_t>override
                else:
                    dv = <real_t>(fac[od] * fac[g.osz[0] + oh]
                                  * fac[g.osz[0] + g.osz[1] + ow])
                for kd in range(dlo, dhi):
                    for kh in range(hlo, hhi):
                        for kw in range(wlo, whi):
                            dst = gp + (((d0 + kd) * g.isz[1] + h0 + kh) * g.isz[2]
                                        + w0 + kw) * e
                            for c in range(c0, c1):
                                dst[c] += gop[c] / dv


cdef int _avg_bwd_cl(const real_t* go, real_t* gi, Geo* g, bint include_pad,
                     int64_t override, Py_ssize_t cb) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * ((g.C + cb - 1) // cb)
    cdef int64_t* fac = _avg_factors(g, include_pad)
    if fac == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        for it in prange(nitems, schedule='static'):
            _avg_bwd_cl_item(go, gi, g, fac, override, it, cb)
    free(fac)
    return 0


cdef Py_ssize_t _cl_split(Geo* g, int nthreads, double work) noexcept:
    """Channel block size of the channels-last backward: whole samples while
    there are enough of them (4 per thread), else channels cut into blocks
    (at least 16 wide) so that N=1 still feeds every thread."""
    cdef Py_ssize_t want = 4 * nthreads if nthreads > 1 else 1
    cdef Py_ssize_t nb = 1, cb
    if g.N < want:
        nb = _imin(_imax(1, g.C // 16), (want + g.N - 1) // _imax(g.N, 1))
    cb = (g.C + nb - 1) // nb
    g.nthreads = <int>_imax(1, _imin(nthreads, g.N * ((g.C + cb - 1) // cb)))
    g.parallel = g.nthreads > 1 and work >= PARALLEL_MIN_WORK
    return cb


# ----------------------------------------------------------- avg backward
# Gather by input row: each work item owns a chunk of one input-gradient row
# and adds the contributions of every output window that covers it, so no two
# threads ever write the same element.

cdef struct RowPos:
    # a thread's last work item of the backward row loops and its position
    Py_ssize_t it, ch, ih, id_, c, n
    # the last row the average backward's tiled path built: chunk kch of
    # sample kn, channel kc under output row (kod, koh) alone (kn -1: none),
    # held at ksrc (the thread's row buffer, or the row in grad_input)
    Py_ssize_t kn, kc, kch, kod, koh
    void* ksrc


cdef inline void _row_pos(const Geo* g, Py_ssize_t it, RowPos* p) noexcept nogil:
    """Item ``it`` (chunk ch of input row (n, c, id_, ih)) into ``p``: one
    step on from the thread's previous item (the static schedule hands each
    thread a run of consecutive items), else decoded with 64-bit divides,
    which at a few dozen cycles each were a large share of a short row."""
    if it == p.it + 1:
        p.it = it
        p.ch += 1
        if p.ch < g.nchunk:
            return
        p.ch = 0
        p.ih += 1
        if p.ih < g.isz[1]:
            return
        p.ih = 0
        p.id_ += 1
        if p.id_ < g.isz[0]:
            return
        p.id_ = 0
        p.c += 1
        if p.c < g.C:
            return
        p.c = 0
        p.n += 1
        return
    p.it = it
    p.ch = it % g.nchunk
    it = it // g.nchunk
    p.ih = it % g.isz[1]
    it = it // g.isz[1]
    p.id_ = it % g.isz[0]
    it = it // g.isz[0]
    p.c = it % g.C
    p.n = it // g.C


cdef inline void _avg_bwd_item(const real_t* go, real_t* gi, const Geo* g,
                               Py_ssize_t it, real_t* gbuf, real_t* rowbuf,
                               const int64_t* fd, const int64_t* fh,
                               const int64_t* fw, int64_t override,
                               cypool_stream_t* st, const int64_t* uni,
                               RowPos* pos) noexcept nogil:
    # here the chunk runs over input columns; g.xs are grad_input strides and
    # g.os grad_output strides
    cdef Py_ssize_t ch, ih, id_, c, n, a, b, odlo, odhi, ohlo, ohhi
    cdef Py_ssize_t owlo, owhi, j
    cdef Py_ssize_t S = g.st[2], P = g.pd[2], K = g.ks[2]
    cdef real_t* dst
    _row_pos(g, it, pos)
    ch = pos.ch
    ih = pos.ih
    id_ = pos.id_
    c = pos.c
    n = pos.n
    a = ch * g.chunk
    b = _imin(a + g.chunk, g.isz[2])
    if g.xs[4] == 1 and not g.stream:
        dst = gi + n * g.xs[0] + c * g.xs[1] + id_ * g.xs[2] + ih * g.xs[3] + a
    else:
        dst = rowbuf
    # output windows covering input row (id_, ih): o*S - P <= i <= o*S - P + K - 1
    odlo = _imax(0, _ceildiv(id_ + g.pd[0] - g.ks[0] + 1, g.st[0]))
    odhi = _imin(g.osz[0] - 1, _floordiv(id_ + g.pd[0], g.st[0]))
    ohlo = _imax(0, _ceildiv(ih + g.pd[1] - g.ks[1] + 1, g.st[1]))
    ohhi = _imin(g.osz[1] - 1, _floordiv(ih + g.pd[1], g.st[1]))
    # output columns whose windows touch input columns [a, b)
    owlo = _imax(0, _ceildiv(a + P - K + 1, S))
    owhi = _imin(g.osz[2] - 1, _floordiv(b - 1 + P, S))
    if owhi < owlo:
        owhi = owlo - 1
    if K == S and odlo == odhi and ohlo == ohhi and owlo <= owhi:
        # windows that tile the row (kernel == stride) and one covering
        # output row: every input column lies under at most one output, so
        # each is stored once (no zero fill, no read-modify-write).  The
        # row depends on (n, c, chunk, covering output row) only: the
        # input rows under one output row (2 of k2s2) are the same row,
        # built once and then copied (or, in the row buffer, put again)
        if (pos.kn == n and pos.kc == c and pos.kch == ch and pos.kod == odlo
                and pos.koh == ohlo):
            if pos.ksrc != <void*>dst:
                memcpy(dst, pos.ksrc, (b - a) * sizeof(real_t))
        else:
            _avg_bwd_tiled(go + n * g.os[0] + c * g.os[1] + odlo * g.os[2]
                           + ohlo * g.os[3], dst, g, a, b, owlo, owhi, gbuf,
                           override, fd[odlo] * fh[ohlo], fw, uni)
            pos.kn = n
            pos.kc = c
            pos.kch = ch
            pos.kod = odlo
            pos.koh = ohlo
            pos.ksrc = <void*>dst
    else:
        pos.kn = -1         # the row buffer is about to change
        for j in range(b - a):
            dst[j] = 0
        _avg_bwd_general(go, dst, g, n, c, a, b, odlo, odhi, ohlo, ohhi, owlo,
                         owhi, gbuf, fd, fh, fw, override, uni)
    if g.xs[4] != 1:
        dst = gi + n * g.xs[0] + c * g.xs[1] + id_ * g.xs[2] + ih * g.xs[3]
        for j in range(b - a):
            dst[(a + j) * g.xs[4]] = rowbuf[j]
    elif g.stream:
        cypool_stream_put(
            st, <char*>(gi + n * g.xs[0] + c * g.xs[1] + id_ * g.xs[2] + ih * g.xs[3] + a),
            <const char*>rowbuf, (b - a) * sizeof(real_t))


cdef inline void _gdiv(real_t* gbuf, const real_t* gorow, Py_ssize_t s,
                       Py_ssize_t lo, Py_ssize_t n, int64_t override,
                       int64_t fdh, const int64_t* fw,
                       const int64_t* uni) noexcept nogil:
    """``gbuf[j] = 0 + gorow[(lo + j) * s] / divisor`` for j < n: the
    divisor is ``override`` where not 0, else ``fdh * fw[lo + j]``, as a
    real_t.  Columns in [uni[0], uni[1]) all have the W factor uni[2]: a span
    inside has one divisor (a multiply by its reciprocal for a power of
    two, which is exact), without a product and a conversion per column.
    The 0 + : PyTorch adds each quotient to a zeroed gradient, so a -0
    lands as +0 (tiled rows store these values without that add)."""
    cdef Py_ssize_t j
    cdef real_t z = 0, dv, rv
    cdef int64_t d = override
    if (d == 0 and lo >= uni[0] and lo + n <= uni[1]
            and fdh < (<int64_t>1 << 31) and uni[2] < (<int64_t>1 << 31)):
        d = fdh * uni[2]
    if d != 0 and _pow2_recip(d, &rv):
        if s == 1:
            for j in range(n):
                gbuf[j] = z + gorow[lo + j] * rv
        else:
            for j in range(n):
                gbuf[j] = z + gorow[(lo + j) * s] * rv
    elif d != 0:
        dv = <real_t>d
        if s == 1:
            for j in range(n):
                gbuf[j] = z + gorow[lo + j] / dv
        else:
            for j in range(n):
                gbuf[j] = z + gorow[(lo + j) * s] / dv
    else:
        for j in range(n):
            gbuf[j] = z + gorow[(lo + j) * s] / <real_t>(fdh * fw[lo + j])


cdef inline void _avg_bwd_tiled(const real_t* gorow, real_t* dst, const Geo* g,
                                Py_ssize_t a, Py_ssize_t b, Py_ssize_t owlo,
                                Py_ssize_t owhi, real_t* gbuf, int64_t override,
                                int64_t fdh, const int64_t* fw,
                                const int64_t* uni) noexcept nogil:
    """Input columns [a, b) of one row under non-overlapping windows
    (kernel == stride along W) of the single output row ``gorow``."""
    cdef Py_ssize_t S = g.st[2], P = g.pd[2], ow, j, lo, hi, pos
    cdef Py_ssize_t nw = owhi - owlo + 1
    cdef real_t v
    _gdiv(gbuf, gorow, g.os[4], owlo, nw, override, fdh, fw, uni)
    # covered columns, relative to a: [owlo*S - P - a, (owhi+1)*S - P - a);
    # owhi*S - P <= b - 1, so adding S last cannot overflow for S <= 2**62
    lo = owlo * S - P - a
    hi = (owhi * S - P - a) + S
    for j in range(0, _imax(0, _imin(lo, b - a))):
        dst[j] = 0
    for j in range(_imax(0, hi), b - a):
        dst[j] = 0
    if lo >= 0 and hi <= b - a:
        if S == 2:
            dst = dst + lo
            for j in range(nw):
                v = gbuf[j]
                dst[2 * j] = v
                dst[2 * j + 1] = v
            return
        if S == 1:
            for j in range(nw):
                dst[lo + j] = gbuf[j]
            return
    # windows cut by [a, b) (or wide ones): each stores its clipped span
    for ow in range(nw):
        v = gbuf[ow]
        pos = (owlo + ow) * S - P - a
        for j in range(_imax(pos, 0), _imin(pos + S, b - a)):
            dst[j] = v


cdef inline Py_ssize_t _gcap(const Geo* g) noexcept nogil:
    """Output columns that cover one chunk of an input row, at most."""
    return _imin(g.osz[2], g.chunk // g.st[2] + g.ks[2] // g.st[2] + 3)


cdef inline void _avg_bwd_general(const real_t* go, real_t* dst, const Geo* g,
                                  Py_ssize_t n, Py_ssize_t c, Py_ssize_t a,
                                  Py_ssize_t b, Py_ssize_t odlo, Py_ssize_t odhi,
                                  Py_ssize_t ohlo, Py_ssize_t ohhi,
                                  Py_ssize_t owlo, Py_ssize_t owhi, real_t* gbuf,
                                  const int64_t* fd, const int64_t* fh,
                                  const int64_t* fw, int64_t override,
                                  const int64_t* uni) noexcept nogil:
    """Accumulate into the zeroed columns [a, b) of one input row every
    output window that covers them."""
    cdef Py_ssize_t S = g.st[2], P = g.pd[2], K = g.ks[2]
    cdef Py_ssize_t od, oh, ow, kw, off, lo, hi, j, k0, k1
    cdef const real_t* gorow
    # 3-wide windows at W stride 2: the quotients spread over the input
    # columns (fb[t + 2 - kw] is what tap kw adds to column a + t; zeros
    # where none), added in one pass, taps in order: x + 0 is x, and no sum
    # is -0 (sums start at +0), so every element's sum is that of the tap
    # passes below, whose shifted read-modify-write passes stalled on store
    # forwarding and stored stride-2 lanes one by one
    cdef real_t* fb = gbuf + _lines(_gcap(g) * sizeof(real_t)) // sizeof(real_t)
    cdef Py_ssize_t nw = owhi - owlo + 1, s0 = 2 * owlo + 2 - a - P
    # (fb holds g.chunk + 8 elements: _avg_bwd; b - a <= g.chunk)
    cdef bint spread = S == 2 and K == 3 and s0 >= 0 and s0 + 2 * nw <= (b - a) + 3
    cdef real_t v
    for od in range(odlo, odhi + 1):
        for oh in range(ohlo, ohhi + 1):
            gorow = go + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
            _gdiv(gbuf, gorow, g.os[4], owlo, nw, override, fd[od] * fh[oh], fw, uni)
            if spread:
                for j in range(s0):
                    fb[j] = 0
                for j in range(nw):
                    fb[s0 + 2 * j] = gbuf[j]
                    fb[s0 + 2 * j + 1] = 0
                for j in range(s0 + 2 * nw, (b - a) + 3):
                    fb[j] = 0
                for j in range(b - a):
                    v = dst[j]
                    v = v + fb[j + 2]
                    v = v + fb[j + 1]
                    v = v + fb[j]
                    dst[j] = v
                continue
            # taps that land in [a, b) for some covering output
            k0 = _imax(0, a + P - owhi * S)
            k1 = _imin(K, b + P - owlo * S)
            if k1 - k0 > 4 * (owhi - owlo + 1) + 64:
                # scattered (huge kernel and stride): output by output
                for ow in range(owlo, owhi + 1):
                    for kw in range(_imax(0, a + P - ow * S), _imin(K, b + P - ow * S)):
                        dst[ow * S + kw - P - a] += gbuf[ow - owlo]
                continue
            for kw in range(k0, k1):
                off = kw - P
                # ow with a <= ow*S + off < b
                lo = _imax(owlo, _ceildiv(a - off, S))
                hi = _imin(owhi + 1, _floordiv(b - 1 - off, S) + 1)
                if lo >= hi:
                    continue
                if S == 1:
                    for j in range(hi - lo):
                        dst[lo + off - a + j] += gbuf[lo - owlo + j]
                elif S == 2:
                    for j in range(hi - lo):
                        dst[lo * 2 + off - a + 2 * j] += gbuf[lo - owlo + j]
                else:
                    for j in range(hi - lo):
                        dst[lo * S + off - a + j * S] += gbuf[lo - owlo + j]


cdef int _avg_bwd(const real_t* go, real_t* gi, Geo* g, bint include_pad,
                  int64_t override) noexcept nogil:
    cdef Py_ssize_t nitems = g.N * g.C * g.isz[0] * g.isz[1] * g.nchunk
    cdef Py_ssize_t it, per_thread, row_off, st_off, ow
    cdef char* scratch
    cdef int64_t* fac
    cdef int tid
    cdef cypool_stream_t* st
    cdef RowPos* pos
    cdef int64_t uni[3]
    # gbuf holds the covering output columns of one chunk (and after them,
    # for 3-wide windows at W stride 2, their spread: _avg_bwd_general),
    # rowbuf one chunk, then the thread's streaming state and row position
    row_off = (_lines(_gcap(g) * sizeof(real_t))
               + _lines((g.chunk + 8) * sizeof(real_t)))
    st_off = row_off + _lines(g.chunk * sizeof(real_t))
    per_thread = st_off + _lines(sizeof(cypool_stream_t)) + _lines(sizeof(RowPos))
    scratch = <char*>malloc(per_thread * g.nthreads + LINE)
    fac = _avg_factors(g, include_pad)
    if scratch == NULL or fac == NULL:
        free(scratch)
        free(fac)
        return -1
    # the run of W factors equal to the first largest one (_gdiv)
    uni[0] = 0
    uni[1] = 0
    uni[2] = 0
    for ow in range(g.osz[2]):
        if fac[g.osz[0] + g.osz[1] + ow] > uni[2]:
            uni[2] = fac[g.osz[0] + g.osz[1] + ow]
            uni[0] = ow
    uni[1] = uni[0]
    while uni[1] < g.osz[2] and fac[g.osz[0] + g.osz[1] + uni[1]] == uni[2]:
        uni[1] += 1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        st = <cypool_stream_t*>(_aligned(scratch) + tid * per_thread + st_off)
        cypool_stream_init(st)
        pos = <RowPos*>(_aligned(scratch) + tid * per_thread + st_off
                        + _lines(sizeof(cypool_stream_t)))
        pos.it = -2
        pos.kn = -1
        for it in prange(nitems, schedule='static'):
            _avg_bwd_item(go, gi, g, it, <real_t*>(_aligned(scratch) + tid * per_thread),
                          <real_t*>(_aligned(scratch) + tid * per_thread + row_off),
                          fac, fac + g.osz[0], fac + g.osz[0] + g.osz[1], override, st,
                          uni, pos)
        if g.stream:
            cypool_stream_flush(st)
            cypool_sfence()     # the streamed stores, visible before the join
    free(scratch)
    free(fac)
    return 0


# ------------------------------------------------------------ small planes
# Planar pooling whose output rows are short (a 14 x 14 plane pooled to
# 7 x 7, 13 x 13 to 6 x 6, ...).  The row kernels above vectorise along an
# output row, so such rows leave their vectors mostly empty, and their
# per-row work and scalar remainders dominate.  Instead each (n, c) input
# volume is pooled as one unit through a table built once per call: for tap
# number t and output position q of the volume (q runs over the whole
# output volume, D then H then W), the element offset of the t-th in-bounds
# tap of window q in scan order, and its flat index.  A window with fewer
# in-bounds taps than the widest one repeats its last tap: for max that
# never changes the value or the index (the repeated tap cannot be larger
# than the running maximum, and a NaN replaces itself), and the average
# adds only the first ``cnt[q]`` taps.  The kernels then run tap by tap over
# all Q positions of a volume, so that the select (or the add) vectorises
# across rows; the loads stay scalar.

# Thresholds, measured on an AMD EPYC (AVX-512) VM, 1 thread: the tiling
# kernels beat the row kernels at every row length tried up to 28 float32
# outputs (1.25x at 28, 2.3x at 18), the table path at rows of up to 8
# outputs (values and averages: 1.1-2.8x; 0.75-0.9x at 13-14) and up to 15
# with indices (2.5-5x; 0.77x at 28).
cdef Py_ssize_t _TILE_ROW = 128     # 2-d tiling kernels at 128-bit vectors: rows under this many bytes
cdef Py_ssize_t _TABLE_OW = 9       # table: output rows shorter than this (values)
cdef Py_ssize_t _TABLE_OW_IDX = 16  # (max pooling with indices)
cdef bint _TILES = True             # the tiling kernels at all
cdef Py_ssize_t _TILE_ARGMAX_ROW = 128  # with indices: rows under this many bytes
cdef enum:
    SMALL_TABLE_MAX = 8192   # taps x output positions of one volume


def _small_rows(Py_ssize_t tile_bytes=-1, Py_ssize_t table=-1, Py_ssize_t table_idx=-1,
                int tiles=-1, Py_ssize_t argmax_bytes=-1):
    """The small-plane settings: 2-d output rows under ``tile_bytes`` bytes
    take the 128-bit tiling kernels (see _tiling); rows shorter than
    ``table`` (``table_idx`` with indices) outputs take the table path;
    ``tiles`` 0 turns the tiling kernels off; 2-d rows with indices from
    ``table_idx`` outputs up to ``argmax_bytes`` bytes take the tiling argmax
    kernel where the build has it.  Arguments >= 0 set them (tests use them
    to cover each path, benchmarks to compare).  Returns the previous
    settings."""
    global _TILE_ROW, _TABLE_OW, _TABLE_OW_IDX, _TILES, _TILE_ARGMAX_ROW
    cdef tuple old = (_TILE_ROW, _TABLE_OW, _TABLE_OW_IDX, _TILES, _TILE_ARGMAX_ROW)
    if argmax_bytes >= 0:
        _TILE_ARGMAX_ROW = argmax_bytes
    if tile_bytes >= 0:
        _TILE_ROW = tile_bytes
    if table >= 0:
        _TABLE_OW = table
    if table_idx >= 0:
        _TABLE_OW_IDX = table_idx
    if tiles >= 0:
        _TILES = tiles != 0
    return old


cdef struct Tab:
    Py_ssize_t T        # taps per window: the most in-bounds taps of any window
    Py_ssize_t Q        # output positions per volume
    int32_t* off        # T x Q element offsets into the input volume
    int32_t* fid        # T x Q flat indices into the input volume
    int32_t* cnt        # Q in-bounds taps per window
    int64_t* div        # Q average divisors (average pooling)


cdef void _free_tab(Tab* tb) noexcept nogil:
    free(tb.off)
    free(tb.fid)
    free(tb.cnt)
    free(tb.div)


cdef inline Py_ssize_t _taps_in(const Geo* g, int dim, Py_ssize_t o) noexcept nogil:
    """In-bounds taps of output position ``o`` along ``dim``."""
    cdef Py_ssize_t k, p, n = 0, start = o * g.st[dim] - g.pd[dim]
    for k in range(g.ks[dim]):
        p = start + k * g.dl[dim]
        if 0 <= p < g.isz[dim]:
            n += 1
    return n


cdef bint _small_ok(const Geo* g, bint has_idx) noexcept nogil:
    """Does the table path take this planar call?  Short output rows, a
    table of at most SMALL_TABLE_MAX entries, flat indices and element
    offsets that fit in 32 bits."""
    cdef Py_ssize_t Q = g.osz[0] * g.osz[1] * g.osz[2]
    cdef Py_ssize_t limit = _TABLE_OW_IDX if has_idx else _TABLE_OW
    cdef Py_ssize_t taps = 1, span = 0, i
    if g.osz[2] >= limit:
        return False
    for i in range(3):
        taps *= _imin(g.ks[i], _ceildiv(g.isz[i], g.dl[i]))
        if g.ks[i] > SMALL_TABLE_MAX:
            return False
        span += (g.isz[i] - 1) * (g.xs[2 + i] if g.xs[2 + i] >= 0 else -g.xs[2 + i])
    if Q > SMALL_TABLE_MAX or taps > SMALL_TABLE_MAX // Q:
        return False
    if g.ks[0] * g.ks[1] * g.ks[2] > 4 * SMALL_TABLE_MAX // Q:
        return False    # building the table would scan too many taps
    return span < (<int64_t>1 << 31) and g.isz[0] * g.isz[1] * g.isz[2] < (<int64_t>1 << 31)


cdef int _small_table(const Geo* g, Tab* tb, bint include_pad,
                      int64_t override, bint averages) noexcept nogil:
    """Fill ``tb`` (see above).  Returns 0, 1 when some window has no
    in-bounds tap (dilation holes: the path does not apply) or -1 without
    memory; ``tb`` is to be freed in every case."""
    cdef Py_ssize_t Q = g.osz[0] * g.osz[1] * g.osz[2], T = 0, q, n, t
    cdef Py_ssize_t od, oh, ow, kd, kh, kw, pd, ph, pw, sd, sh, sw
    cdef int32_t o0, f0
    memset(tb, 0, sizeof(Tab))
    tb.Q = Q
    tb.cnt = <int32_t*>malloc(Q * sizeof(int32_t))
    if tb.cnt == NULL:
        return -1
    q = 0
    for od in range(g.osz[0]):
        for oh in range(g.osz[1]):
            for ow in range(g.osz[2]):
                n = _taps_in(g, 0, od) * _taps_in(g, 1, oh) * _taps_in(g, 2, ow)
                if n == 0:
                    return 1
                tb.cnt[q] = <int32_t>n
                T = _imax(T, n)
                q += 1
    tb.T = T
    tb.off = <int32_t*>malloc(T * Q * sizeof(int32_t))
    tb.fid = <int32_t*>malloc(T * Q * sizeof(int32_t))
    if tb.off == NULL or tb.fid == NULL:
        return -1
    if averages:
        tb.div = <int64_t*>malloc(Q * sizeof(int64_t))
        if tb.div == NULL:
            return -1
    q = 0
    for od in range(g.osz[0]):
        sd = od * g.st[0] - g.pd[0]
        for oh in range(g.osz[1]):
            sh = oh * g.st[1] - g.pd[1]
            for ow in range(g.osz[2]):
                sw = ow * g.st[2] - g.pd[2]
                n = 0
                for kd in range(g.ks[0]):
                    pd = sd + kd * g.dl[0]
                    if not 0 <= pd < g.isz[0]:
                        continue
                    for kh in range(g.ks[1]):
                        ph = sh + kh * g.dl[1]
                        if not 0 <= ph < g.isz[1]:
                            continue
                        for kw in range(g.ks[2]):
                            pw = sw + kw * g.dl[2]
                            if not 0 <= pw < g.isz[2]:
                                continue
                            tb.off[n * Q + q] = <int32_t>(pd * g.xs[2] + ph * g.xs[3]
                                                          + pw * g.xs[4])
                            tb.fid[n * Q + q] = <int32_t>((pd * g.isz[1] + ph) * g.isz[2]
                                                          + pw)
                            n += 1
                o0 = tb.off[(n - 1) * Q + q]
                f0 = tb.fid[(n - 1) * Q + q]
                for t in range(n, T):
                    tb.off[t * Q + q] = o0
                    tb.fid[t * Q + q] = f0
                if averages:
                    tb.div[q] = override if override != 0 else (
                        _avg_count(od, g.ks[0], g.st[0], g.pd[0], g.pa[0], g.isz[0],
                                   include_pad)
                        * _avg_count(oh, g.ks[1], g.st[1], g.pd[1], g.pa[1], g.isz[1],
                                     include_pad)
                        * _avg_count(ow, g.ks[2], g.st[2], g.pd[2], g.pa[2], g.isz[2],
                                     include_pad))
                q += 1
    return 0


cdef int _avg_table(Geo* g, Tab* tb, bint include_pad, int64_t override,
                    int nthreads) noexcept nogil:
    """The table of an average pooling call (forward or backward) and its
    team: 0, 1 (the path does not apply) or -1 (no memory)."""
    cdef int rc = _small_table(g, tb, include_pad, override, True)
    if rc == 0:
        _small_split(g, nthreads, <double>g.N * g.C * tb.Q * tb.T)
    return rc


cdef void _small_split(Geo* g, int nthreads, double work) noexcept nogil:
    """Work items: whole (n, c) volumes."""
    g.nthreads = <int>_imax(1, _imin(nthreads, g.N * g.C))
    g.parallel = g.nthreads > 1 and work >= PARALLEL_MIN_WORK


cdef inline Py_ssize_t _tile_rows(const Geo* g, Py_ssize_t K, Py_ssize_t KD,
                                  Py_ssize_t elsize) noexcept nogil:
    """Output rows per call of a tiling kernel: about 4 KiB of input, whose
    successor the caller hints before the call (``_tile_hint``).  Items of
    under 16 KiB of input run in one call and hint nothing: measured 0.92-
    0.99x with the hints on 14 x 14 and 56 x 56 planes and 27^3 volumes
    (a few sequential streams, which the hardware prefetch follows), against
    1.12-1.20x on 64^3 volumes and 84 x 84 planes."""
    if KD * g.osz[1] * K * g.xs[3] * elsize < 16384:
        return g.osz[1]
    return _imax(1, 4096 // _imax(1, KD * K * g.xs[3] * elsize))


cdef inline void _tile_hint(const char* p, const Geo* g, Py_ssize_t K, Py_ssize_t KD,
                            Py_ssize_t rows, Py_ssize_t elsize) noexcept nogil:
    """Hint the input of ``rows`` output rows of tiling windows from ``p``
    (their K * rows input rows of each of the KD depth slices, contiguous
    apart from the slices)."""
    cdef Py_ssize_t d, off, nb = rows * K * g.xs[3] * elsize
    for d in range(KD):
        for off in range(0, nb, 64):
            cypool_prefetch(p + d * g.xs[2] * elsize + off)


cdef inline void _tile_hint_next(const char* x, const Geo* g, Py_ssize_t K,
                                 Py_ssize_t KD, Py_ssize_t r0, Py_ssize_t ch,
                                 Py_ssize_t nxt, Py_ssize_t elsize) noexcept nogil:
    """Before the call for output rows [r0, r0 + ch) of the item at ``x``:
    hint the next call's input, or after the last the next item's (``nxt``
    elements on; none when the item is one call)."""
    if r0 + ch < g.osz[1]:
        _tile_hint(x + (r0 + ch) * K * g.xs[3] * elsize, g, K, KD,
                   _imin(ch, g.osz[1] - r0 - ch), elsize)
    elif nxt != 0 and ch < g.osz[1]:
        _tile_hint(x + nxt * elsize, g, K, KD, ch, elsize)


cdef inline bint _tile_max(const pool_t* x, const Geo* g, pool_t* o, Py_ssize_t K,
                           Py_ssize_t KD, int wide, Py_ssize_t nxt) noexcept nogil:
    """One (n, c, od) slice of tiling windows (small_kernels.h), in calls of
    ``_tile_rows`` output rows, each hinting the next one's input (after the
    last, the next item's, ``nxt`` elements on, unless 0); True: a NaN
    alarm.  Measured on (4, 32, 64, 64, 64) float32 2x2x2 averages, 1
    thread: see ``_tile_avg``."""
    cdef Py_ssize_t ch = _tile_rows(g, K, KD, sizeof(pool_t)), r0, n
    cdef bint bad = 0
    r0 = 0
    while r0 < g.osz[1]:
        n = _imin(ch, g.osz[1] - r0)
        _tile_hint_next(<const char*>x, g, K, KD, r0, ch, nxt, sizeof(pool_t))
        bad |= _tile_max_rows(x + r0 * K * g.xs[3], g, o + r0 * g.os[3], K, KD, wide, n)
        r0 += ch
    return bad


cdef inline bint _tile_max_rows(const pool_t* x, const Geo* g, pool_t* o, Py_ssize_t K,
                                Py_ssize_t KD, int wide, Py_ssize_t OH) noexcept nogil:
    cdef Py_ssize_t ds = g.xs[2], rs = g.xs[3], OW = g.osz[2]
    cdef Py_ssize_t os = g.os[3]
    if pool_t is float and _pair_ok(K, KD, OW, 4):
        cypool_pair_max_f32(x, rs, OH, OW, o, os)     # exact: no alarm
        return 0
    if pool_t is float:
        return cypool_tile_max_f32(wide, KD, K, x, ds, rs, OH, OW, o, os)
    elif pool_t is double:
        return cypool_tile_max_f64(wide, KD, K, x, ds, rs, OH, OW, o, os)
    elif pool_t is int8_t:
        return cypool_tile_max_i8(wide, KD, K, x, ds, rs, OH, OW, o, os)
    elif pool_t is uint8_t:
        return cypool_tile_max_u8(wide, KD, K, x, ds, rs, OH, OW, o, os)
    elif pool_t is int16_t:
        return cypool_tile_max_i16(wide, KD, K, x, ds, rs, OH, OW, o, os)
    elif pool_t is uint16_t:
        return cypool_tile_max_u16(wide, KD, K, x, ds, rs, OH, OW, o, os)
    elif pool_t is int32_t:
        return cypool_tile_max_i32(wide, KD, K, x, ds, rs, OH, OW, o, os)
    else:
        return cypool_tile_max_i64(wide, KD, K, x, ds, rs, OH, OW, o, os)


cdef inline void _tile_max_exact(const pool_t* x, const Geo* g, pool_t* o, Py_ssize_t K,
                                 Py_ssize_t KD, int wide) noexcept nogil:
    """The same with PyTorch's rule (floats; after an alarm)."""
    cdef Py_ssize_t ds = g.xs[2], rs = g.xs[3], OH = g.osz[1], OW = g.osz[2]
    cdef Py_ssize_t os = g.os[3]
    if pool_t is float:
        cypool_tile_maxx_f32(wide, KD, K, x, ds, rs, OH, OW, o, os)
    elif pool_t is double:
        cypool_tile_maxx_f64(wide, KD, K, x, ds, rs, OH, OW, o, os)


cdef inline void _tile_avg(const real_t* x, const Geo* g, real_t* o, Py_ssize_t K,
                           Py_ssize_t KD, int wide, real_t dv, Py_ssize_t nxt) noexcept nogil:
    """``_tile_max``'s calls and hints for the average."""
    cdef Py_ssize_t ch = _tile_rows(g, K, KD, sizeof(real_t)), r0 = 0, n
    while r0 < g.osz[1]:
        n = _imin(ch, g.osz[1] - r0)
        _tile_hint_next(<const char*>x, g, K, KD, r0, ch, nxt, sizeof(real_t))
        _tile_avg_rows(x + r0 * K * g.xs[3], g, o + r0 * g.os[3], K, KD, wide, dv, n)
        r0 += ch


cdef inline void _tile_avg_rows(const real_t* x, const Geo* g, real_t* o, Py_ssize_t K,
                                Py_ssize_t KD, int wide, real_t dv,
                                Py_ssize_t OH) noexcept nogil:
    cdef Py_ssize_t ds = g.xs[2], rs = g.xs[3], OW = g.osz[2]
    cdef Py_ssize_t os = g.os[3]
    if real_t is float and _pair_ok(K, KD, OW, 4):
        cypool_pair_avg_f32(x, rs, OH, OW, o, os, dv)
    elif real_t is float:
        cypool_tile_avg_f32(wide, KD, K, x, ds, rs, OH, OW, o, os, dv)
    else:
        cypool_tile_avg_f64(wide, KD, K, x, ds, rs, OH, OW, o, os, dv)


cdef Py_ssize_t _tiling(const Geo* g, Py_ssize_t elsize, int nthreads, bint is_max,
                        Py_ssize_t* KD, int* wide, bint argmax=False) noexcept nogil:
    """K when K x K windows (K = 2 or 3; K x K x K or 1 x K x K in 3-d) tile
    the planes and the tiling kernels are the faster path; else 0.

    Tiling: stride K along H and W (any along D), no padding, no dilation,
    every window inside the input, rows contiguous, and enough
    (n, c, od) slices to share among the threads (the row kernels split
    long planes by rows).  Faster (AMD EPYC, AVX-512 build, 1 thread): in
    2-d, rows under _TILE_ROW bytes at 128-bit vectors (2x2 float32 rows of
    18-28 outputs 1.25-2.3x, uint8 rows of 56 3.3x) and 3 x 3 windows at
    any width at the build's vector width (84 x 84 float32: max 2.0x,
    average 1.7x); in 3-d, average pooling and 3 x 3 x 3 max pooling at the
    build's width (2x2x2 average 1.8-4x, 3x3x3 4-5x); 2x2x2 max pooling
    keeps _max_cube_block (1.3x faster than these).  ``wide``: the kernels
    at the build's vector width."""
    cdef Py_ssize_t K = g.ks[2]
    if not _TILES or not (K == 2 or K == 3):
        return 0
    if not (g.ks[1] == K and g.st[1] == K and g.st[2] == K and g.pd[1] == 0
            and g.pd[2] == 0 and g.dl[1] == 1 and g.dl[2] == 1 and g.xs[4] == 1
            and g.osz[1] * K <= g.isz[1] and g.osz[2] * K <= g.isz[2]
            and g.pd[0] == 0):
        return 0
    if g.ks[0] == 1 and (g.osz[0] - 1) * g.st[0] < g.isz[0]:
        KD[0] = 1
        wide[0] = g.osz[2] * elsize >= _TILE_ROW
    elif (g.ks[0] == K and g.dl[0] == 1
          and (g.osz[0] - 1) * g.st[0] + K <= g.isz[0]):
        KD[0] = K
        wide[0] = 1
    else:
        return 0
    if argmax:
        # with indices: 2-d 2x2 windows, rows of _TABLE_OW_IDX outputs (the
        # table path below) up to _TILE_ARGMAX_ROW bytes, AVX2 builds (see
        # cypool_tile_argmax); float32 rows of at most 8 outputs in AVX-512
        # builds (pair_kernels.h: (32, 512, 14, 14) 2.3x the table)
        if not (K == 2 and KD[0] == 1 and (
                CYPOOL_HAVE_TILE_ARGMAX and _TABLE_OW_IDX <= g.osz[2]
                and g.osz[2] * elsize < _TILE_ARGMAX_ROW
                or _pair_ok(K, KD[0], g.osz[2], elsize))):
            return 0
        wide[0] = 0
    elif K == 2 and (KD[0] == 1 and wide[0] or KD[0] == 2 and is_max):
        return 0
    if nthreads > 1 and g.N * g.C * g.osz[0] < 4 * nthreads and (
            <double>g.osz[1] * g.osz[2] * K * K * KD[0] * g.N * g.C * g.osz[0]
            >= PARALLEL_MIN_WORK):
        return 0
    return K


cdef struct Slice:
    Py_ssize_t n, c, od


cdef inline Slice _slice_of(const Geo* g, Py_ssize_t it) noexcept nogil:
    """Work item ``it`` of the loops over (n, c, od) slices."""
    cdef Slice s
    cdef Py_ssize_t nc = it // g.osz[0]
    s.od = it - nc * g.osz[0]
    s.n = nc // g.C
    s.c = nc - s.n * g.C
    return s


cdef int _max_tile(const pool_t* x, pool_t* out, const Geo* g, Py_ssize_t K,
                   Py_ssize_t KD, int wide) noexcept nogil:
    cdef Py_ssize_t it, n, c, od
    cdef Slice sl
    cdef const pool_t* xv
    cdef pool_t* o
    for it in prange(g.N * g.C * g.osz[0], nogil=True, schedule='static',
                     num_threads=g.nthreads, use_threads_if=g.parallel):
        sl = _slice_of(g, it)
        n = sl.n
        c = sl.c
        od = sl.od
        xv = x + n * g.xs[0] + c * g.xs[1] + od * g.st[0] * g.xs[2]
        o = out + n * g.os[0] + c * g.os[1] + od * g.os[2]
        if _tile_max(xv, g, o, K, KD, wide, _next_off(g, n, c, od, 0, g.osz[1], 0, g.osz[2])):
            _tile_max_exact(xv, g, o, K, KD, wide)
    return 0


cdef bint _PAIR = True     # pair_kernels.h where the build has it


def _pair_rows(int on=-1):
    """Whether float32 max (with or without indices) and average pooling
    over 2x2 tiling windows with output rows of at most 8, and max pooling
    over 3x3 windows at stride 2 with rows of at most 7, take the AVX-512
    kernels of pair_kernels.h in builds that have them; ``on`` 0 or 1 sets
    it (tests compare with the other paths).  Returns the previous
    setting."""
    global _PAIR
    cdef bint old = _PAIR
    if on >= 0:
        _PAIR = on != 0
    return old


cdef inline bint _pair_ok(Py_ssize_t K, Py_ssize_t KD, Py_ssize_t OW,
                          Py_ssize_t elsize) noexcept nogil:
    """Do the pair kernels take these 2x2 tiling rows (float32, output rows
    of at most 8 values; ``_tiling`` checked the rest)?"""
    return CYPOOL_HAVE_PAIR and _PAIR and elsize == 4 and K == 2 and KD == 1 and OW <= 8


cdef bint _pair3_ok(const Geo* g, Py_ssize_t elsize) noexcept nogil:
    """Does ``cypool_pair3_max`` take this planar max pooling (values):
    float32, 3x3 windows (1x3x3 in 3-d) at H and W stride 2, no padding or
    dilation, every window inside the input, output rows of at most 7."""
    return (CYPOOL_HAVE_PAIR and _PAIR and elsize == 4 and g.ks[0] == 1
            and g.ks[1] == 3 and g.ks[2] == 3 and g.st[1] == 2 and g.st[2] == 2
            and g.pd[0] == 0 and g.pd[1] == 0 and g.pd[2] == 0
            and g.dl[1] == 1 and g.dl[2] == 1 and g.xs[4] == 1 and g.osz[2] <= 7
            and (g.osz[2] - 1) * 2 + 3 <= g.isz[2] and (g.osz[1] - 1) * 2 + 3 <= g.isz[1]
            and (g.osz[0] - 1) * g.st[0] < g.isz[0])


cdef int _pair3_run(const float* x, float* out, const Geo* g) noexcept nogil:
    """``cypool_pair3_max_f32`` over every (n, c, od) slice."""
    cdef Py_ssize_t it
    cdef Slice s
    for it in prange(g.N * g.C * g.osz[0], nogil=True, schedule='static',
                     num_threads=g.nthreads, use_threads_if=g.parallel):
        s = _slice_of(g, it)
        cypool_pair3_max_f32(x + s.n * g.xs[0] + s.c * g.xs[1] + s.od * g.st[0] * g.xs[2],
                             g.xs[3], g.osz[1], g.osz[2],
                             out + s.n * g.os[0] + s.c * g.os[1] + s.od * g.os[2], g.os[3])
    return 0


cdef int _argmax_tile(const real_t* x, real_t* out, int64_t* idx,
                      const Geo* g) noexcept nogil:
    """Max with indices over 2-d 2x2 tiling windows (cypool_tile_argmax):
    one (n, c, od) slice per item, a per-thread row of tags."""
    cdef Py_ssize_t it, n, c, od, per = _lines(g.osz[2] * sizeof(int64_t))
    cdef Slice sl
    cdef char* scratch = <char*>malloc(per * g.nthreads + LINE)
    cdef char* mine
    cdef int tid
    cdef int64_t b0
    cdef bint pair = _pair_ok(2, 1, g.osz[2], sizeof(real_t))
    if scratch == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        mine = _aligned(scratch) + tid * per
        for it in prange(g.N * g.C * g.osz[0], schedule='static'):
            sl = _slice_of(g, it)
            n = sl.n
            c = sl.c
            od = sl.od
            b0 = od * g.st[0] * g.isz[1] * g.isz[2]
            if real_t is float and pair:
                cypool_pair_argmax_f32(x + n * g.xs[0] + c * g.xs[1] + od * g.st[0] * g.xs[2],
                                       g.xs[3], g.osz[1], g.osz[2],
                                       out + n * g.os[0] + c * g.os[1] + od * g.os[2], g.os[3],
                                       idx + n * g.js[0] + c * g.js[1] + od * g.js[2], g.js[3],
                                       b0, g.isz[2])
            elif real_t is float:
                cypool_tile_argmax_f32(x + n * g.xs[0] + c * g.xs[1] + od * g.st[0] * g.xs[2],
                                       g.xs[2], g.xs[3], g.osz[1], g.osz[2],
                                       out + n * g.os[0] + c * g.os[1] + od * g.os[2], g.os[3],
                                       idx + n * g.js[0] + c * g.js[1] + od * g.js[2], g.js[3],
                                       b0, g.isz[2], <int32_t*>mine)
            else:
                cypool_tile_argmax_f64(x + n * g.xs[0] + c * g.xs[1] + od * g.st[0] * g.xs[2],
                                       g.xs[2], g.xs[3], g.osz[1], g.osz[2],
                                       out + n * g.os[0] + c * g.os[1] + od * g.os[2], g.os[3],
                                       idx + n * g.js[0] + c * g.js[1] + od * g.js[2], g.js[3],
                                       b0, g.isz[2], <int64_t*>mine)
    free(scratch)
    return 0


cdef int _avg_tile(const real_t* x, real_t* out, const Geo* g, Py_ssize_t K,
                   Py_ssize_t KD, int wide, int64_t override) noexcept nogil:
    cdef Py_ssize_t it, n, c, od
    cdef Slice sl
    # the divisor as the other paths convert it (division by a power of two
    # equals their multiply by its reciprocal)
    cdef real_t dv = <real_t>(override if override != 0 else K * K * KD)
    for it in prange(g.N * g.C * g.osz[0], nogil=True, schedule='static',
                     num_threads=g.nthreads, use_threads_if=g.parallel):
        sl = _slice_of(g, it)
        n = sl.n
        c = sl.c
        od = sl.od
        _tile_avg(x + n * g.xs[0] + c * g.xs[1] + od * g.st[0] * g.xs[2], g,
                  out + n * g.os[0] + c * g.os[1] + od * g.os[2], K, KD, wide, dv,
                  _next_off(g, n, c, od, 0, g.osz[1], 0, g.osz[2]))
    return 0


cdef inline void _max_small_vol(const pool_t* xp, const Tab* tb, pool_t* m,
                                int32_t* ib) noexcept nogil:
    """Maxima (and, with ``ib``, their flat indices) of the Q windows of the
    volume at ``xp``, tap by tap with PyTorch's update rule
    (small_kernels.h)."""
    if ib == NULL:
        if pool_t is float:
            cypool_small_max_f32(xp, tb.off, tb.T, tb.Q, m)
        elif pool_t is double:
            cypool_small_max_f64(xp, tb.off, tb.T, tb.Q, m)
        elif pool_t is int8_t:
            cypool_small_max_i8(xp, tb.off, tb.T, tb.Q, m)
        elif pool_t is uint8_t:
            cypool_small_max_u8(xp, tb.off, tb.T, tb.Q, m)
        elif pool_t is int16_t:
            cypool_small_max_i16(xp, tb.off, tb.T, tb.Q, m)
        elif pool_t is uint16_t:
            cypool_small_max_u16(xp, tb.off, tb.T, tb.Q, m)
        elif pool_t is int32_t:
            cypool_small_max_i32(xp, tb.off, tb.T, tb.Q, m)
        else:
            cypool_small_max_i64(xp, tb.off, tb.T, tb.Q, m)
    else:
        if pool_t is float:
            cypool_small_argmax_f32(xp, tb.off, tb.fid, tb.T, tb.Q, m, ib)
        elif pool_t is double:
            cypool_small_argmax_f64(xp, tb.off, tb.fid, tb.T, tb.Q, m, ib)
        elif pool_t is int8_t:
            cypool_small_argmax_i8(xp, tb.off, tb.fid, tb.T, tb.Q, m, ib)
        elif pool_t is uint8_t:
            cypool_small_argmax_u8(xp, tb.off, tb.fid, tb.T, tb.Q, m, ib)
        elif pool_t is int16_t:
            cypool_small_argmax_i16(xp, tb.off, tb.fid, tb.T, tb.Q, m, ib)
        elif pool_t is uint16_t:
            cypool_small_argmax_u16(xp, tb.off, tb.fid, tb.T, tb.Q, m, ib)
        elif pool_t is int32_t:
            cypool_small_argmax_i32(xp, tb.off, tb.fid, tb.T, tb.Q, m, ib)
        else:
            cypool_small_argmax_i64(xp, tb.off, tb.fid, tb.T, tb.Q, m, ib)


cdef inline void _small_store(const Geo* g, const void* src, Py_ssize_t elsize,
                              char* dst, const Py_ssize_t* ds) noexcept nogil:
    """A volume's Q results (contiguous) into its place in an output-shaped
    array with element strides ``ds`` (rows contiguous)."""
    cdef Py_ssize_t od, oh, row = g.osz[2] * elsize
    cdef const char* s = <const char*>src
    for od in range(g.osz[0]):
        for oh in range(g.osz[1]):
            memcpy(dst + (od * ds[2] + oh * ds[3]) * elsize, s, row)
            s += row


cdef inline bint _dense(const Py_ssize_t* sz, const Py_ssize_t* ds) noexcept nogil:
    """Is each spatial volume of sizes ``sz`` (D, H, W) in an array with
    element strides ``ds`` contiguous?"""
    return ((sz[2] == 1 or ds[4] == 1)
            and (sz[1] == 1 or ds[3] == sz[2])
            and (sz[0] == 1 or ds[2] == sz[1] * sz[2]))


cdef inline bint _dense_vol(const Geo* g, const Py_ssize_t* ds) noexcept nogil:
    """Is each output volume of an array with element strides ``ds``
    contiguous (Q elements from its first)?"""
    return _dense(g.osz, ds)


cdef int _max_small(const pool_t* x, pool_t* out, int64_t* idx, const Geo* g,
                    const Tab* tb) noexcept nogil:
    cdef Py_ssize_t it, n, c, q, Q = tb.Q
    cdef Py_ssize_t per = _lines(Q * sizeof(pool_t)) + _lines(Q * sizeof(int32_t))
    cdef Py_ssize_t per64 = _lines(Q * sizeof(int64_t))
    cdef char* scratch = <char*>malloc((per + per64) * g.nthreads + LINE)
    cdef char* mine
    cdef bint dense = _dense_vol(g, g.os)
    cdef bint dense_i = idx != NULL and _dense_vol(g, g.js)
    cdef pool_t* m
    cdef pool_t* o
    cdef int32_t* ib
    cdef int64_t* i64
    cdef int tid
    if scratch == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        mine = _aligned(scratch) + tid * (per + per64)
        for it in prange(g.N * g.C, schedule='static'):
            n = it // g.C
            c = it - n * g.C
            o = out + n * g.os[0] + c * g.os[1]
            # results straight into a contiguous output volume
            m = o if dense else <pool_t*>mine
            ib = NULL
            if idx != NULL:
                ib = <int32_t*>(mine + _lines(Q * sizeof(pool_t)))
            _max_small_vol(x + n * g.xs[0] + c * g.xs[1], tb, m, ib)
            if not dense:
                _small_store(g, m, sizeof(pool_t), <char*>o, g.os)
            if idx != NULL:
                i64 = idx + n * g.js[0] + c * g.js[1]
                if dense_i:
                    for q in range(Q):
                        i64[q] = ib[q]
                else:
                    for q in range(Q):
                        (<int64_t*>(mine + per))[q] = ib[q]
                    _small_store(g, mine + per, sizeof(int64_t), <char*>i64, g.js)
    free(scratch)
    return 0


cdef inline void _avg_small_vol(const real_t* xp, const Tab* tb, const real_t* dv,
                                real_t* s) noexcept nogil:
    """Averages of the Q windows of the volume at ``xp``: each window's
    in-bounds taps summed from 0 in scan order (the other paths' order),
    then divided by its divisor (small_kernels.h)."""
    if real_t is float:
        cypool_small_avg_f32(xp, tb.off, tb.cnt, dv, tb.T, tb.Q, s)
    else:
        cypool_small_avg_f64(xp, tb.off, tb.cnt, dv, tb.T, tb.Q, s)


cdef int _avg_small(const real_t* x, real_t* out, const Geo* g,
                    const Tab* tb) noexcept nogil:
    cdef Py_ssize_t it, n, c, q, Q = tb.Q
    cdef Py_ssize_t per = _lines(Q * sizeof(real_t))
    cdef char* scratch = <char*>malloc(per * g.nthreads + LINE)
    cdef real_t* dv = <real_t*>malloc(Q * sizeof(real_t))
    cdef char* mine
    cdef bint dense = _dense_vol(g, g.os)
    cdef int tid
    if scratch == NULL or dv == NULL:
        free(scratch)
        free(dv)
        return -1
    # the divisor as the other paths convert it (one rounding of the exact
    # int64 product; division by a power of two equals their multiply)
    for q in range(Q):
        dv[q] = <real_t>tb.div[q]
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        tid = cypool_omp_get_thread_num()
        mine = _aligned(scratch) + tid * per
        for it in prange(g.N * g.C, schedule='static'):
            n = it // g.C
            c = it - n * g.C
            if dense:
                _avg_small_vol(x + n * g.xs[0] + c * g.xs[1], tb, dv,
                               out + n * g.os[0] + c * g.os[1])
            else:
                _avg_small_vol(x + n * g.xs[0] + c * g.xs[1], tb, dv, <real_t*>mine)
                _small_store(g, mine, sizeof(real_t),
                             <char*>(out + n * g.os[0] + c * g.os[1]), g.os)
    free(scratch)
    free(dv)
    return 0


cdef int _avg_small_bwd(const real_t* go, real_t* gi, const Geo* g,
                        const Tab* tb) noexcept nogil:
    """Average pooling backward through the small-plane table: contiguous
    grad_output and grad_input volumes (see cypool_small_avg_bwd)."""
    cdef Py_ssize_t it, n, c, q, Q = tb.Q
    cdef Py_ssize_t P = g.isz[0] * g.isz[1] * g.isz[2]
    cdef real_t* dv = <real_t*>malloc(Q * sizeof(real_t))
    if dv == NULL:
        return -1
    for q in range(Q):
        dv[q] = <real_t>tb.div[q]
    for it in prange(g.N * g.C, nogil=True, schedule='static', num_threads=g.nthreads,
                     use_threads_if=g.parallel):
        n = it // g.C
        c = it - n * g.C
        if real_t is float:
            cypool_small_avg_bwd_f32(go + n * g.os[0] + c * g.os[1], tb.off, tb.cnt, dv, Q,
                                     gi + n * g.xs[0] + c * g.xs[1], P)
        else:
            cypool_small_avg_bwd_f64(go + n * g.os[0] + c * g.os[1], tb.off, tb.cnt, dv, Q,
                                     gi + n * g.xs[0] + c * g.xs[1], P)
    free(dv)
    return 0


cdef int _max_tile_typed(int typenum, const void* xp, void* op, const Geo* g,
                         Py_ssize_t K, Py_ssize_t KD, int wide) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        return _max_tile(<const float*>xp, <float*>op, g, K, KD, wide)
    elif typenum == cnp.NPY_FLOAT64:
        return _max_tile(<const double*>xp, <double*>op, g, K, KD, wide)
    elif typenum == cnp.NPY_INT8:
        return _max_tile(<const int8_t*>xp, <int8_t*>op, g, K, KD, wide)
    elif typenum == cnp.NPY_UINT8:
        return _max_tile(<const uint8_t*>xp, <uint8_t*>op, g, K, KD, wide)
    elif typenum == cnp.NPY_INT16:
        return _max_tile(<const int16_t*>xp, <int16_t*>op, g, K, KD, wide)
    elif typenum == cnp.NPY_UINT16:
        return _max_tile(<const uint16_t*>xp, <uint16_t*>op, g, K, KD, wide)
    elif typenum == cnp.NPY_INT32:
        return _max_tile(<const int32_t*>xp, <int32_t*>op, g, K, KD, wide)
    elif typenum == cnp.NPY_INT64:
        return _max_tile(<const int64_t*>xp, <int64_t*>op, g, K, KD, wide)
    return -3


cdef int _max_small_typed(int typenum, const void* xp, void* op, int64_t* ip,
                          const Geo* g, const Tab* tb) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        return _max_small(<const float*>xp, <float*>op, ip, g, tb)
    elif typenum == cnp.NPY_FLOAT64:
        return _max_small(<const double*>xp, <double*>op, ip, g, tb)
    elif typenum == cnp.NPY_INT8:
        return _max_small(<const int8_t*>xp, <int8_t*>op, ip, g, tb)
    elif typenum == cnp.NPY_UINT8:
        return _max_small(<const uint8_t*>xp, <uint8_t*>op, ip, g, tb)
    elif typenum == cnp.NPY_INT16:
        return _max_small(<const int16_t*>xp, <int16_t*>op, ip, g, tb)
    elif typenum == cnp.NPY_UINT16:
        return _max_small(<const uint16_t*>xp, <uint16_t*>op, ip, g, tb)
    elif typenum == cnp.NPY_INT32:
        return _max_small(<const int32_t*>xp, <int32_t*>op, ip, g, tb)
    elif typenum == cnp.NPY_INT64:
        return _max_small(<const int64_t*>xp, <int64_t*>op, ip, g, tb)
    return -3


# ------------------------------------------------ 8-bit RGB images
# Channels-last 8-bit input with three channels (H, W, 3 images), 2 x 2
# windows at stride 2, values only: pix3_kernels.h (byte shuffles along the
# row; the generic channels-last kernels are three lanes wide here).  Same
# process, AMD EPYC, AVX-512 build, (4096, 4096, 3) uint8, 1 thread: max
# 1.8-1.9x (3.0 -> 1.6 ms), mean (AVX2 and AVX-512 builds) 1.9x (3.7 ->
# 2.0 ms); 2 threads 1.5-2.4x; (1024, 1024, 3), from the caches, 1.2-1.7x.

cdef bint _PIX3 = True


def _pix3(int on=-1):
    """Whether channels-last 8-bit RGB 2x2/2 max and average pooling run the
    byte shuffle kernels (where the build has them: the maximum from SSSE3
    and SSE4.1, the average from AVX2); ``on`` 0 or 1 sets it (tests and
    A/B).  Returns the previous setting, False where the build has none."""
    global _PIX3
    cdef bint old = _PIX3 and CYPOOL_HAVE_PIX3
    if on >= 0:
        _PIX3 = on != 0
    return old


cdef bint _pix3_ok(const Geo* g, int typenum) noexcept:
    return (CYPOOL_HAVE_PIX3 and _PIX3
            and (typenum == cnp.NPY_UINT8 or typenum == cnp.NPY_INT8)
            and g.C == 3 and g.xs[1] == 1 and g.xs[4] == 3 and g.os[1] == 1
            and g.os[4] == 3 and g.ks[0] == 1 and g.ks[1] == 2 and g.ks[2] == 2
            and g.st[1] == 2 and g.st[2] == 2 and g.dl[1] == 1 and g.dl[2] == 1
            and g.pd[0] == 0 and g.pd[1] == 0 and g.pd[2] == 0
            and (g.osz[0] - 1) * g.st[0] < g.isz[0]
            and 2 * g.osz[1] <= g.isz[1] and 2 * g.osz[2] <= g.isz[2])


cdef int _pix3_run(const char* x, char* out, const Geo* g, bint is_signed,
                   bint is_max, bint nearest) noexcept nogil:
    """Output rows (n, od, oh), one per item: the maximum, or the average
    (windows of 4 taps, no padding: the divisor is 4)."""
    cdef Py_ssize_t it, n, od, oh, rest
    cdef const char* r
    cdef const char* nx
    cdef char* o
    for it in prange(g.N * g.osz[0] * g.osz[1], schedule='static',
                     num_threads=g.nthreads, use_threads_if=g.parallel):
        oh = it % g.osz[1]
        rest = it // g.osz[1]
        od = rest % g.osz[0]
        n = rest // g.osz[0]
        r = x + n * g.xs[0] + od * g.st[0] * g.xs[2] + 2 * oh * g.xs[3]
        o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3]
        nx = (r + 2 * g.xs[3]) if oh + 1 < g.osz[1] else NULL
        if is_signed and is_max:
            cypool_pix3_max22_i8(<const int8_t*>r, <const int8_t*>(r + g.xs[3]),
                                 <int8_t*>o, g.osz[2], <const int8_t*>nx)
        elif is_max:
            cypool_pix3_max22_u8(<const uint8_t*>r, <const uint8_t*>(r + g.xs[3]),
                                 <uint8_t*>o, g.osz[2], <const uint8_t*>nx)
        elif is_signed:
            cypool_pix3_avg22_i8(<const int8_t*>r, <const int8_t*>(r + g.xs[3]),
                                 <int8_t*>o, g.osz[2], <const int8_t*>nx, nearest)
        else:
            cypool_pix3_avg22_u8(<const uint8_t*>r, <const uint8_t*>(r + g.xs[3]),
                                 <uint8_t*>o, g.osz[2], <const uint8_t*>nx, nearest)
    return 0


# ------------------------------------------------------- Python interface

cdef inline int _axis5(cnp.ndarray a, int i) noexcept:
    """The axis of ``a`` that plays axis ``i`` of the 5-d ``(N, C, D, H, W)``
    view, or -1 for a leading spatial axis that a 3-d or 4-d array lacks."""
    cdef int j = i
    if i >= 2:
        j = i - (5 - cnp.PyArray_NDIM(a))
        if j < 2:
            return -1
    return j


cdef inline Py_ssize_t _dim5(cnp.ndarray a, int i) noexcept:
    cdef int j = _axis5(a, i)
    return 1 if j < 0 else cnp.PyArray_DIMS(a)[j]


cdef inline Py_ssize_t _stride5(cnp.ndarray a, int i) noexcept:
    cdef int j = _axis5(a, i)
    return 0 if j < 0 else cnp.PyArray_STRIDES(a)[j]


cdef int _check5(cnp.ndarray a, int typenum, str name, Py_ssize_t* strides) except -1:
    """Rank, dtype and element strides of one operand, seen as 5-d
    ``(N, C, D, H, W)``: a 3-d ``(N, C, W)`` or 4-d ``(N, C, H, W)`` array
    reads as if it had singleton D (and H) axes."""
    cdef int i
    cdef Py_ssize_t item
    if not 3 <= cnp.PyArray_NDIM(a) <= 5:
        raise ValueError(f"{name} must be 3-d, 4-d or 5-d")
    if typenum >= 0 and cnp.PyArray_TYPE(a) != typenum:
        raise TypeError(f"{name} has dtype {a.dtype}, expected {cnp.PyArray_DescrFromType(typenum)}")
    item = cnp.PyArray_ITEMSIZE(a)
    for i in range(5):
        if _stride5(a, i) % item != 0:
            raise ValueError(f"{name} strides must be multiples of its item size")
        strides[i] = _stride5(a, i) // item
    return 0


cdef bint _channels_last(const Geo* g, const Py_ssize_t* os) noexcept:
    """Is the output laid out channels-last (channel axis contiguous, W not)?
    Then the channels-last kernels run."""
    return g.C > 1 and os[1] == 1 and os[4] != 1


cdef bint _uniform_planes(const Geo* g) noexcept:
    """Input-gradient positions at a uniform positive stride (``e`` apart):
    the flat in-plane index times ``xs[4]`` addresses them."""
    return g.xs[4] >= 1 and (
        g.isz[1] == 1 or g.xs[3] == g.isz[2] * g.xs[4]) and (
        g.isz[0] == 1 or g.xs[2] == g.isz[1] * g.isz[2] * g.xs[4])


cdef int _check_writable(cnp.ndarray a, str name) except -1:
    if not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name} is read-only")
    return 0


cdef bint _same_shape(cnp.ndarray a, cnp.ndarray b):
    cdef int i
    for i in range(5):
        if _dim5(a, i) != _dim5(b, i):
            return False
    return True


cdef int _fill_geo(Geo* g, cnp.ndarray inp, cnp.ndarray outp, tuple kernel,
                   tuple stride, tuple dilation, tuple pad,
                   tuple pad_after) except -1:
    """Sizes from the two arrays, window from the tuples (3 entries each)."""
    cdef int i
    cdef Py_ssize_t di[5]
    cdef Py_ssize_t do[5]
    if not (3 <= cnp.PyArray_NDIM(inp) <= 5 and 3 <= cnp.PyArray_NDIM(outp) <= 5):
        raise ValueError("arrays must be 3-d, 4-d or 5-d")
    for i in range(5):
        di[i] = _dim5(inp, i)
        do[i] = _dim5(outp, i)
    if (len(kernel) != 3 or len(stride) != 3 or len(dilation) != 3
            or len(pad) != 3 or len(pad_after) != 3):
        raise ValueError("kernel, stride, dilation and pad must have 3 entries")
    g.N = di[0]
    g.C = di[1]
    if do[0] != g.N or do[1] != g.C:
        raise ValueError("batch/channel sizes of input and output differ")
    for i in range(3):
        g.isz[i] = di[2 + i]
        g.osz[i] = do[2 + i]
        g.ks[i] = kernel[i]
        g.st[i] = stride[i]
        g.dl[i] = dilation[i]
        g.pd[i] = pad[i]
        g.pa[i] = pad_after[i]
        if (g.ks[i] < 1 or g.st[i] < 1 or g.dl[i] < 1 or g.pd[i] < 0
                or g.pa[i] < 0):
            raise ValueError("invalid window geometry")
        if g.isz[i] < 1 or g.osz[i] < 1:
            raise ValueError("spatial sizes must be positive")
    g.chunk = 1
    g.nchunk = 1
    g.stream = False
    g.sep3 = False
    # taps that can be in bounds: at most ceil(I/Dl) per window and dimension;
    # along W, those in bounds for some output (all of them unless the kernel
    # is larger than the input)
    g.rmax = (_imin(g.ks[0], _ceildiv(g.isz[0], g.dl[0]))
              * _imin(g.ks[1], _ceildiv(g.isz[1], g.dl[1])))
    g.kw0 = _imax(0, _ceildiv(g.pd[2] - (g.osz[2] - 1) * g.st[2], g.dl[2]))
    g.kwn = _imax(0, _imin(g.ks[2], _ceildiv(g.isz[2] + g.pd[2], g.dl[2])) - g.kw0)
    g.sparse = g.kwn > 4 * (g.osz[2] + _ceildiv(g.isz[2], g.dl[2])) + 64
    # (the square paths read depth slice od * st[0] unchecked: the last one
    # must lie in the input, which valid geometry ensures and a direct call
    # with a larger output need not)
    g.square = (g.ks[0] == 1 and g.pd[0] == 0 and (g.osz[0] - 1) * g.st[0] < g.isz[0]
                and g.ks[1] == g.ks[2]
                and (g.ks[2] == 2 or g.ks[2] == 3) and g.dl[1] == 1
                and g.dl[2] == 1 and g.st[2] <= 2 and not g.sparse
                and g.kw0 == 0 and g.kwn == g.ks[2])  # the plan covers all taps
    return 0


cdef double _taps_per_window(const Geo* g) noexcept:
    """At most this many taps of a window are in bounds (work estimates)."""
    return <double>g.rmax * _imin(g.ks[2], _ceildiv(g.isz[2], g.dl[2]))


cdef Py_ssize_t _CHUNK_BAND = 8


def _chunk_band(Py_ssize_t n=-1):
    """Rows per band where rows are cut into chunks (``_split``); ``n >= 1``
    sets it.  Returns the previous value."""
    global _CHUNK_BAND
    cdef Py_ssize_t old = _CHUNK_BAND
    if n >= 1:
        _CHUNK_BAND = n
    return old


cdef void _split(Geo* g, Py_ssize_t outer, Py_ssize_t rows, Py_ssize_t length,
                 int nthreads, double work) noexcept:
    """Work items: ``outer`` independent groups of ``rows`` rows of ``length``
    positions each.  Whole groups are the items while there are enough of
    them (at least 4 per thread); otherwise groups are cut into bands of rows,
    and rows into chunks, so that N=1 inputs still feed every thread.  Small
    calls (``work`` below PARALLEL_MIN_WORK) run on the calling thread."""
    cdef Py_ssize_t want = 4 * nthreads if nthreads > 1 else 1
    cdef Py_ssize_t nb, nc, items
    g.band = rows if rows > 0 else 1
    g.chunk = length if length > 0 else 1
    if outer < want and rows > 1:
        nb = _imin(rows, (want + outer - 1) // _imax(outer, 1))
        g.band = (rows + nb - 1) // nb
    g.nband = (rows + g.band - 1) // g.band if rows > 0 else 1
    if outer * g.nband < want and length > 64:
        nc = (want + outer * g.nband - 1) // _imax(outer * g.nband, 1)
        g.chunk = _imax(64, (length + nc - 1) // nc)
    g.chunk = _imax(_imin(g.chunk, MAX_CHUNK), 1)
    g.nchunk = (length + g.chunk - 1) // g.chunk if length > 0 else 1
    if g.nchunk > 1 and g.band > _CHUNK_BAND:
        # rows cut into chunks: bands of a few rows, so that a band's next
        # chunk finds its rows' lines still cached and the hardware prefetch
        # running on from the last chunk (a band of a whole plane read each
        # chunk down all the rows).  8192 x 8192 float32, 1 thread: 2 x 2
        # max and mean 1.12x, with indices 1.07x; bands of 4 rows 1.07x,
        # of 32 1.08x; 2 threads 1.03-1.08x
        g.band = _CHUNK_BAND
        g.nband = (rows + g.band - 1) // g.band
    items = outer * g.nband * g.nchunk
    g.nthreads = <int>_imax(1, _imin(nthreads, items))
    g.parallel = g.nthreads > 1 and work >= PARALLEL_MIN_WORK


cdef int _raise_rc(int rc, str what, object dtype) except -1:
    if rc == -1:
        raise MemoryError()
    if rc == -3:
        raise TypeError(f"{what} does not support dtype {dtype}")
    return 0


def max_pool_forward(cnp.ndarray x not None, cnp.ndarray out not None,
                     cnp.ndarray idx, tuple kernel, tuple stride,
                     tuple dilation, tuple pad, int nthreads):
    """Fill ``out`` (and ``idx`` unless None) with the max pooling of ``x``.

    All arrays are 5-d ``(N, C, D, H, W)``; ``out`` and ``idx`` must be
    contiguous along W.
    """
    cdef Geo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int64_t* ip = NULL
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    _fill_geo(&g, x, out, kernel, stride, dilation, pad, pad)
    _check5(x, -1, "x", g.xs)
    _check5(out, typenum, "out", g.os)
    _check_writable(out, "out")
    cdef bint cl = _channels_last(&g, g.os)
    if not cl and g.os[4] != 1 and g.osz[2] > 1 and g.N * g.C > 0:
        raise ValueError("out must be contiguous along the last axis or the channel axis")
    if idx is not None:
        _check5(idx, cnp.NPY_INT64, "idx", g.js)
        _check_writable(idx, "idx")
        if not _same_shape(idx, out):
            raise ValueError("idx must have the output's shape")
        if cl and g.js[1] != 1:
            raise ValueError("idx must be contiguous along the channel axis, as out is")
        if not cl and g.js[4] != 1 and g.osz[2] > 1 and g.N * g.C > 0:
            raise ValueError("idx must be contiguous along the last axis")
        ip = <int64_t*>cnp.PyArray_DATA(idx)
    if g.N * g.C == 0:
        return
    if cl and ip == NULL and _pix3_ok(&g, typenum):
        _split(&g, g.N * g.osz[0] * g.osz[1], 1, 1, nthreads,
               <double>g.N * g.C * g.osz[0] * g.osz[1] * g.osz[2] * 4)
        with nogil:
            _pix3_run(<const char*>xp, <char*>op, &g, typenum == cnp.NPY_INT8, True, False)
        return
    if cl:
        _split(&g, g.N * g.osz[0], g.osz[1], g.osz[2], nthreads,
               <double>g.N * g.C * g.osz[0] * g.osz[1] * g.osz[2] * _taps_per_window(&g))
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                rc = _max_fwd_cl(<const float*>xp, <float*>op, ip, &g)
            elif typenum == cnp.NPY_FLOAT64:
                rc = _max_fwd_cl(<const double*>xp, <double*>op, ip, &g)
            elif typenum == cnp.NPY_INT8:
                rc = _max_fwd_cl(<const int8_t*>xp, <int8_t*>op, ip, &g)
            elif typenum == cnp.NPY_UINT8:
                rc = _max_fwd_cl(<const uint8_t*>xp, <uint8_t*>op, ip, &g)
            elif typenum == cnp.NPY_INT16:
                rc = _max_fwd_cl(<const int16_t*>xp, <int16_t*>op, ip, &g)
            elif typenum == cnp.NPY_UINT16:
                rc = _max_fwd_cl(<const uint16_t*>xp, <uint16_t*>op, ip, &g)
            elif typenum == cnp.NPY_INT32:
                rc = _max_fwd_cl(<const int32_t*>xp, <int32_t*>op, ip, &g)
            elif typenum == cnp.NPY_INT64:
                rc = _max_fwd_cl(<const int64_t*>xp, <int64_t*>op, ip, &g)
            else:
                rc = -3
        _raise_rc(rc, "max pooling", x.dtype)
        return
    cdef double work = <double>g.N * g.C * g.osz[0] * g.osz[1] * g.osz[2] * _taps_per_window(&g)
    cdef Tab tb
    cdef Py_ssize_t KD = 1
    cdef int wide = 0
    cdef Py_ssize_t K = 0
    if ip == NULL:
        K = _tiling(&g, cnp.PyArray_ITEMSIZE(x), nthreads, True, &KD, &wide)
    elif typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64:
        K = _tiling(&g, cnp.PyArray_ITEMSIZE(x), nthreads, True, &KD, &wide, True)
        if K != 0:
            _split(&g, g.N * g.C * g.osz[0], 1, 1, nthreads, work)
            with nogil:
                if typenum == cnp.NPY_FLOAT32:
                    rc = _argmax_tile(<const float*>xp, <float*>op, ip, &g)
                else:
                    rc = _argmax_tile(<const double*>xp, <double*>op, ip, &g)
            _raise_rc(rc, "max pooling", x.dtype)
            return
    if K != 0:
        _split(&g, g.N * g.C * g.osz[0], 1, 1, nthreads, work)
        with nogil:
            rc = _max_tile_typed(typenum, xp, op, &g, K, KD, wide)
        _raise_rc(rc, "max pooling", x.dtype)
        return
    if ip == NULL and typenum == cnp.NPY_FLOAT32 and _pair3_ok(&g, 4):
        # 3x3 / 2 windows, rows of at most 7 outputs (pair_kernels.h):
        # (32, 256, 13, 13) 2.9x the table
        _split(&g, g.N * g.C * g.osz[0], 1, 1, nthreads, work)
        with nogil:
            _pair3_run(<const float*>xp, <float*>op, &g)
        return
    cdef bint sep = ip == NULL and _sep3_ok(&g, cnp.PyArray_ITEMSIZE(x))
    if not sep and _small_ok(&g, ip != NULL):
        rc = _small_table(&g, &tb, False, 0, False)
        if rc == 0:
            _small_split(&g, nthreads, work)
            with nogil:
                rc = _max_small_typed(typenum, xp, op, ip, &g, &tb)
        _free_tab(&tb)
        if rc != 1:
            _raise_rc(rc, "max pooling", x.dtype)
            return
        rc = 0
    _split(&g, g.N * g.C * g.osz[0], g.osz[1], g.osz[2], nthreads, work)
    g.sep3 = sep
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _max_fwd(<const float*>xp, <float*>op, ip, &g)
        elif typenum == cnp.NPY_FLOAT64:
            rc = _max_fwd(<const double*>xp, <double*>op, ip, &g)
        elif typenum == cnp.NPY_INT8:
            rc = _max_fwd(<const int8_t*>xp, <int8_t*>op, ip, &g)
        elif typenum == cnp.NPY_UINT8:
            rc = _max_fwd(<const uint8_t*>xp, <uint8_t*>op, ip, &g)
        elif typenum == cnp.NPY_INT16:
            rc = _max_fwd(<const int16_t*>xp, <int16_t*>op, ip, &g)
        elif typenum == cnp.NPY_UINT16:
            rc = _max_fwd(<const uint16_t*>xp, <uint16_t*>op, ip, &g)
        elif typenum == cnp.NPY_INT32:
            rc = _max_fwd(<const int32_t*>xp, <int32_t*>op, ip, &g)
        elif typenum == cnp.NPY_INT64:
            rc = _max_fwd(<const int64_t*>xp, <int64_t*>op, ip, &g)
        else:
            rc = -3
    _raise_rc(rc, "max pooling", x.dtype)


def avg_pool_forward(cnp.ndarray x not None, cnp.ndarray out not None,
                     tuple kernel, tuple stride, tuple pad, tuple pad_after,
                     bint count_include_pad, int64_t divisor_override,
                     bint nearest, int nthreads):
    """Fill ``out`` with the average pooling of ``x`` (float32/float64, or an
    integer dtype: 64-bit window sums, rounded toward zero or, with
    ``nearest``, to nearest with ties to even).

    ``divisor_override`` 0 means none.
    """
    cdef Geo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    _fill_geo(&g, x, out, kernel, stride, (1, 1, 1), pad, pad_after)
    _check5(x, -1, "x", g.xs)
    _check5(out, typenum, "out", g.os)
    _check_writable(out, "out")
    cdef bint cl = _channels_last(&g, g.os)
    if not cl and g.os[4] != 1 and g.osz[2] > 1 and g.N * g.C > 0:
        raise ValueError("out must be contiguous along the last axis or the channel axis")
    if g.N * g.C == 0:
        return
    if (cl and CYPOOL_HAVE_PIX3_AVG and _pix3_ok(&g, typenum)
            and (divisor_override == 0 or divisor_override == 4)):
        _split(&g, g.N * g.osz[0] * g.osz[1], 1, 1, nthreads,
               <double>g.N * g.C * g.osz[0] * g.osz[1] * g.osz[2] * 4)
        with nogil:
            _pix3_run(<const char*>xp, <char*>op, &g, typenum == cnp.NPY_INT8, False,
                      nearest)
        return
    # work items: (n, od) output rows with all channels when channels-last,
    # (n, c, od) output rows otherwise
    _split(&g, g.N * (1 if cl else g.C) * g.osz[0], g.osz[1], g.osz[2], nthreads,
           <double>g.N * g.C * g.osz[0] * g.osz[1] * g.osz[2] * _taps_per_window(&g))
    if typenum not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64):
        with nogil:
            if typenum == cnp.NPY_INT8:
                rc = _avg_fwd_int(<const int8_t*>xp, <int8_t*>op, &g, count_include_pad,
                                  divisor_override, nearest, cl)
            elif typenum == cnp.NPY_UINT8:
                rc = _avg_fwd_int(<const uint8_t*>xp, <uint8_t*>op, &g, count_include_pad,
                                  divisor_override, nearest, cl)
            elif typenum == cnp.NPY_INT16:
                rc = _avg_fwd_int(<const int16_t*>xp, <int16_t*>op, &g, count_include_pad,
                                  divisor_override, nearest, cl)
            elif typenum == cnp.NPY_UINT16:
                rc = _avg_fwd_int(<const uint16_t*>xp, <uint16_t*>op, &g, count_include_pad,
                                  divisor_override, nearest, cl)
            elif typenum == cnp.NPY_INT32:
                rc = _avg_fwd_int(<const int32_t*>xp, <int32_t*>op, &g, count_include_pad,
                                  divisor_override, nearest, cl)
            elif typenum == cnp.NPY_INT64:
                rc = _avg_fwd_int(<const int64_t*>xp, <int64_t*>op, &g, count_include_pad,
                                  divisor_override, nearest, cl)
            else:
                rc = -3
        _raise_rc(rc, "average pooling", x.dtype)
        return
    cdef Tab tb
    cdef Py_ssize_t KD = 1
    cdef int wide = 0
    cdef Py_ssize_t K = 0 if cl else _tiling(&g, cnp.PyArray_ITEMSIZE(x), nthreads, False,
                                             &KD, &wide)
    if K != 0:
        _split(&g, g.N * g.C * g.osz[0], 1, 1, nthreads,
               <double>g.N * g.C * g.osz[0] * g.osz[1] * g.osz[2] * _taps_per_window(&g))
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                rc = _avg_tile(<const float*>xp, <float*>op, &g, K, KD, wide,
                               divisor_override)
            else:
                rc = _avg_tile(<const double*>xp, <double*>op, &g, K, KD, wide,
                               divisor_override)
        return
    if not cl and _small_ok(&g, False):
        rc = _avg_table(&g, &tb, count_include_pad, divisor_override, nthreads)
        if rc == 0:
            with nogil:
                if typenum == cnp.NPY_FLOAT32:
                    rc = _avg_small(<const float*>xp, <float*>op, &g, &tb)
                else:
                    rc = _avg_small(<const double*>xp, <double*>op, &g, &tb)
        _free_tab(&tb)
        if rc != 1:
            _raise_rc(rc, "average pooling", x.dtype)
            return
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            if cl:
                rc = _avg_fwd_cl(<const float*>xp, <float*>op, &g, count_include_pad,
                                 divisor_override)
            else:
                rc = _avg_fwd(<const float*>xp, <float*>op, &g, count_include_pad,
                              divisor_override)
        else:
            if cl:
                rc = _avg_fwd_cl(<const double*>xp, <double*>op, &g, count_include_pad,
                                 divisor_override)
            else:
                rc = _avg_fwd(<const double*>xp, <double*>op, &g, count_include_pad,
                              divisor_override)
    _raise_rc(rc, "average pooling", x.dtype)


def max_pool_backward(cnp.ndarray grad_out not None, cnp.ndarray idx not None,
                      cnp.ndarray grad_in not None, int nthreads,
                      bint stream=False, cnp.ndarray bounds=None):
    """Scatter ``grad_out`` into ``grad_in`` (zeroed here) through ``idx``.
    ``stream``: ``grad_in`` is the caller's array (not fresh memory, whose
    page faults bring every line in anyway): when it has at least
    ``_stream_min()`` bytes and planes of up to 256 KiB, each plane is zeroed
    and accumulated in a per-thread buffer and streamed out with
    non-temporal stores, instead of a zero fill followed by a scatter that
    reads every line back (1.2x measured).  With ``bounds`` (int64, one per
    output row (od, oh) of a volume: ``cypool._compiled.row_bounds``),
    planes of volumes of several output rows are streamed out while they
    are built, each part as soon as no later window reaches it
    (``scatter_stream.h``; any index is still handled exactly), into any
    ``grad_in`` of at least ``_stream_min()`` bytes.

    Returns False when some index lies outside its plane (it is skipped; the
    caller raises).  ``grad_in`` must hold each (n, c) plane with uniform
    spatial strides (true of both contiguous layouts).
    """
    cdef Geo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    cdef const void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef const int64_t* ip = <const int64_t*>cnp.PyArray_DATA(idx)
    _fill_geo(&g, grad_in, grad_out, (1, 1, 1), (1, 1, 1), (1, 1, 1), (0, 0, 0),
              (0, 0, 0))
    _check5(grad_out, -1, "grad_out", g.os)
    _check5(grad_in, typenum, "grad_in", g.xs)
    _check_writable(grad_in, "grad_in")
    _check5(idx, cnp.NPY_INT64, "idx", g.js)
    if not _same_shape(idx, grad_out):
        raise ValueError("idx must have grad_out's shape")
    if g.N * g.C == 0:
        return True
    cdef Py_ssize_t cb
    if (_channels_last(&g, g.xs) and g.os[1] == 1 and g.js[1] == 1
            and _uniform_planes(&g)):
        cb = _cl_split(&g, nthreads, <double>g.N * g.C * (
            g.osz[0] * g.osz[1] * g.osz[2] + g.isz[0] * g.isz[1] * g.isz[2]))
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                rc = _max_bwd_cl(<const float*>gop, ip, <float*>gip, &g, cb)
            elif typenum == cnp.NPY_FLOAT64:
                rc = _max_bwd_cl(<const double*>gop, ip, <double*>gip, &g, cb)
            else:
                rc = -3
        _raise_rc(rc, "max pooling backward", grad_out.dtype)
        return rc == 0
    if g.isz[0] * g.isz[1] * g.isz[2] > 1 and (
            g.xs[4] < 1
            or (g.isz[1] > 1 and g.xs[3] != g.isz[2] * g.xs[4])
            or (g.isz[0] > 1 and g.xs[2] != g.isz[1] * g.isz[2] * g.xs[4])):
        raise ValueError("grad_in planes must have uniform positive strides")
    if g.xs[4] < 1:
        g.xs[4] = 1
    _split(&g, g.N * g.C, 1, 1, nthreads,
           <double>g.N * g.C * (g.osz[0] * g.osz[1] * g.osz[2] + g.isz[0] * g.isz[1] * g.isz[2]))
    # streamed planes are built in a per-thread buffer: up to 256 KiB, and
    # into a caller's array up to _ROWS_PLANE_MAX when streamed while built
    # (only the lines between the part written out and the current windows
    # are in use): 64^3 volumes (1 MiB planes) into out= 1.2x, into fresh
    # memory 0.95x
    cdef Py_ssize_t pbytes = g.isz[0] * g.isz[1] * g.isz[2] * cnp.PyArray_ITEMSIZE(grad_in)
    cdef bint large = _wants_stream(grad_in) and g.xs[4] == 1
    cdef bint fits = large and pbytes <= 262144
    cdef bint fits_rows = large and pbytes <= (_ROWS_PLANE_MAX if stream else 262144)
    cdef const int64_t* bnd = NULL
    # streamed while built: into fresh memory too (measured 1.27x there, 1
    # thread, 1.16x at 2); volumes of one output row (1-d pooling) are
    # copied out whole, and only into a caller's array: cut into parts of
    # 512 outputs they measured 0.7x, and whole copies into fresh memory
    # (whose page faults have just brought every line in) were slower
    if (fits_rows and bounds is not None and g.osz[0] * g.osz[1] > 1
            and _dense_vol(&g, g.os) and _dense_vol(&g, g.js)
            and <size_t>gip % <size_t>cnp.PyArray_ITEMSIZE(grad_in) == 0):
        bnd = _bounds_of(bounds, g.osz[0] * g.osz[1])
    g.stream = bnd != NULL or (stream and fits)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _max_bwd(<const float*>gop, ip, <float*>gip, &g, bnd)
        elif typenum == cnp.NPY_FLOAT64:
            rc = _max_bwd(<const double*>gop, ip, <double*>gip, &g, bnd)
        else:
            rc = -3
    _raise_rc(rc, "max pooling backward", grad_out.dtype)
    return rc == 0


cdef const int64_t* _bounds_of(cnp.ndarray bounds, Py_ssize_t n) except NULL:
    """The data of ``bounds``: C-contiguous int64 of ``n`` elements."""
    if (cnp.PyArray_TYPE(bounds) != cnp.NPY_INT64 or cnp.PyArray_SIZE(bounds) != n
            or not cnp.PyArray_IS_C_CONTIGUOUS(bounds)):
        raise ValueError(f"bounds must be a contiguous int64 array of {n} elements")
    return <const int64_t*>cnp.PyArray_DATA(bounds)


def avg_pool_backward(cnp.ndarray grad_out not None, cnp.ndarray grad_in not None,
                      tuple kernel, tuple stride, tuple pad, tuple pad_after,
                      bint count_include_pad, int64_t divisor_override,
                      int nthreads, bint stream=False):
    """Fill ``grad_in`` with the gradient of average pooling.  ``stream``:
    ``grad_in`` is the caller's array, not fresh memory: when it has at least
    ``_stream_min()`` bytes, each planar input row is built in a per-thread
    buffer and appended to the thread's stream of non-temporal stores
    (``cypool_stream_put``: no read of every output line before it is
    written; 1.2-1.3x into a (32, 64, 112, 112) float32 out= measured).  Into
    fresh memory they are slower than ordinary stores: the page faults have
    just brought the lines into the cache."""
    cdef Geo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    cdef const void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    _fill_geo(&g, grad_in, grad_out, kernel, stride, (1, 1, 1), pad, pad_after)
    _check5(grad_out, -1, "grad_out", g.os)
    _check5(grad_in, typenum, "grad_in", g.xs)
    _check_writable(grad_in, "grad_in")
    if g.N * g.C == 0:
        return
    cdef Py_ssize_t cb
    if _channels_last(&g, g.xs) and g.os[1] == 1 and _uniform_planes(&g):
        cb = _cl_split(&g, nthreads, <double>g.N * g.C * g.isz[0] * g.isz[1]
                       * g.isz[2] * _taps_per_window(&g))
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                rc = _avg_bwd_cl(<const float*>gop, <float*>gip, &g, count_include_pad,
                                 divisor_override, cb)
            elif typenum == cnp.NPY_FLOAT64:
                rc = _avg_bwd_cl(<const double*>gop, <double*>gip, &g, count_include_pad,
                                 divisor_override, cb)
            else:
                rc = -3
        _raise_rc(rc, "average pooling backward", grad_out.dtype)
        return
    # small planes, contiguous: the table of the forward's taps, scattered
    # into (streaming, for a large out=, keeps the row kernels)
    cdef Tab tb
    if (typenum in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64) and _dense(g.isz, g.xs)
            and _dense_vol(&g, g.os) and _small_ok(&g, False)
            and not (stream and _wants_stream(grad_in))):
        rc = _avg_table(&g, &tb, count_include_pad, divisor_override, nthreads)
        if rc == 0:
            with nogil:
                if typenum == cnp.NPY_FLOAT32:
                    rc = _avg_small_bwd(<const float*>gop, <float*>gip, &g, &tb)
                else:
                    rc = _avg_small_bwd(<const double*>gop, <double*>gip, &g, &tb)
        _free_tab(&tb)
        if rc != 1:
            _raise_rc(rc, "average pooling backward", grad_out.dtype)
            return
    rc = 0
    # items are input rows (and chunks of them)
    _split(&g, g.N * g.C * g.isz[0] * g.isz[1], 1, g.isz[2], nthreads,
           <double>g.N * g.C * g.isz[0] * g.isz[1] * g.isz[2] * _taps_per_window(&g))
    g.stream = stream and _wants_stream(grad_in) and g.xs[4] == 1
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _avg_bwd(<const float*>gop, <float*>gip, &g, count_include_pad,
                          divisor_override)
        elif typenum == cnp.NPY_FLOAT64:
            rc = _avg_bwd(<const double*>gop, <double*>gip, &g, count_include_pad,
                          divisor_override)
        else:
            rc = -3
    _raise_rc(rc, "average pooling backward", grad_out.dtype)
