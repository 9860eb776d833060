# cython: language_level=3, cdivision=True, cpow=True
# (boundscheck, wraparound, initializedcheck and nonecheck are set for the
# whole build in setup.py: off, or on with CYPOOL_CYTHON_DEBUG=1)
"""Adaptive and global pooling kernels.

Every array arrives as a 5-d ``(N, C, D, H, W)`` view with arbitrary element
strides (1-d and 2-d inputs carry singleton D/H axes).  Adaptive bins are
tabulated once per call: bin ``i`` of a dimension covers
``[floor(i*In/Out), ceil((i+1)*In/Out))``, computed incrementally as a
quotient and remainder of ``i*In`` by ``Out`` so that no product can
overflow 64 bits, whatever the sizes.

Planar layouts: a work item is one ``(n, c, od)`` group of output rows (or
a band of its rows when there are few groups; N is merged into C where the
planes are evenly spaced, so that items need no division).  Each input row
of an output row's (d, h) bins is reduced along W into a per-thread row of
``Ow`` partial results, which is then merged into the output row.  Reducing
W first and the rows in scan order keeps the result of a direct row-major
scan: for max, the first maximum of the first row holding it, or the last
NaN of the last row holding one (PyTorch's rule).  When W is a multiple of
Ow and H of Oh (fixed windows over contiguous rows, the common
classifier case) one fused loop per output row reads all taps of each
window, with branch-free selects.

Channels-last layouts (output channel axis contiguous): a work item is one
output position, and the taps of its bin update all channels at once along
the contiguous channel axis.

Float averages are summed in one order whatever the layout and path: each
bin row left to right, the rows added in scan order (global pooling: eight
lanes over the flat in-plane position, combined as a tree, then the tail
left to right).  Channels-last results are therefore bit for bit the
transposed planar results.  Integer averages sum in uint64 (the int64 sum
modulo 2**64, no signed overflow) and divide exactly.

Global pooling (one bin per plane) has its own kernels, which also serve
adaptive pooling to output size 1 (``cypool._adaptive`` picks them): planar planes are
reduced as one run when their elements lie at a uniform stride (blocks of
contiguous planes with a running pointer for the average; for the maximum,
eight vectorised lanes of plain max find the value, a NaN alarm falls back
to the exact scan, and the element holding the value is found only where
it matters: indices, signed zeros); channels-last input accumulates channel
vectors position by position, in channel blocks when N is small.

Thread teams: at most one per call (``prange`` with ``use_threads_if``),
never for less than PARALLEL_MIN_WORK element operations; the average
backward gives every item a whole input-gradient plane (or channel block),
so no two threads write the same element.

Validation happens in Python; the ``def`` functions here check only what
memory safety depends on (ranks, shapes, dtypes, writeability).
"""

cimport numpy as cnp
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from cython.parallel cimport prange, parallel
from libc.stdint cimport (int8_t, uint8_t, int16_t, uint16_t, int32_t,
                          int64_t, uint64_t)

cnp.import_array()

from cypool._ext.omp_shim cimport (cypool_omp_get_thread_num,
    cypool_omp_get_max_threads, CYPOOL_HAVE_OPENMP, cypool_prefetch)


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
    # Below this many element operations a call runs on one thread.
    PARALLEL_MIN_WORK = 32768
    # Per-thread scratch is padded to whole cache lines (no false sharing).
    LINE = 64
    # Planes per work item of the contiguous global average.
    PLANE_BLOCK = 64


cdef struct AGeo:
    Py_ssize_t N
    Py_ssize_t C
    Py_ssize_t isz[3]      # input spatial size (D, H, W)
    Py_ssize_t osz[3]      # output spatial size
    Py_ssize_t xs[5]       # element strides of the array bins read (or the
                           # input gradient, in the backward)
    Py_ssize_t os[5]       # element strides of the output-shaped array
    Py_ssize_t js[5]       # element strides of the indices
    Py_ssize_t* lo[3]      # bin starts per dimension
    Py_ssize_t* hi[3]      # bin ends per dimension
    Py_ssize_t kw          # uniform W bin width (W % Ow == 0), else 0
    Py_ssize_t kh          # uniform H bin width with ``fixed``
    bint fixed             # fixed kh x kw windows over contiguous rows, D
                           # kept: the fused one-loop-per-output-row path
    Py_ssize_t cb          # channel block of channels-last work items
    Py_ssize_t band        # output rows (H) per planar work item
    Py_ssize_t nband       # planar work items per (n, c, od)
    int nthreads
    bint parallel


def openmp_enabled():
    """True when this module was compiled with OpenMP."""
    return bool(CYPOOL_HAVE_OPENMP)


# ---------------------------------------------------------------- helpers

cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef inline Py_ssize_t _imax(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


cdef inline bint _takes(pool_t v, pool_t m) noexcept nogil:
    """PyTorch's max update test: the new value is larger, or NaN."""
    if pool_t is float or pool_t is double:
        return (v > m) | (v != v)
    else:
        return v > m


cdef inline bint _isnan(pool_t v) noexcept nogil:
    if pool_t is float or pool_t is double:
        return v != v
    else:
        return False


cdef void _fill_bins(Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t* lo,
                     Py_ssize_t* hi) noexcept nogil:
    """Adaptive bins: ``lo[i] = floor(i*In/Out)``, ``hi[i] = ceil((i+1)*In/Out)``.
    ``i*In = Q*Out + R`` is carried from one bin to the next (``0 <= R < Out``),
    so every intermediate value stays below ``In + 2*Out``."""
    cdef Py_ssize_t q = n_in // n_out, r = n_in % n_out
    cdef Py_ssize_t Q = 0, R = 0, i
    for i in range(n_out):
        lo[i] = Q
        Q += q
        R += r
        if R >= n_out:
            Q += 1
            R -= n_out
        hi[i] = Q + (R > 0)


cdef inline int64_t _int_quot(int64_t s, int64_t d, bint nearest) noexcept nogil:
    """s / d for d >= 1, rounded toward zero or to nearest (ties to even).
    Sums and divisors below 2**53 divide in double precision and are made
    exact from the remainder; larger ones divide as integers."""
    cdef int64_t q, r
    cdef int64_t big = <int64_t>1 << 53
    if d <= 0:
        return 0    # unreachable: bin counts are positive
    if -big < s < big and d < big:
        q = <int64_t>(<double>s / <double>d)
        r = s - q * d
        while r < 0:
            q -= 1
            r += d
        while r >= d:
            q += 1
            r -= d
    else:
        q = s / d
        r = s - q * d
        if r < 0:
            q -= 1
            r += d
    if not nearest:
        q += (r != 0 and s < 0)
    elif r > d - r or (r == d - r and (q & 1)):
        q += 1
    return q


cdef inline char* _aligned(char* p) noexcept nogil:
    return p + (LINE - <size_t>p % LINE) % LINE


cdef inline Py_ssize_t _lines(Py_ssize_t nbytes) noexcept nogil:
    return (nbytes + LINE - 1) // LINE * LINE


cdef inline void _decode_rows(const AGeo* g, Py_ssize_t it, Py_ssize_t* n,
                              Py_ssize_t* c, Py_ssize_t* od, Py_ssize_t* oh0,
                              Py_ssize_t* oh1) noexcept nogil:
    """Work item ``it`` of the planar kernels: output rows ``[oh0, oh1)`` of
    ``(n, c, od)``.  Divisions are skipped where a factor is 1 (whole planes
    per item, N merged into C by the caller)."""
    cdef Py_ssize_t b = 0
    if g.nband > 1:
        b = it % g.nband
        it = it // g.nband
    oh0[0] = b * g.band
    oh1[0] = _imin(oh0[0] + g.band, g.osz[1])
    od[0] = 0
    if g.osz[0] > 1:
        od[0] = it % g.osz[0]
        it = it // g.osz[0]
    if g.N == 1:
        n[0] = 0
        c[0] = it
    else:
        c[0] = it % g.C
        n[0] = it // g.C


cdef inline void _decode_pos(const AGeo* g, Py_ssize_t it, Py_ssize_t* n,
                             Py_ssize_t* od, Py_ssize_t* oh, Py_ssize_t* ow) noexcept nogil:
    ow[0] = it % g.osz[2]
    it = it // g.osz[2]
    oh[0] = it % g.osz[1]
    it = it // g.osz[1]
    od[0] = it % g.osz[0]
    n[0] = it // g.osz[0]


# ------------------------------------------------------ planar max forward
# W pass: the maximum (and its w) of every W bin of one input row.

cdef inline void _wmax(const pool_t* row, Py_ssize_t e, const AGeo* g,
                       pool_t* tv, int64_t* tw) noexcept nogil:
    cdef Py_ssize_t ow, w, Ow = g.osz[2], kw = g.kw, bw
    cdef const Py_ssize_t* lo = g.lo[2]
    cdef const Py_ssize_t* hi = g.hi[2]
    cdef pool_t m, v, a, b
    if kw == 1:
        for ow in range(Ow):
            tv[ow] = row[ow * e]
            if tw != NULL:
                tw[ow] = ow
    elif kw == 2 and e == 1 and tw == NULL:
        for ow in range(Ow):
            a = row[2 * ow]
            b = row[2 * ow + 1]
            tv[ow] = b if _takes(b, a) else a
    elif kw == 2 and e == 1:
        for ow in range(Ow):
            a = row[2 * ow]
            b = row[2 * ow + 1]
            if _takes(b, a):
                tv[ow] = b
                tw[ow] = 2 * ow + 1
            else:
                tv[ow] = a
                tw[ow] = 2 * ow
    else:
        for ow in range(Ow):
            if kw > 0:
                w = ow * kw
                bw = w + kw
            else:
                w = lo[ow]
                bw = hi[ow]
            m = row[w * e]
            if tw == NULL:
                for w in range(w + 1, bw):
                    v = row[w * e]
                    if _takes(v, m):
                        m = v
            else:
                tw[ow] = w
                for w in range(w + 1, bw):
                    v = row[w * e]
                    if _takes(v, m):
                        m = v
                        tw[ow] = w
            tv[ow] = m


cdef inline void _max_row_fixed(const pool_t* r, Py_ssize_t rs, const AGeo* g,
                                int64_t base, pool_t* o, int64_t* oi) noexcept nogil:
    """One output row of fixed kh x kw windows over contiguous input rows
    into contiguous ``o`` (and ``oi``): taps in scan order, branch-free
    selects.  ``base`` is the flat index of the row's first window."""
    cdef Py_ssize_t ow, i, j, kh = g.kh, kw = g.kw, Ow = g.osz[2], W = g.isz[2]
    cdef pool_t m, v
    cdef int64_t mi, k
    cdef bint t
    if oi == NULL and kh == 2 and kw == 2:
        for ow in range(Ow):
            m = r[2 * ow]
            v = r[2 * ow + 1]
            m = v if _takes(v, m) else m
            v = r[rs + 2 * ow]
            m = v if _takes(v, m) else m
            v = r[rs + 2 * ow + 1]
            m = v if _takes(v, m) else m
            o[ow] = m
    elif oi == NULL:
        for ow in range(Ow):
            m = r[ow * kw]
            for i in range(kh):
                for j in range(kw):
                    v = r[i * rs + ow * kw + j]
                    m = v if _takes(v, m) else m
            o[ow] = m
    elif kh == 2 and kw == 2:
        # index selects by masks (no branches on random data)
        for ow in range(Ow):
            m = r[2 * ow]
            mi = 0
            v = r[2 * ow + 1]
            t = _takes(v, m)
            m = v if t else m
            mi = mi ^ ((mi ^ 1) & -(<int64_t>t))
            v = r[rs + 2 * ow]
            t = _takes(v, m)
            m = v if t else m
            mi = mi ^ ((mi ^ W) & -(<int64_t>t))
            v = r[rs + 2 * ow + 1]
            t = _takes(v, m)
            m = v if t else m
            mi = mi ^ ((mi ^ (W + 1)) & -(<int64_t>t))
            o[ow] = m
            oi[ow] = base + 2 * ow + mi
    else:
        for ow in range(Ow):
            m = r[ow * kw]
            mi = 0
            for i in range(kh):
                for j in range(kw):
                    v = r[i * rs + ow * kw + j]
                    k = i * W + j
                    t = _takes(v, m)
                    m = v if t else m
                    mi = k if t else mi
            o[ow] = m
            oi[ow] = base + ow * kw + mi


cdef inline void _max_row(const pool_t* x, pool_t* out, int64_t* idx,
                          const AGeo* g, Py_ssize_t n, Py_ssize_t c, Py_ssize_t od,
                          Py_ssize_t oh, pool_t* av, int64_t* ai, pool_t* tv,
                          int64_t* tw) noexcept nogil:
    cdef Py_ssize_t d, h, ow, Ow = g.osz[2]
    cdef Py_ssize_t H = g.isz[1], W = g.isz[2]
    cdef bint first = True
    cdef int64_t base
    cdef const pool_t* row
    cdef pool_t* orow
    cdef int64_t* irow
    if g.fixed:
        _max_row_fixed(x + n * g.xs[0] + c * g.xs[1] + od * g.xs[2] + oh * g.kh * g.xs[3],
                       g.xs[3], g, (od * H + oh * g.kh) * W,
                       out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3],
                       NULL if idx == NULL else
                       idx + n * g.js[0] + c * g.js[1] + od * g.js[2] + oh * g.js[3])
        return
    for d in range(g.lo[0][od], g.hi[0][od]):
        for h in range(g.lo[1][oh], g.hi[1][oh]):
            row = x + n * g.xs[0] + c * g.xs[1] + d * g.xs[2] + h * g.xs[3]
            base = (d * H + h) * W
            if first:
                _wmax(row, g.xs[4], g, av, ai if idx != NULL else NULL)
                if idx != NULL:
                    for ow in range(Ow):
                        ai[ow] += base
                first = False
                continue
            _wmax(row, g.xs[4], g, tv, tw if idx != NULL else NULL)
            if idx == NULL:
                for ow in range(Ow):
                    av[ow] = tv[ow] if _takes(tv[ow], av[ow]) else av[ow]
            else:
                for ow in range(Ow):
                    if _takes(tv[ow], av[ow]):
                        av[ow] = tv[ow]
                        ai[ow] = base + tw[ow]
    orow = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
    for ow in range(Ow):
        orow[ow * g.os[4]] = av[ow]
    if idx != NULL:
        irow = idx + n * g.js[0] + c * g.js[1] + od * g.js[2] + oh * g.js[3]
        for ow in range(Ow):
            irow[ow * g.js[4]] = ai[ow]


cdef inline void _max_item(const pool_t* x, pool_t* out, int64_t* idx,
                           const AGeo* g, Py_ssize_t it, char* mine) noexcept nogil:
    cdef Py_ssize_t n, c, od, oh0, oh1, oh
    cdef Py_ssize_t lv = _lines(g.osz[2] * sizeof(pool_t))
    cdef Py_ssize_t li = _lines(g.osz[2] * sizeof(int64_t))
    _decode_rows(g, it, &n, &c, &od, &oh0, &oh1)
    for oh in range(oh0, oh1):
        _max_row(x, out, idx, g, n, c, od, oh, <pool_t*>mine,
                 <int64_t*>(mine + lv), <pool_t*>(mine + lv + li),
                 <int64_t*>(mine + 2 * lv + li))


cdef int _max_planar(const pool_t* x, pool_t* out, int64_t* idx,
                     const AGeo* g) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.C * g.osz[0] * g.nband
    cdef Py_ssize_t Ow = g.osz[2]
    cdef Py_ssize_t per = 2 * _lines(Ow * sizeof(pool_t)) + 2 * _lines(Ow * sizeof(int64_t))
    cdef char* buf = <char*>malloc(per * g.nthreads + LINE)
    cdef char* mine = NULL
    if buf == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(buf) + per * cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _max_item(x, out, idx, g, it, mine)
    free(buf)
    return 0


# ------------------------------------------------ channels-last max forward

cdef inline void _max_cl_item(const pool_t* x, pool_t* out, int64_t* idx,
                              const AGeo* g, Py_ssize_t it) noexcept nogil:
    cdef Py_ssize_t n, od, oh, ow, d, h, w, c, C = g.C, e = g.xs[1]
    cdef Py_ssize_t H = g.isz[1], W = g.isz[2]
    cdef bint first = True
    cdef int64_t flat
    cdef const pool_t* p
    cdef pool_t* o
    cdef int64_t* oi = NULL
    cdef pool_t v
    _decode_pos(g, it, &n, &od, &oh, &ow)
    o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
    if idx != NULL:
        oi = idx + n * g.js[0] + od * g.js[2] + oh * g.js[3] + ow * g.js[4]
    for d in range(g.lo[0][od], g.hi[0][od]):
        for h in range(g.lo[1][oh], g.hi[1][oh]):
            for w in range(g.lo[2][ow], g.hi[2][ow]):
                p = x + n * g.xs[0] + d * g.xs[2] + h * g.xs[3] + w * g.xs[4]
                flat = (d * H + h) * W + w
                if first:
                    for c in range(C):
                        o[c] = p[c * e]
                    if oi != NULL:
                        for c in range(C):
                            oi[c] = flat
                    first = False
                elif oi == NULL and e == 1:
                    for c in range(C):
                        v = p[c]
                        o[c] = v if _takes(v, o[c]) else o[c]
                elif oi == NULL:
                    for c in range(C):
                        v = p[c * e]
                        o[c] = v if _takes(v, o[c]) else o[c]
                else:
                    for c in range(C):
                        v = p[c * e]
                        if _takes(v, o[c]):
                            o[c] = v
                            oi[c] = flat


cdef int _max_cl(const pool_t* x, pool_t* out, int64_t* idx, const AGeo* g) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.osz[0] * g.osz[1] * g.osz[2]
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        for it in prange(nitems, schedule='static'):
            _max_cl_item(x, out, idx, g, it)
    return 0


# ------------------------------------------------------ planar avg forward
# Floats sum in their own type, integers in uint64 (wrapping two's
# complement: the exact int64 sum modulo 2**64, without signed overflow).

cdef inline void _wsum(const real_t* row, Py_ssize_t e, const AGeo* g,
                       real_t* t, bint add) noexcept nogil:
    """W-bin sums of one input row into ``t`` (or added to it)."""
    cdef Py_ssize_t ow, w, w1, Ow = g.osz[2], kw = g.kw
    cdef real_t s
    if kw == 2 and e == 1:
        if add:
            for ow in range(Ow):
                t[ow] = t[ow] + (<real_t>row[2 * ow] + <real_t>row[2 * ow + 1])
        else:
            for ow in range(Ow):
                t[ow] = <real_t>row[2 * ow] + <real_t>row[2 * ow + 1]
        return
    if kw == 1:
        if add:
            for ow in range(Ow):
                t[ow] = t[ow] + <real_t>row[ow * e]
        else:
            for ow in range(Ow):
                t[ow] = <real_t>row[ow * e]
        return
    cdef const Py_ssize_t* lo = g.lo[2]
    cdef const Py_ssize_t* hi = g.hi[2]
    for ow in range(Ow):
        if kw > 0:
            w = ow * kw
            w1 = w + kw
        else:
            w = lo[ow]
            w1 = hi[ow]
        s = <real_t>row[w * e]
        if e == 1:
            for w in range(w + 1, w1):
                s = s + <real_t>row[w]
        else:
            for w in range(w + 1, w1):
                s = s + <real_t>row[w * e]
        t[ow] = t[ow] + s if add else s


cdef inline void _wsum_int(const int_t* row, Py_ssize_t e, const AGeo* g,
                           uint64_t* t, bint add) noexcept nogil:
    cdef Py_ssize_t ow, w, w1, Ow = g.osz[2], kw = g.kw
    cdef uint64_t s
    for ow in range(Ow):
        if kw > 0:
            w = ow * kw
            w1 = w + kw
        else:
            w = g.lo[2][ow]
            w1 = g.hi[2][ow]
        s = <uint64_t><int64_t>row[w * e]
        for w in range(w + 1, w1):
            s = s + <uint64_t><int64_t>row[w * e]
        t[ow] = t[ow] + s if add else s


cdef inline void _avg_row_fixed(const real_t* r, Py_ssize_t rs, const AGeo* g,
                                real_t* o) noexcept nogil:
    """One output row of fixed kh x kw windows over contiguous input rows
    ``r``, ``r + rs``, ... into contiguous ``o``: one loop, no scratch."""
    cdef Py_ssize_t ow, i, j, kh = g.kh, kw = g.kw, Ow = g.osz[2]
    cdef real_t cnt = <real_t>(kh * kw), sm = 0, rsum
    if kh == 2 and kw == 2:
        # (multiplying by 1/4 is exact: the same result as dividing by 4)
        for ow in range(Ow):
            o[ow] = ((r[2 * ow] + r[2 * ow + 1])
                     + (r[rs + 2 * ow] + r[rs + 2 * ow + 1])) * <real_t>0.25
    else:
        # row by row, each row left to right (the order of every path)
        for ow in range(Ow):
            for i in range(kh):
                rsum = r[i * rs + ow * kw]
                for j in range(1, kw):
                    rsum = rsum + r[i * rs + ow * kw + j]
                sm = rsum if i == 0 else sm + rsum
            o[ow] = sm / cnt


cdef inline void _avg_row(const real_t* x, real_t* out, const AGeo* g,
                          Py_ssize_t n, Py_ssize_t c, Py_ssize_t od, Py_ssize_t oh,
                          real_t* acc) noexcept nogil:
    cdef Py_ssize_t d, h, ow, Ow = g.osz[2]
    cdef bint first = True
    cdef int64_t rows
    cdef real_t* orow
    if g.fixed:
        _avg_row_fixed(x + n * g.xs[0] + c * g.xs[1] + od * g.xs[2] + oh * g.kh * g.xs[3],
                       g.xs[3], g,
                       out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3])
        return
    rows = (g.hi[0][od] - g.lo[0][od]) * (g.hi[1][oh] - g.lo[1][oh])
    for d in range(g.lo[0][od], g.hi[0][od]):
        for h in range(g.lo[1][oh], g.hi[1][oh]):
            _wsum(x + n * g.xs[0] + c * g.xs[1] + d * g.xs[2] + h * g.xs[3],
                  g.xs[4], g, acc, not first)
            first = False
    orow = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
    cdef const Py_ssize_t* lo = g.lo[2]
    cdef const Py_ssize_t* hi = g.hi[2]
    cdef Py_ssize_t os4 = g.os[4]
    if g.kw > 0 and os4 == 1:
        for ow in range(Ow):
            orow[ow] = acc[ow] / <real_t>(rows * g.kw)
    else:
        for ow in range(Ow):
            orow[ow * os4] = acc[ow] / <real_t>(rows * (hi[ow] - lo[ow]))


cdef inline void _avg_int_row(const int_t* x, int_t* out, const AGeo* g,
                              Py_ssize_t n, Py_ssize_t c, Py_ssize_t od, Py_ssize_t oh,
                              uint64_t* acc, bint nearest) noexcept nogil:
    cdef Py_ssize_t d, h, ow, Ow = g.osz[2]
    cdef bint first = True
    cdef int64_t rows
    cdef int_t* orow
    rows = (g.hi[0][od] - g.lo[0][od]) * (g.hi[1][oh] - g.lo[1][oh])
    for d in range(g.lo[0][od], g.hi[0][od]):
        for h in range(g.lo[1][oh], g.hi[1][oh]):
            _wsum_int(x + n * g.xs[0] + c * g.xs[1] + d * g.xs[2] + h * g.xs[3],
                      g.xs[4], g, acc, not first)
            first = False
    orow = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
    for ow in range(Ow):
        orow[ow * g.os[4]] = <int_t>_int_quot(
            <int64_t>acc[ow], rows * (g.hi[2][ow] - g.lo[2][ow]), nearest)


cdef inline void _avg_item(const real_t* x, real_t* out, const AGeo* g,
                           Py_ssize_t it, real_t* acc) noexcept nogil:
    cdef Py_ssize_t n, c, od, oh0, oh1, oh
    _decode_rows(g, it, &n, &c, &od, &oh0, &oh1)
    for oh in range(oh0, oh1):
        _avg_row(x, out, g, n, c, od, oh, acc)


cdef inline void _avg_int_item(const int_t* x, int_t* out, const AGeo* g,
                               Py_ssize_t it, uint64_t* acc, bint nearest) noexcept nogil:
    cdef Py_ssize_t n, c, od, oh0, oh1, oh
    _decode_rows(g, it, &n, &c, &od, &oh0, &oh1)
    for oh in range(oh0, oh1):
        _avg_int_row(x, out, g, n, c, od, oh, acc, nearest)


cdef int _avg_planar(const real_t* x, real_t* out, const AGeo* g) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.C * g.osz[0] * g.nband
    cdef Py_ssize_t per = _lines(g.osz[2] * sizeof(real_t))
    cdef char* buf = <char*>malloc(per * g.nthreads + LINE)
    cdef char* mine = NULL
    if buf == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(buf) + per * cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _avg_item(x, out, g, it, <real_t*>mine)
    free(buf)
    return 0


cdef int _avg_int_planar(const int_t* x, int_t* out, const AGeo* g,
                         bint nearest) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.C * g.osz[0] * g.nband
    cdef Py_ssize_t per = _lines(g.osz[2] * sizeof(uint64_t))
    cdef char* buf = <char*>malloc(per * g.nthreads + LINE)
    cdef char* mine = NULL
    if buf == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(buf) + per * cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _avg_int_item(x, out, g, it, <uint64_t*>mine, nearest)
    free(buf)
    return 0


# ------------------------------------------------ channels-last avg forward

cdef inline void _cl_taps(real_t* o, real_t* r, const real_t* a, const real_t* b,
                          const real_t* c2, const real_t* d, int k, Py_ssize_t m,
                          bint rfirst, bint rlast, bint bfirst, bint blast,
                          real_t cnt) noexcept nogil:
    """Add ``k`` (1 to 4) consecutive taps of a bin row to all channels at
    once, in the order of the planar kernels: a row is summed left to right
    (``r`` holds the partial sum of a row longer than four taps), rows are
    added to ``o`` in scan order, and the last tap divides by ``cnt``."""
    cdef Py_ssize_t c
    cdef real_t v
    if rfirst and rlast:
        # a whole row of up to four taps (the common case): one loop per
        # combination, so that each one vectorises
        if k == 1:
            if bfirst and blast:
                for c in range(m):
                    o[c] = (a[c]) / cnt
            elif bfirst:
                for c in range(m):
                    o[c] = a[c]
            elif blast:
                for c in range(m):
                    o[c] = (o[c] + (a[c])) / cnt
            else:
                for c in range(m):
                    o[c] = o[c] + (a[c])
        elif k == 2:
            if bfirst and blast:
                for c in range(m):
                    o[c] = (a[c] + b[c]) / cnt
            elif bfirst:
                for c in range(m):
                    o[c] = a[c] + b[c]
            elif blast:
                for c in range(m):
                    o[c] = (o[c] + (a[c] + b[c])) / cnt
            else:
                for c in range(m):
                    o[c] = o[c] + (a[c] + b[c])
        elif k == 3:
            if bfirst and blast:
                for c in range(m):
                    o[c] = ((a[c] + b[c]) + c2[c]) / cnt
            elif bfirst:
                for c in range(m):
                    o[c] = (a[c] + b[c]) + c2[c]
            elif blast:
                for c in range(m):
                    o[c] = (o[c] + ((a[c] + b[c]) + c2[c])) / cnt
            else:
                for c in range(m):
                    o[c] = o[c] + ((a[c] + b[c]) + c2[c])
        elif k == 4:
            if bfirst and blast:
                for c in range(m):
                    o[c] = (((a[c] + b[c]) + c2[c]) + d[c]) / cnt
            elif bfirst:
                for c in range(m):
                    o[c] = ((a[c] + b[c]) + c2[c]) + d[c]
            elif blast:
                for c in range(m):
                    o[c] = (o[c] + (((a[c] + b[c]) + c2[c]) + d[c])) / cnt
            else:
                for c in range(m):
                    o[c] = o[c] + (((a[c] + b[c]) + c2[c]) + d[c])
        return
    for c in range(m):
        v = a[c] if rfirst else r[c] + a[c]
        if k > 1:
            v = v + b[c]
        if k > 2:
            v = v + c2[c]
        if k > 3:
            v = v + d[c]
        if rlast:
            if not bfirst:
                v = o[c] + v
            if blast:
                v = v / cnt
            o[c] = v
        else:
            r[c] = v


cdef inline void _cl_avg_bin(const real_t* x, real_t* o, real_t* r, const AGeo* g,
                             Py_ssize_t n, Py_ssize_t od, Py_ssize_t oh,
                             Py_ssize_t ow) noexcept nogil:
    """The mean of one bin for all channels (unit channel stride)."""
    cdef Py_ssize_t d, h, w, w0 = g.lo[2][ow], w1 = g.hi[2][ow], k
    cdef const real_t* q
    cdef const real_t* t[4]
    cdef real_t cnt = <real_t>((g.hi[0][od] - g.lo[0][od]) * (g.hi[1][oh] - g.lo[1][oh])
                               * (w1 - w0))
    cdef bint bfirst = True, rfirst
    cdef Py_ssize_t h0 = g.lo[1][oh], h1 = g.hi[1][oh], c, m = g.C
    cdef const real_t* q1
    cdef real_t v
    if w1 - w0 == 2 and h1 - h0 >= 2 and g.hi[0][od] - g.lo[0][od] == 1:
        # two-wide bins: the first two rows in one pass, ((a+b) + (c+d))
        q = x + n * g.xs[0] + g.lo[0][od] * g.xs[2] + h0 * g.xs[3] + w0 * g.xs[4]
        q1 = q + g.xs[3]
        t[0] = q + g.xs[4]
        t[1] = q1 + g.xs[4]
        if h1 - h0 == 2:
            for c in range(m):
                o[c] = ((q[c] + t[0][c]) + (q1[c] + t[1][c])) / cnt
            return
        for c in range(m):
            o[c] = (q[c] + t[0][c]) + (q1[c] + t[1][c])
        for h in range(h0 + 2, h1):
            q = x + n * g.xs[0] + g.lo[0][od] * g.xs[2] + h * g.xs[3] + w0 * g.xs[4]
            _cl_taps(o, r, q, q + g.xs[4], q, q, 2, m, True, True, False, h == h1 - 1, cnt)
        return
    for d in range(g.lo[0][od], g.hi[0][od]):
        for h in range(g.lo[1][oh], g.hi[1][oh]):
            q = x + n * g.xs[0] + d * g.xs[2] + h * g.xs[3]
            rfirst = True
            w = w0
            while w < w1:
                k = _imin(4, w1 - w)
                t[0] = q + w * g.xs[4]
                t[1] = q + _imin(w + 1, w1 - 1) * g.xs[4]
                t[2] = q + _imin(w + 2, w1 - 1) * g.xs[4]
                t[3] = q + _imin(w + 3, w1 - 1) * g.xs[4]
                w += k
                _cl_taps(o, r, t[0], t[1], t[2], t[3], <int>k, g.C, rfirst, w == w1,
                         bfirst, w == w1 and d == g.hi[0][od] - 1 and h == g.hi[1][oh] - 1,
                         cnt)
                rfirst = False
            bfirst = False


cdef inline void _avg_cl_item(const pool_t* x, pool_t* out, const AGeo* g,
                              Py_ssize_t it, uint64_t* iacc, bint nearest) noexcept nogil:
    """All channels of one output position; ``iacc`` (C entries) is the
    integer accumulator (unused for floats, which sum in the output row)."""
    cdef Py_ssize_t n, od, oh, ow, d, h, w, c, C = g.C, e = g.xs[1]
    cdef bint first = True
    cdef int64_t cnt
    cdef const pool_t* p
    cdef pool_t* o
    _decode_pos(g, it, &n, &od, &oh, &ow)
    o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
    cnt = ((g.hi[0][od] - g.lo[0][od]) * (g.hi[1][oh] - g.lo[1][oh])
           * (g.hi[2][ow] - g.lo[2][ow]))
    cdef Py_ssize_t rs
    cdef pool_t* racc
    if pool_t is float or pool_t is double:
        if e == 1:
            _cl_avg_bin(x, o, <pool_t*>iacc, g, n, od, oh, ow)
            return
        # strided channels: the same order, one row accumulator per tap
        racc = <pool_t*>iacc
        for d in range(g.lo[0][od], g.hi[0][od]):
            for h in range(g.lo[1][oh], g.hi[1][oh]):
                rs = g.lo[2][ow]
                p = x + n * g.xs[0] + d * g.xs[2] + h * g.xs[3]
                for c in range(C):
                    racc[c] = p[rs * g.xs[4] + c * e]
                for w in range(rs + 1, g.hi[2][ow]):
                    for c in range(C):
                        racc[c] = racc[c] + p[w * g.xs[4] + c * e]
                for c in range(C):
                    o[c] = racc[c] if first else o[c] + racc[c]
                first = False
        for c in range(C):
            o[c] = o[c] / <pool_t>cnt
    else:
        for d in range(g.lo[0][od], g.hi[0][od]):
            for h in range(g.lo[1][oh], g.hi[1][oh]):
                for w in range(g.lo[2][ow], g.hi[2][ow]):
                    p = x + n * g.xs[0] + d * g.xs[2] + h * g.xs[3] + w * g.xs[4]
                    if first:
                        for c in range(C):
                            iacc[c] = <uint64_t><int64_t>p[c * e]
                    else:
                        for c in range(C):
                            iacc[c] = iacc[c] + <uint64_t><int64_t>p[c * e]
                    first = False
        for c in range(C):
            o[c] = <pool_t>_int_quot(<int64_t>iacc[c], cnt, nearest)


cdef int _avg_cl(const pool_t* x, pool_t* out, const AGeo* g, bint nearest) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.osz[0] * g.osz[1] * g.osz[2]
    cdef Py_ssize_t per = _lines(g.C * sizeof(uint64_t))
    cdef char* buf = <char*>malloc(per * g.nthreads + LINE)
    cdef char* mine = NULL
    if buf == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(buf) + per * cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _avg_cl_item(x, out, g, it, <uint64_t*>mine, nearest)
    free(buf)
    return 0


# ------------------------------------------------------------ avg backward
# Plane-owned scatter: a work item owns an (n, c) plane (planar) or an
# (n, channel block) (channels-last) of the input gradient, zeroes it and
# adds every output gradient over its bin divided by the bin size.

cdef inline void _avg_bwd_plane(const real_t* go, real_t* gi, const AGeo* g,
                                Py_ssize_t it, real_t* gv) noexcept nogil:
    cdef Py_ssize_t n = it // g.C, c = it % g.C
    cdef Py_ssize_t od, oh, ow, d, h, w, e = g.xs[4], Ow = g.osz[2]
    cdef int64_t rows
    cdef real_t* row
    cdef const real_t* grow
    cdef real_t v
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            row = gi + n * g.xs[0] + c * g.xs[1] + d * g.xs[2] + h * g.xs[3]
            if e == 1:
                memset(row, 0, g.isz[2] * sizeof(real_t))
            else:
                for w in range(g.isz[2]):
                    row[w * e] = 0
    for od in range(g.osz[0]):
        for oh in range(g.osz[1]):
            rows = (g.hi[0][od] - g.lo[0][od]) * (g.hi[1][oh] - g.lo[1][oh])
            grow = go + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
            for ow in range(Ow):
                gv[ow] = grow[ow * g.os[4]] / <real_t>(rows * (g.hi[2][ow] - g.lo[2][ow]))
            for d in range(g.lo[0][od], g.hi[0][od]):
                for h in range(g.lo[1][oh], g.hi[1][oh]):
                    row = gi + n * g.xs[0] + c * g.xs[1] + d * g.xs[2] + h * g.xs[3]
                    for ow in range(Ow):
                        v = gv[ow]
                        for w in range(g.lo[2][ow], g.hi[2][ow]):
                            row[w * e] += v


cdef int _avg_bwd_planar(const real_t* go, real_t* gi, const AGeo* g) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.C
    cdef Py_ssize_t per = _lines(g.osz[2] * sizeof(real_t))
    cdef char* buf = <char*>malloc(per * g.nthreads + LINE)
    cdef char* mine = NULL
    if buf == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(buf) + per * cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _avg_bwd_plane(go, gi, g, it, <real_t*>mine)
    free(buf)
    return 0


cdef inline void _avg_bwd_cl_item(const real_t* go, real_t* gi, const AGeo* g,
                                  Py_ssize_t it) noexcept nogil:
    cdef Py_ssize_t nb = (g.C + g.cb - 1) // g.cb
    cdef Py_ssize_t n = it // nb, c0 = (it % nb) * g.cb, c1 = _imin(c0 + g.cb, g.C)
    cdef Py_ssize_t od, oh, ow, d, h, w, c
    cdef real_t cnt
    cdef real_t* p
    cdef const real_t* q
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            for w in range(g.isz[2]):
                p = gi + n * g.xs[0] + d * g.xs[2] + h * g.xs[3] + w * g.xs[4]
                for c in range(c0, c1):
                    p[c] = 0
    for od in range(g.osz[0]):
        for oh in range(g.osz[1]):
            for ow in range(g.osz[2]):
                cnt = <real_t>((g.hi[0][od] - g.lo[0][od]) * (g.hi[1][oh] - g.lo[1][oh])
                               * (g.hi[2][ow] - g.lo[2][ow]))
                q = go + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
                for d in range(g.lo[0][od], g.hi[0][od]):
                    for h in range(g.lo[1][oh], g.hi[1][oh]):
                        for w in range(g.lo[2][ow], g.hi[2][ow]):
                            p = gi + n * g.xs[0] + d * g.xs[2] + h * g.xs[3] + w * g.xs[4]
                            for c in range(c0, c1):
                                p[c] += q[c * g.os[1]] / cnt


cdef int _avg_bwd_cl(const real_t* go, real_t* gi, const AGeo* g) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * ((g.C + g.cb - 1) // g.cb)
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        for it in prange(nitems, schedule='static'):
            _avg_bwd_cl_item(go, gi, g, it)
    return 0


# ------------------------------------------------------------ global pooling

cdef inline void _gmax_run(const pool_t* p, Py_ssize_t len_, Py_ssize_t e,
                           int64_t base, pool_t* best, int64_t* bi,
                           bint* first) noexcept nogil:
    """Fold ``len_`` elements at stride ``e`` (flat indices from ``base``)
    into the running winner.  Unit-stride runs use eight interleaved partial
    winners (lane j sees elements j, j+8, ...), merged back into the
    scan-order winner: any NaN -> the NaN of largest index; otherwise the
    largest value, ties to the smallest index."""
    cdef Py_ssize_t i, j, k
    cdef pool_t m[8]
    cdef int64_t mi[8]
    cdef pool_t v
    cdef bint nan
    cdef pool_t rv
    cdef int64_t ri
    i = 0
    if e == 1 and len_ >= 16:
        for j in range(8):
            m[j] = p[j]
            mi[j] = j
        k = 8
        while k + 8 <= len_:
            for j in range(8):
                v = p[k + j]
                if _takes(v, m[j]):
                    m[j] = v
                    mi[j] = k + j
            k += 8
        # merge the lanes
        rv = m[0]
        ri = mi[0]
        nan = False
        if pool_t is float or pool_t is double:
            for j in range(8):
                if m[j] != m[j] and (not nan or mi[j] > ri):
                    nan = True
                    rv = m[j]
                    ri = mi[j]
        if not nan:
            for j in range(1, 8):
                if m[j] > rv or (m[j] == rv and mi[j] < ri):
                    rv = m[j]
                    ri = mi[j]
        if first[0] or _takes(rv, best[0]):
            best[0] = rv
            bi[0] = base + ri
            first[0] = False
        i = k
    for i in range(i, len_):
        v = p[i * e]
        if first[0] or _takes(v, best[0]):
            best[0] = v
            bi[0] = base + i
            first[0] = False


cdef inline pool_t _lane_max(const pool_t* p, Py_ssize_t n, bint* alarm) noexcept nogil:
    """The maximum of ``p[0:n]`` (n >= 1) by eight interleaved lanes of plain
    ``v > m ? v : m`` selects (they compile to vector max instructions).
    That select ignores NaN, so floats also sum each lane: a NaN input makes
    a sum NaN and raises ``alarm`` (so can inf - inf: a harmless false
    alarm), and the caller then scans exactly.  Only the value: which
    element holds it is found by the caller."""
    cdef pool_t m[8]
    cdef pool_t sm[8]
    cdef pool_t r = p[0], v, mj, t
    cdef Py_ssize_t i, j, k = 1
    alarm[0] = False
    if n >= 16:
        for j in range(8):
            m[j] = p[j]
            sm[j] = p[j]
        k = 8
        while k + 8 <= n:
            for j in range(8):
                v = p[k + j]
                mj = m[j]
                t = v if v > mj else mj
                m[j] = t
                if pool_t is float or pool_t is double:
                    sm[j] = sm[j] + v
            k += 8
        r = m[0]
        for j in range(1, 8):
            r = m[j] if m[j] > r else r
        for j in range(8):
            alarm[0] = alarm[0] | _isnan(sm[j])
    for i in range(k, n):
        v = p[i]
        if pool_t is float or pool_t is double:
            alarm[0] = alarm[0] | (v != v)
        r = v if v > r else r
    if pool_t is float or pool_t is double:
        alarm[0] = alarm[0] | (r != r)
    return r


cdef inline void _gmax_plane(const pool_t* x, pool_t* out, int64_t* idx,
                             const AGeo* g, Py_ssize_t it) noexcept nogil:
    cdef Py_ssize_t n = 0, c = it, d, h
    cdef Py_ssize_t H = g.isz[1], W = g.isz[2]
    cdef const pool_t* p
    if g.N > 1:
        n = it // g.C
        c = it % g.C
    p = x + n * g.xs[0] + c * g.xs[1]
    cdef pool_t best = p[0]
    cdef int64_t bi = 0
    cdef bint first = True
    cdef Py_ssize_t P = g.isz[0] * H * W, i
    cdef bint alarm = False
    if g.kw > 0 and g.xs[4] == 1:
        # contiguous plane: the value first (vectorised); then, where the
        # element matters (indices asked for, NaN payloads, the sign of a
        # zero), the scan-order winner: the last NaN, or else the first
        # element equal to the maximum (everything before it is smaller)
        best = _lane_max(p, P, &alarm)
        if alarm:
            # NaN (or inf - inf): the exact scan decides
            _gmax_run(p, P, 1, 0, &best, &bi, &first)
        elif pool_t is float or pool_t is double:
            if idx != NULL or best == 0:
                i = 0
                while not (p[i] == best):
                    i += 1
                bi = i
                best = p[i]
        elif idx != NULL:
            i = 0
            while p[i] != best:
                i += 1
            bi = i
    elif g.kw > 0:      # the plane is one run at a uniform stride
        _gmax_run(p, g.isz[0] * H * W, g.xs[4], 0, &best, &bi, &first)
    else:
        for d in range(g.isz[0]):
            for h in range(H):
                _gmax_run(p + d * g.xs[2] + h * g.xs[3], W, g.xs[4], (d * H + h) * W,
                          &best, &bi, &first)
    out[n * g.os[0] + c * g.os[1]] = best
    if idx != NULL:
        idx[n * g.js[0] + c * g.js[1]] = bi


cdef inline real_t _gsum_run(const real_t* p, Py_ssize_t len_,
                             Py_ssize_t e) noexcept nogil:
    """Sum of a run in real_t; unit stride with eight accumulators."""
    cdef Py_ssize_t i = 0, j
    cdef real_t a[8]
    cdef real_t s = 0
    if e == 1 and len_ >= 8:
        for j in range(8):
            a[j] = <real_t>p[j]
        i = 8
        while i + 8 <= len_:
            for j in range(8):
                a[j] = a[j] + <real_t>p[i + j]
            i += 8
        s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    for i in range(i, len_):
        s = s + <real_t>p[i * e]
    return s


cdef inline real_t _gsum_strided(const real_t* p, const AGeo* g) noexcept nogil:
    """``_gsum_run``'s exact order (eight lanes over the plane's flat scan
    position, then a left-to-right tail) for planes at any strides, so that
    every memory layout gives the same bits."""
    cdef Py_ssize_t P = g.isz[0] * g.isz[1] * g.isz[2], d, h, w, k = 0
    cdef Py_ssize_t full = (P // 8) * 8
    cdef real_t a[8]
    cdef real_t s = 0, v
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            for w in range(g.isz[2]):
                v = p[d * g.xs[2] + h * g.xs[3] + w * g.xs[4]]
                if k < 8 and k < full:
                    a[k] = v
                elif k < full:
                    a[k & 7] = a[k & 7] + v
                else:
                    if k == full and full > 0:
                        s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
                    s = s + v
                k += 1
    if full == P and full > 0:
        s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    return s


cdef inline uint64_t _gsum_int_run(const int_t* p, Py_ssize_t len_,
                                   Py_ssize_t e) noexcept nogil:
    cdef Py_ssize_t i
    cdef uint64_t s = 0
    if e == 1:
        for i in range(len_):
            s = s + <uint64_t><int64_t>p[i]
    else:
        for i in range(len_):
            s = s + <uint64_t><int64_t>p[i * e]
    return s


cdef inline void _gavg_plane(const pool_t* x, pool_t* out, const AGeo* g,
                             Py_ssize_t it, bint nearest) noexcept nogil:
    cdef Py_ssize_t n = 0, c = it, d, h
    cdef const pool_t* p
    cdef int64_t P = g.isz[0] * g.isz[1] * g.isz[2]
    cdef pool_t s = 0
    cdef uint64_t si = 0
    if g.N > 1:
        n = it // g.C
        c = it % g.C
    p = x + n * g.xs[0] + c * g.xs[1]
    if pool_t is float or pool_t is double:
        if g.kw > 0 and g.xs[4] == 1:
            s = _gsum_run(p, P, 1)
        else:
            s = _gsum_strided(p, g)
        out[n * g.os[0] + c * g.os[1]] = s / <pool_t>P
    else:
        if g.kw > 0:
            si = _gsum_int_run(p, P, g.xs[4])
        else:
            for d in range(g.isz[0]):
                for h in range(g.isz[1]):
                    si = si + _gsum_int_run(p + d * g.xs[2] + h * g.xs[3], g.isz[2],
                                            g.xs[4])
        out[n * g.os[0] + c * g.os[1]] = <pool_t>_int_quot(<int64_t>si, P, nearest)


# How far ahead (bytes) the contiguous global average hints its input; 0:
# no hints.
cdef Py_ssize_t _GAVG_AHEAD = 8192
# ... for inputs of at least this many bytes.  Measured on float32
# (n, 2048, 7, 7), 0.8-24.5 MiB, with the input read just before (in the
# caches), written just before (dirty lines, as a previous layer leaves
# them) or evicted, 1 and 2 threads: 0.96-1.53x, 1.04-1.25x at 12.2 MiB;
# from memory (320, 2048, 7, 7) 1.2-1.3x.  (An earlier measurement of
# 1.13-1.15x slower from the last-level cache at 12.2 MiB did not repeat.)
cdef Py_ssize_t _GAVG_MIN = 1 << 20


def _gavg_hints(Py_ssize_t ahead=-1, Py_ssize_t min_bytes=-1):
    """``(distance, smallest input)`` of the contiguous global average's
    hints, in bytes (distance 0: none); arguments ``>= 0`` set them (tests
    hint small inputs).  Returns the previous pair."""
    global _GAVG_AHEAD, _GAVG_MIN
    cdef tuple old = (_GAVG_AHEAD, _GAVG_MIN)
    if ahead >= 0:
        _GAVG_AHEAD = ahead
    if min_bytes >= 0:
        _GAVG_MIN = min_bytes
    return old


cdef inline void _gavg_block(const real_t* x, real_t* out, const AGeo* g,
                             Py_ssize_t it) noexcept nogil:
    """Planes [it*PLANE_BLOCK, ...) of contiguous planes (N merged into C):
    a running pointer, no per-plane index arithmetic."""
    cdef Py_ssize_t c, c0 = it * PLANE_BLOCK, c1 = _imin(c0 + PLANE_BLOCK, g.C)
    cdef Py_ssize_t P = g.isz[0] * g.isz[1] * g.isz[2], xs1 = g.xs[1], os1 = g.os[1]
    cdef const real_t* p = x + c0 * xs1
    cdef real_t* o = out + c0 * os1
    cdef real_t div = <real_t>P
    cdef Py_ssize_t ahead = _GAVG_AHEAD
    if g.C * P * <Py_ssize_t>sizeof(real_t) < _GAVG_MIN:
        ahead = 0
    # hint the lines _GAVG_AHEAD bytes on, each line once: the sums of small
    # planes keep too few loads in flight for the hardware prefetcher alone
    cdef const char* nxt = <const char*>(<size_t>(<const char*>p + ahead) & ~(<size_t>63))
    cdef const char* end
    for c in range(c1 - c0):
        if ahead > 0:
            end = <const char*>(p + P) + ahead
            while nxt < end:
                cypool_prefetch(nxt)
                nxt += 64
        o[c * os1] = _gsum_run(p, P, 1) / div
        p += xs1


cdef int _global_planar(const pool_t* x, pool_t* out, int64_t* idx, const AGeo* g,
                        bint is_max, bint nearest) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.C
    if pool_t is float or pool_t is double:
        if not is_max and g.N == 1 and g.kw > 0 and g.xs[4] == 1:
            nitems = (g.C + PLANE_BLOCK - 1) // PLANE_BLOCK
            with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
                for it in prange(nitems, schedule='static'):
                    _gavg_block(x, out, g, it)
            return 0
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        for it in prange(nitems, schedule='static'):
            if is_max:
                _gmax_plane(x, out, idx, g, it)
            else:
                _gavg_plane(x, out, g, it, nearest)
    return 0


cdef inline void _gcl_sum(const real_t* x, real_t* o, real_t* A, const AGeo* g,
                          Py_ssize_t n, Py_ssize_t c0, Py_ssize_t m, Py_ssize_t e,
                          Py_ssize_t s1) noexcept nogil:
    """Means of channels [c0, c0+m) of sample n in the planar kernel's exact
    order: eight lanes ``A`` (8 x m) over the flat scan position, combined
    as a tree, then the tail left to right."""
    cdef Py_ssize_t P = g.isz[0] * g.isz[1] * g.isz[2], d, h, w, k = 0, c, j
    cdef Py_ssize_t full = (P // 8) * 8
    cdef const real_t* q
    cdef real_t* a
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            for w in range(g.isz[2]):
                q = x + n * g.xs[0] + d * g.xs[2] + h * g.xs[3] + w * g.xs[4] + c0 * e
                if k < full:
                    a = A + (k & 7) * m
                    if k < 8:
                        for c in range(m):
                            a[c] = q[c * e]
                    else:
                        for c in range(m):
                            a[c] = a[c] + q[c * e]
                else:
                    if k == full:
                        if full > 0:
                            for c in range(m):
                                o[c * s1] = (((A[c] + A[4 * m + c]) + (A[2 * m + c] + A[6 * m + c]))
                                             + ((A[m + c] + A[5 * m + c])
                                                + (A[3 * m + c] + A[7 * m + c])))
                        else:
                            for c in range(m):
                                o[c * s1] = 0
                    for c in range(m):
                        o[c * s1] = o[c * s1] + q[c * e]
                k += 1
    if full == P:
        for c in range(m):
            o[c * s1] = (((A[c] + A[4 * m + c]) + (A[2 * m + c] + A[6 * m + c]))
                         + ((A[m + c] + A[5 * m + c]) + (A[3 * m + c] + A[7 * m + c])))
    for c in range(m):
        o[c * s1] = o[c * s1] / <real_t>P


cdef inline void _global_cl_item(const pool_t* x, pool_t* out, int64_t* idx,
                                 const AGeo* g, Py_ssize_t it, uint64_t* iacc,
                                 bint is_max, bint nearest) noexcept nogil:
    """Channels [c0, c1) of sample n: every spatial position in scan order
    updates the channel vector (max with indices, or sum).  Unit channel
    strides (the usual case) get loops of their own, which vectorise."""
    cdef Py_ssize_t nb = (g.C + g.cb - 1) // g.cb
    cdef Py_ssize_t n = it // nb, c0 = (it % nb) * g.cb, c1 = _imin(c0 + g.cb, g.C)
    cdef Py_ssize_t d, h, w, c, e = g.xs[1], s1 = g.os[1], j1 = g.js[1]
    cdef Py_ssize_t m = c1 - c0
    cdef int64_t P = g.isz[0] * g.isz[1] * g.isz[2], flat = 0
    cdef const pool_t* p
    cdef pool_t* o = out + n * g.os[0] + c0 * s1
    cdef int64_t* oi = NULL
    cdef pool_t v
    cdef bint first = True
    cdef bint unit = e == 1 and s1 == 1 and (idx == NULL or j1 == 1)
    if idx != NULL:
        oi = idx + n * g.js[0] + c0 * j1
    if pool_t is float or pool_t is double:
        if not is_max:
            if unit:
                _gcl_sum(x, o, <pool_t*>iacc, g, n, c0, m, 1, 1)
            else:
                _gcl_sum(x, o, <pool_t*>iacc, g, n, c0, m, e, s1)
            return
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            for w in range(g.isz[2]):
                p = x + n * g.xs[0] + d * g.xs[2] + h * g.xs[3] + w * g.xs[4] + c0 * e
                if first:
                    if is_max or pool_t is float or pool_t is double:
                        for c in range(m):
                            o[c * s1] = p[c * e]
                        if oi != NULL:
                            for c in range(m):
                                oi[c * j1] = 0
                    else:
                        for c in range(m):
                            iacc[c] = <uint64_t><int64_t>p[c * e]
                elif is_max:
                    if unit and oi == NULL:
                        for c in range(m):
                            v = p[c]
                            o[c] = v if _takes(v, o[c]) else o[c]
                    elif unit:
                        for c in range(m):
                            v = p[c]
                            if _takes(v, o[c]):
                                o[c] = v
                                oi[c] = flat
                    else:
                        for c in range(m):
                            v = p[c * e]
                            if _takes(v, o[c * s1]):
                                o[c * s1] = v
                                if oi != NULL:
                                    oi[c * j1] = flat
                elif pool_t is float or pool_t is double:
                    if unit:
                        pass    # summed four positions at a time below
                    else:
                        for c in range(m):
                            o[c * s1] = o[c * s1] + p[c * e]
                elif e == 1:
                    for c in range(m):
                        iacc[c] = iacc[c] + <uint64_t><int64_t>p[c]
                else:
                    for c in range(m):
                        iacc[c] = iacc[c] + <uint64_t><int64_t>p[c * e]
                first = False
                flat += 1
    if not is_max:
        if pool_t is float or pool_t is double:
            for c in range(m):
                o[c * s1] = o[c * s1] / <pool_t>P
        else:
            for c in range(m):
                o[c * s1] = <pool_t>_int_quot(<int64_t>iacc[c], P, nearest)


cdef int _global_cl(const pool_t* x, pool_t* out, int64_t* idx, const AGeo* g,
                    bint is_max, bint nearest) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * ((g.C + g.cb - 1) // g.cb)
    cdef Py_ssize_t per = _lines(8 * g.cb * sizeof(uint64_t))
    cdef char* buf = <char*>malloc(per * g.nthreads + LINE)
    cdef char* mine = NULL
    if buf == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(buf) + per * cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _global_cl_item(x, out, idx, g, it, <uint64_t*>mine, is_max, nearest)
    free(buf)
    return 0


cdef inline void _gavg_bwd_plane(const real_t* go, real_t* gi, const AGeo* g,
                                 Py_ssize_t it) noexcept nogil:
    cdef Py_ssize_t n = it // g.C, c = it % g.C, d, h, w, e = g.xs[4]
    cdef real_t v = go[n * g.os[0] + c * g.os[1]] / <real_t>(g.isz[0] * g.isz[1] * g.isz[2])
    cdef real_t* row
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            row = gi + n * g.xs[0] + c * g.xs[1] + d * g.xs[2] + h * g.xs[3]
            if e == 1:
                for w in range(g.isz[2]):
                    row[w] = v
            else:
                for w in range(g.isz[2]):
                    row[w * e] = v


cdef inline void _gavg_bwd_cl_item(const real_t* go, real_t* gi, const AGeo* g,
                                   Py_ssize_t it, real_t* gv) noexcept nogil:
    cdef Py_ssize_t nb = (g.C + g.cb - 1) // g.cb
    cdef Py_ssize_t n = it // nb, c0 = (it % nb) * g.cb, c1 = _imin(c0 + g.cb, g.C)
    cdef Py_ssize_t d, h, w, c, e = g.xs[1]
    cdef real_t P = <real_t>(g.isz[0] * g.isz[1] * g.isz[2])
    cdef real_t* p
    for c in range(c0, c1):
        gv[c - c0] = go[n * g.os[0] + c * g.os[1]] / P
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            for w in range(g.isz[2]):
                p = gi + n * g.xs[0] + d * g.xs[2] + h * g.xs[3] + w * g.xs[4]
                for c in range(c0, c1):
                    p[c * e] = gv[c - c0]


cdef int _gavg_bwd(const real_t* go, real_t* gi, const AGeo* g, bint cl) noexcept nogil:
    cdef Py_ssize_t it, nitems
    cdef Py_ssize_t per = _lines(g.cb * sizeof(real_t))
    cdef char* buf
    cdef char* mine = NULL
    if not cl:
        nitems = g.N * g.C
        with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
            for it in prange(nitems, schedule='static'):
                _gavg_bwd_plane(go, gi, g, it)
        return 0
    nitems = g.N * ((g.C + g.cb - 1) // g.cb)
    buf = <char*>malloc(per * g.nthreads + LINE)
    if buf == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(buf) + per * cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _gavg_bwd_cl_item(go, gi, g, it, <real_t*>mine)
    free(buf)
    return 0


# ------------------------------------------------------- Python interface

cdef int _strides5(cnp.ndarray a, str name, Py_ssize_t* strides, Py_ssize_t* dims) except -1:
    cdef int i
    cdef Py_ssize_t item
    if cnp.PyArray_NDIM(a) != 5:
        raise ValueError(f"{name} must be 5-d (N, C, D, H, W)")
    item = cnp.PyArray_ITEMSIZE(a)
    for i in range(5):
        if cnp.PyArray_STRIDES(a)[i] % item != 0:
            raise ValueError(f"{name} strides must be multiples of its item size")
        strides[i] = cnp.PyArray_STRIDES(a)[i] // item
        dims[i] = cnp.PyArray_DIMS(a)[i]
    return 0


cdef int _setup(AGeo* g, cnp.ndarray big, cnp.ndarray small, cnp.ndarray idx,
                bint writes_big, int nthreads) except -1:
    """Sizes and strides of the input-shaped array ``big`` and the
    output-shaped ``small`` (and ``idx``), checked for consistency."""
    cdef Py_ssize_t db[5]
    cdef Py_ssize_t ds[5]
    cdef Py_ssize_t di[5]
    cdef int i
    _strides5(big, "input", g.xs, db)
    _strides5(small, "output", g.os, ds)
    if db[0] != ds[0] or db[1] != ds[1]:
        raise ValueError("batch/channel sizes of input and output differ")
    if cnp.PyArray_TYPE(big) != cnp.PyArray_TYPE(small):
        raise TypeError("input and output dtypes differ")
    if not cnp.PyArray_ISWRITEABLE(big if writes_big else small):
        raise ValueError("the result array is read-only")
    g.N = db[0]
    g.C = db[1]
    for i in range(3):
        g.isz[i] = db[2 + i]
        g.osz[i] = ds[2 + i]
        if g.isz[i] < 1 or g.osz[i] < 1:
            raise ValueError("spatial sizes must be positive")
        g.lo[i] = NULL
        g.hi[i] = NULL
    if idx is not None:
        _strides5(idx, "indices", g.js, di)
        if cnp.PyArray_TYPE(idx) != cnp.NPY_INT64:
            raise TypeError("indices must be int64")
        if not cnp.PyArray_ISWRITEABLE(idx):
            raise ValueError("indices are read-only")
        for i in range(5):
            if di[i] != ds[i]:
                raise ValueError("indices must have the output's shape")
    else:
        for i in range(5):
            g.js[i] = 0
    g.nthreads = nthreads if nthreads > 1 else 1
    g.kw = 0
    g.cb = g.C if g.C > 0 else 1
    g.band = g.osz[1]
    g.nband = 1
    g.fixed = False
    g.kh = 0
    return 0


cdef Py_ssize_t* _bins(AGeo* g) except NULL:
    cdef Py_ssize_t total = 2 * (g.osz[0] + g.osz[1] + g.osz[2]), off = 0
    cdef Py_ssize_t* tab = <Py_ssize_t*>malloc(total * sizeof(Py_ssize_t))
    cdef int i
    if tab == NULL:
        raise MemoryError()
    for i in range(3):
        g.lo[i] = tab + off
        g.hi[i] = tab + off + g.osz[i]
        off += 2 * g.osz[i]
        _fill_bins(g.isz[i], g.osz[i], g.lo[i], g.hi[i])
    g.kw = g.isz[2] // g.osz[2] if g.isz[2] % g.osz[2] == 0 else 0
    g.fixed = (g.kw > 0 and g.isz[1] % g.osz[1] == 0 and g.isz[0] == g.osz[0]
               and g.xs[4] == 1 and g.os[4] == 1 and g.js[4] <= 1)
    g.kh = g.isz[1] // g.osz[1] if g.fixed else 0
    return tab


cdef void _threads(AGeo* g, Py_ssize_t items, double work) noexcept:
    g.nthreads = <int>_imax(1, _imin(g.nthreads, items))
    g.parallel = g.nthreads > 1 and work >= PARALLEL_MIN_WORK


cdef void _merge_planes(AGeo* g, bint has_idx) noexcept:
    """Planes evenly spaced across the batch (contiguous NC... arrays): view
    N x C planes as 1 x (N*C), so work items need no division by C."""
    if g.N > 1 and g.xs[0] == g.C * g.xs[1] and g.os[0] == g.C * g.os[1] and (
            not has_idx or g.js[0] == g.C * g.js[1]):
        g.C = g.N * g.C
        g.N = 1


cdef void _plan_rows(AGeo* g, double work) noexcept:
    """Planar work items: (n, c, od) groups of whole output planes while there
    are enough of them (4 per thread), else bands of output rows."""
    cdef Py_ssize_t want = 4 * g.nthreads if g.nthreads > 1 else 1
    cdef Py_ssize_t outer = g.N * g.C * g.osz[0], nb = 1
    if outer < want:
        nb = _imin(g.osz[1], (want + outer - 1) // outer)
    g.band = (g.osz[1] + nb - 1) // nb
    g.nband = (g.osz[1] + g.band - 1) // g.band
    _threads(g, outer * g.nband, work)


cdef bint _cl_layout(const AGeo* g, const Py_ssize_t* s) noexcept:
    """Channels-last memory (channel axis contiguous, W not)?"""
    return g.C > 1 and s[1] == 1 and s[4] != 1


cdef void _channel_blocks(AGeo* g, double work) noexcept:
    """Channel blocks of channels-last plane-owning items: whole samples
    while there are enough (4 per thread), else blocks of >= 16 channels."""
    cdef Py_ssize_t want = 4 * g.nthreads if g.nthreads > 1 else 1
    cdef Py_ssize_t nb = 1
    if g.N < want:
        nb = _imin(_imax(1, g.C // 16), (want + g.N - 1) // _imax(g.N, 1))
    g.cb = _imax(1, (g.C + nb - 1) // nb)
    _threads(g, g.N * ((g.C + g.cb - 1) // g.cb), work)


cdef double _bin_work(const AGeo* g) noexcept:
    """Element reads of an adaptive pass: every input element once, plus
    the overlap (at most one extra element per bin and dimension)."""
    cdef double w = <double>g.N * g.C
    cdef int i
    for i in range(3):
        w *= <double>(_imax(g.isz[i], g.osz[i]) + g.osz[i])
    return w


def adaptive_max_forward(cnp.ndarray x not None, cnp.ndarray out not None,
                         cnp.ndarray idx, int nthreads):
    """Adaptive max pooling of 5-d ``x`` into ``out`` (and ``idx`` unless None)."""
    cdef AGeo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int64_t* ip = NULL
    _setup(&g, x, out, idx, False, nthreads)
    if idx is not None:
        ip = <int64_t*>cnp.PyArray_DATA(idx)
    if g.N * g.C == 0:
        return
    cdef Py_ssize_t* tab = _bins(&g)
    cdef bint cl = _cl_layout(&g, g.os) and (idx is None or g.js[1] == 1)
    if cl:
        _threads(&g, g.N * g.osz[0] * g.osz[1] * g.osz[2], _bin_work(&g))
    else:
        _merge_planes(&g, idx is not None)
        _plan_rows(&g, _bin_work(&g))
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _max_cl(<const float*>xp, <float*>op, ip, &g) if cl else _max_planar(<const float*>xp, <float*>op, ip, &g)
        elif typenum == cnp.NPY_FLOAT64:
            rc = _max_cl(<const double*>xp, <double*>op, ip, &g) if cl else _max_planar(<const double*>xp, <double*>op, ip, &g)
        elif typenum == cnp.NPY_INT8:
            rc = _max_cl(<const int8_t*>xp, <int8_t*>op, ip, &g) if cl else _max_planar(<const int8_t*>xp, <int8_t*>op, ip, &g)
        elif typenum == cnp.NPY_UINT8:
            rc = _max_cl(<const uint8_t*>xp, <uint8_t*>op, ip, &g) if cl else _max_planar(<const uint8_t*>xp, <uint8_t*>op, ip, &g)
        elif typenum == cnp.NPY_INT16:
            rc = _max_cl(<const int16_t*>xp, <int16_t*>op, ip, &g) if cl else _max_planar(<const int16_t*>xp, <int16_t*>op, ip, &g)
        elif typenum == cnp.NPY_UINT16:
            rc = _max_cl(<const uint16_t*>xp, <uint16_t*>op, ip, &g) if cl else _max_planar(<const uint16_t*>xp, <uint16_t*>op, ip, &g)
        elif typenum == cnp.NPY_INT32:
            rc = _max_cl(<const int32_t*>xp, <int32_t*>op, ip, &g) if cl else _max_planar(<const int32_t*>xp, <int32_t*>op, ip, &g)
        elif typenum == cnp.NPY_INT64:
            rc = _max_cl(<const int64_t*>xp, <int64_t*>op, ip, &g) if cl else _max_planar(<const int64_t*>xp, <int64_t*>op, ip, &g)
        else:
            rc = -3
    free(tab)
    _raise(rc, x)


cdef int _raise(int rc, cnp.ndarray x) except -1:
    if rc == -1:
        raise MemoryError()
    if rc == -3:
        raise TypeError(f"unsupported dtype {x.dtype}")
    return 0


def adaptive_avg_forward(cnp.ndarray x not None, cnp.ndarray out not None,
                         bint nearest, int nthreads):
    """Adaptive average pooling of 5-d ``x`` into ``out`` (integer input:
    exact quotients, truncated or rounded to nearest)."""
    cdef AGeo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    _setup(&g, x, out, None, False, nthreads)
    if g.N * g.C == 0:
        return
    cdef Py_ssize_t* tab = _bins(&g)
    cdef bint cl = _cl_layout(&g, g.os)
    if cl:
        _threads(&g, g.N * g.osz[0] * g.osz[1] * g.osz[2], _bin_work(&g))
    else:
        _merge_planes(&g, False)
        _plan_rows(&g, _bin_work(&g))
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _avg_cl(<const float*>xp, <float*>op, &g, nearest) if cl else _avg_planar(<const float*>xp, <float*>op, &g)
        elif typenum == cnp.NPY_FLOAT64:
            rc = _avg_cl(<const double*>xp, <double*>op, &g, nearest) if cl else _avg_planar(<const double*>xp, <double*>op, &g)
        elif typenum == cnp.NPY_INT8:
            rc = _avg_cl(<const int8_t*>xp, <int8_t*>op, &g, nearest) if cl else _avg_int_planar(<const int8_t*>xp, <int8_t*>op, &g, nearest)
        elif typenum == cnp.NPY_UINT8:
            rc = _avg_cl(<const uint8_t*>xp, <uint8_t*>op, &g, nearest) if cl else _avg_int_planar(<const uint8_t*>xp, <uint8_t*>op, &g, nearest)
        elif typenum == cnp.NPY_INT16:
            rc = _avg_cl(<const int16_t*>xp, <int16_t*>op, &g, nearest) if cl else _avg_int_planar(<const int16_t*>xp, <int16_t*>op, &g, nearest)
        elif typenum == cnp.NPY_UINT16:
            rc = _avg_cl(<const uint16_t*>xp, <uint16_t*>op, &g, nearest) if cl else _avg_int_planar(<const uint16_t*>xp, <uint16_t*>op, &g, nearest)
        elif typenum == cnp.NPY_INT32:
            rc = _avg_cl(<const int32_t*>xp, <int32_t*>op, &g, nearest) if cl else _avg_int_planar(<const int32_t*>xp, <int32_t*>op, &g, nearest)
        elif typenum == cnp.NPY_INT64:
            rc = _avg_cl(<const int64_t*>xp, <int64_t*>op, &g, nearest) if cl else _avg_int_planar(<const int64_t*>xp, <int64_t*>op, &g, nearest)
        else:
            rc = -3
    free(tab)
    _raise(rc, x)


def adaptive_avg_backward(cnp.ndarray grad_out not None, cnp.ndarray grad_in not None,
                          int nthreads):
    """Fill ``grad_in`` (5-d, float) with the adaptive average gradient."""
    cdef AGeo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    cdef const void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    _setup(&g, grad_in, grad_out, None, True, nthreads)
    if g.N * g.C == 0:
        return
    cdef Py_ssize_t* tab = _bins(&g)
    cdef bint cl = _cl_layout(&g, g.xs)
    if cl:
        _channel_blocks(&g, _bin_work(&g))
    else:
        _threads(&g, g.N * g.C, _bin_work(&g))
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _avg_bwd_cl(<const float*>gop, <float*>gip, &g) if cl else _avg_bwd_planar(<const float*>gop, <float*>gip, &g)
        elif typenum == cnp.NPY_FLOAT64:
            rc = _avg_bwd_cl(<const double*>gop, <double*>gip, &g) if cl else _avg_bwd_planar(<const double*>gop, <double*>gip, &g)
        else:
            rc = -3
    free(tab)
    _raise(rc, grad_out)


cdef bint _flat_plane(const AGeo* g) noexcept:
    """Are a plane's elements at one uniform stride (one run)?"""
    return (g.isz[1] == 1 or g.xs[3] == g.isz[2] * g.xs[4]) and (
        g.isz[0] == 1 or g.xs[2] == g.isz[1] * g.isz[2] * g.xs[4]) or (
        g.isz[0] * g.isz[1] == 1)


cdef _global(cnp.ndarray x, cnp.ndarray out, cnp.ndarray idx, bint is_max,
             bint nearest, int nthreads):
    cdef AGeo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int64_t* ip = NULL
    _setup(&g, x, out, idx, False, nthreads)
    if g.osz[0] != 1 or g.osz[1] != 1 or g.osz[2] != 1:
        raise ValueError("global pooling output must be (N, C, 1, 1, 1)")
    if idx is not None:
        ip = <int64_t*>cnp.PyArray_DATA(idx)
    if g.N * g.C == 0:
        return
    cdef double work = <double>g.N * g.C * g.isz[0] * g.isz[1] * g.isz[2]
    cdef bint cl = g.C > 1 and g.xs[1] == 1 and g.xs[4] != 1
    if cl:
        _channel_blocks(&g, work)
        if g.cb > 256:      # eight lane vectors of cb values stay in L1
            g.cb = 256
            _threads(&g, g.N * ((g.C + g.cb - 1) // g.cb), work)
    else:
        g.kw = 1 if _flat_plane(&g) else 0
        _merge_planes(&g, idx is not None)
        _threads(&g, g.N * g.C if is_max or g.N > 1 else (g.C + PLANE_BLOCK - 1) // PLANE_BLOCK,
                 work)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _global_cl(<const float*>xp, <float*>op, ip, &g, is_max, nearest) if cl else _global_planar(<const float*>xp, <float*>op, ip, &g, is_max, nearest)
        elif typenum == cnp.NPY_FLOAT64:
            rc = _global_cl(<const double*>xp, <double*>op, ip, &g, is_max, nearest) if cl else _global_planar(<const double*>xp, <double*>op, ip, &g, is_max, nearest)
        elif typenum == cnp.NPY_INT8:
            rc = _global_cl(<const int8_t*>xp, <int8_t*>op, ip, &g, is_max, nearest) if cl else _global_planar(<const int8_t*>xp, <int8_t*>op, ip, &g, is_max, nearest)
        elif typenum == cnp.NPY_UINT8:
            rc = _global_cl(<const uint8_t*>xp, <uint8_t*>op, ip, &g, is_max, nearest) if cl else _global_planar(<const uint8_t*>xp, <uint8_t*>op, ip, &g, is_max, nearest)
        elif typenum == cnp.NPY_INT16:
            rc = _global_cl(<const int16_t*>xp, <int16_t*>op, ip, &g, is_max, nearest) if cl else _global_planar(<const int16_t*>xp, <int16_t*>op, ip, &g, is_max, nearest)
        elif typenum == cnp.NPY_UINT16:
            rc = _global_cl(<const uint16_t*>xp, <uint16_t*>op, ip, &g, is_max, nearest) if cl else _global_planar(<const uint16_t*>xp, <uint16_t*>op, ip, &g, is_max, nearest)
        elif typenum == cnp.NPY_INT32:
            rc = _global_cl(<const int32_t*>xp, <int32_t*>op, ip, &g, is_max, nearest) if cl else _global_planar(<const int32_t*>xp, <int32_t*>op, ip, &g, is_max, nearest)
        elif typenum == cnp.NPY_INT64:
            rc = _global_cl(<const int64_t*>xp, <int64_t*>op, ip, &g, is_max, nearest) if cl else _global_planar(<const int64_t*>xp, <int64_t*>op, ip, &g, is_max, nearest)
        else:
            rc = -3
    _raise(rc, x)


def global_max_forward(cnp.ndarray x not None, cnp.ndarray out not None,
                       cnp.ndarray idx, int nthreads):
    """The maximum (and its flat index unless ``idx`` is None) of every
    plane of 5-d ``x`` into ``out`` of shape ``(N, C, 1, 1, 1)``."""
    _global(x, out, idx, True, False, nthreads)


def global_avg_forward(cnp.ndarray x not None, cnp.ndarray out not None,
                       bint nearest, int nthreads):
    """The mean of every plane of 5-d ``x`` into ``out`` ``(N, C, 1, 1, 1)``."""
    _global(x, out, None, False, nearest, nthreads)


def global_avg_backward(cnp.ndarray grad_out not None, cnp.ndarray grad_in not None,
                        int nthreads):
    """Every element of plane (n, c) of ``grad_in`` gets ``grad_out[n, c] / size``."""
    cdef AGeo g
    cdef int rc = 0
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    cdef const void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    _setup(&g, grad_in, grad_out, None, True, nthreads)
    if g.osz[0] != 1 or g.osz[1] != 1 or g.osz[2] != 1:
        raise ValueError("grad_out must be (N, C, 1, 1, 1)")
    if g.N * g.C == 0:
        return
    cdef double work = <double>g.N * g.C * g.isz[0] * g.isz[1] * g.isz[2]
    cdef bint cl = _cl_layout(&g, g.xs)
    if cl:
        _channel_blocks(&g, work)
    else:
        _threads(&g, g.N * g.C, work)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _gavg_bwd(<const float*>gop, <float*>gip, &g, cl)
        elif typenum == cnp.NPY_FLOAT64:
            rc = _gavg_bwd(<const double*>gop, <double*>gip, &g, cl)
        else:
            rc = -3
    _raise(rc, grad_out)
