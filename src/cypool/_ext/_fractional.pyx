# cython: language_level=3, cdivision=True, cpow=True
# (boundscheck, wraparound, initializedcheck and nonecheck are set for the
# whole build in setup.py: off, or on with CYPOOL_CYTHON_DEBUG=1)
"""Fractional max pooling kernels (forward; the backward is max pooling's
index scatter in ``_pool``).

Every array arrives as a 5-d ``(N, C, D, H, W)`` view with arbitrary element
strides (2-d input carries a singleton D axis with kernel 1).  Window starts
follow PyTorch's ``generate_intervals`` in float32 (``single``) or float64
arithmetic, one sample per (n, c, dimension) from ``u`` (``(N, C, 3)``
float64, in (D, H, W) order), and are clamped to ``[0, In - k]`` so that no
window can leave the input whatever the rounding.

Two loop orders, both visiting the taps of every window in PyTorch's
row-major ``(kd, kh, kw)`` order with the branch-free update
``v > best or v != v`` (so NaN, ties and indices are PyTorch's):

* planes (``C`` not the most contiguous axis): a work item is a band of
  output rows ``(od, oh)`` of one ``(n, c)`` plane.  The plane's W starts are
  tabulated once per item; each tap is then staged for the whole output row
  (a gather through the table, or a constant-stride copy when the starts
  step evenly by 1 or 2) and applied by a vectorised branch-free update.
  Indices are tracked as tap numbers stored in the value dtype (same width
  as the values, so both selects vectorise) and turned into flat offsets
  once per output row; where the dtype cannot number every tap (8/16-bit
  integers with huge kernels) int64 indices are selected with bit masks.
* channels-last (``C`` the most contiguous axis): a work item is a band of
  output rows of one image ``n`` with all channels.  Each channel has its own
  windows, so the W starts are tabulated ``[ow][c]`` and, per output row, the
  row offsets of every ``(kd, kh)`` tap ``[tap][c]``; each tap then gathers
  along the contiguous channel axis, where neighbouring channels' windows lie
  within a few pixels of each other (the input is read about once), and the
  same vectorised update runs over the channels.

Validation happens in Python (``cypool._fractional``); the ``def`` here only
checks what memory safety depends on.
"""

cimport numpy as cnp
from libc.stdlib cimport malloc, free
from cython.parallel cimport prange, parallel
from libc.stdint cimport (int8_t, uint8_t, int16_t, uint16_t, int32_t,
                          int64_t)

cnp.import_array()

from cypool._ext.omp_shim cimport cypool_omp_get_thread_num


ctypedef fused pool_t:
    float
    double
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
    # Per-thread scratch is padded to whole cache lines (no false sharing).
    LINE = 64


cdef struct Geo:
    Py_ssize_t N
    Py_ssize_t C
    Py_ssize_t isz[3]      # input spatial size (D, H, W)
    Py_ssize_t osz[3]      # output spatial size
    Py_ssize_t ks[3]       # kernel
    Py_ssize_t xs[5]       # input strides (elements)
    Py_ssize_t os[5]       # output strides (elements)
    Py_ssize_t js[5]       # indices strides (elements)
    const double* u        # (N, C, 3) samples, C-contiguous
    bint single            # interval arithmetic in float32
    Py_ssize_t band        # output rows (od, oh) per work item
    Py_ssize_t nband       # work items per plane (or image)
    Py_ssize_t per         # bytes of scratch per thread
    int nthreads
    bint parallel


# ---------------------------------------------------------------- intervals

cdef inline Py_ssize_t _clamp(Py_ssize_t s, Py_ssize_t hi) noexcept nogil:
    if s < 0:
        return 0
    if s > hi:
        return hi
    return s


cdef inline Py_ssize_t _start(double u, Py_ssize_t i, Py_ssize_t In, Py_ssize_t Out,
                              Py_ssize_t k, bint single) noexcept nogil:
    """Start of window ``i``: PyTorch's ``generate_intervals``, each
    operation rounded to float32 when ``single`` (as for float32 tensors)."""
    cdef float uf, af
    cdef double ad
    cdef Py_ssize_t s
    if i >= Out - 1:
        return In - k
    if single:
        uf = <float>u
        af = <float>(In - k) / <float>(Out - 1)
        s = <Py_ssize_t>((<float>i + uf) * af) - <Py_ssize_t>(uf * af)
    else:
        ad = <double>(In - k) / <double>(Out - 1)
        s = <Py_ssize_t>((<double>i + u) * ad) - <Py_ssize_t>(u * ad)
    return _clamp(s, In - k)


cdef inline void _table(double u, Py_ssize_t In, Py_ssize_t Out, Py_ssize_t k,
                        bint single, Py_ssize_t* dst, Py_ssize_t step) noexcept nogil:
    """All ``Out`` starts of one plane, ``dst[i*step]``; the same arithmetic
    as :func:`_start` with ``alpha`` and ``int(u*alpha)`` hoisted."""
    cdef float uf, af
    cdef double ad
    cdef Py_ssize_t i, b, hi = In - k
    if single:
        uf = <float>u
        af = <float>(In - k) / <float>(Out - 1) if Out > 1 else 0
        b = <Py_ssize_t>(uf * af)
        for i in range(Out - 1):
            dst[i * step] = _clamp(<Py_ssize_t>((<float>i + uf) * af) - b, hi)
    else:
        ad = <double>(In - k) / <double>(Out - 1) if Out > 1 else 0
        b = <Py_ssize_t>(u * ad)
        for i in range(Out - 1):
            dst[i * step] = _clamp(<Py_ssize_t>((<double>i + u) * ad) - b, hi)
    dst[(Out - 1) * step] = hi


# --------------------------------------------------------- plane-major pass

cdef inline void _gather(const pool_t* row, Py_ssize_t xw, const Py_ssize_t* tw,
                        Py_ssize_t kw, Py_ssize_t n, Py_ssize_t step,
                        pool_t* g) noexcept nogil:
    """``g[ow] = row[(tw[ow] + kw) * xw]``: one tap of every window of an
    output row, staged contiguously so that the update pass vectorises.
    ``step`` 1 or 2: the starts are ``tw[0] + step*ow`` and the row is
    contiguous (integer ``alpha``, e.g. ratio 1/2 with k=2): a constant-stride
    copy that vectorises too."""
    cdef Py_ssize_t ow
    cdef const pool_t* src
    if step == 2:
        src = row + tw[0] + kw
        for ow in range(n):
            g[ow] = src[2 * ow]
    elif step == 1:
        src = row + tw[0] + kw
        for ow in range(n):
            g[ow] = src[ow]
    elif xw == 1:
        for ow in range(n):
            g[ow] = row[tw[ow] + kw]
    else:
        for ow in range(n):
            g[ow] = row[(tw[ow] + kw) * xw]


cdef inline void _update(pool_t* m, const pool_t* g, Py_ssize_t n) noexcept nogil:
    """``m = g if g > m or g is NaN else m``, element-wise, branch-free."""
    cdef Py_ssize_t ow
    cdef pool_t v, b
    cdef bint take
    for ow in range(n):
        v = g[ow]
        b = m[ow]
        if pool_t is float or pool_t is double:
            take = (v > b) | (v != v)
        else:
            take = v > b
        m[ow] = v if take else b


cdef inline void _update_tag(pool_t* m, pool_t* tg, const pool_t* g, pool_t tv,
                             Py_ssize_t n) noexcept nogil:
    """:func:`_update`, and the winning tap's number ``tv`` (stored in the
    value dtype, so that the two selects have one width and vectorise
    together) into ``tg``."""
    cdef Py_ssize_t ow
    cdef pool_t v, b, t
    cdef bint take
    for ow in range(n):
        v = g[ow]
        b = m[ow]
        t = tg[ow]  # loaded unconditionally: a load inside the select
                    # would keep the compiler from vectorising the loop
        if pool_t is float or pool_t is double:
            take = (v > b) | (v != v)
        else:
            take = v > b
        m[ow] = v if take else b
        tg[ow] = tv if take else t


cdef inline bint _tags_fit(pool_t zero, Py_ssize_t ntaps) noexcept nogil:
    """Every tap number below ``ntaps`` is exact in the value dtype."""
    if pool_t is float:
        return ntaps <= (1 << 24)
    elif pool_t is double:
        return ntaps <= (<Py_ssize_t>1 << 53)
    elif pool_t is int8_t:
        return ntaps <= 128
    elif pool_t is uint8_t:
        return ntaps <= 256
    elif pool_t is int16_t:
        return ntaps <= 32768
    elif pool_t is uint16_t:
        return ntaps <= 65536
    else:
        return True


cdef inline void _update_idx(pool_t* m, int64_t* bi, const pool_t* g,
                             const Py_ssize_t* tw, int64_t base,
                             Py_ssize_t n) noexcept nogil:
    """:func:`_update`, and the winner's flat index ``base + tw[ow]`` (the
    fallback when tap numbers do not fit the value dtype); the index select
    is integer bit arithmetic, so it stays branch-free."""
    cdef Py_ssize_t ow
    cdef pool_t v, b
    cdef int64_t msk
    for ow in range(n):
        v = g[ow]
        b = m[ow]
        if pool_t is float or pool_t is double:
            msk = -<int64_t>((v > b) | (v != v))
        else:
            msk = -<int64_t>(v > b)
        m[ow] = v if msk else b
        bi[ow] = ((base + tw[ow]) & msk) | (bi[ow] & ~msk)


cdef inline void _planes_item(const pool_t* x, pool_t* out, int64_t* idx,
                              const Geo* g, Py_ssize_t it, char* mine) noexcept nogil:
    cdef Py_ssize_t p = it // g.nband
    cdef Py_ssize_t r0 = (it % g.nband) * g.band
    cdef Py_ssize_t R = g.osz[0] * g.osz[1]
    cdef Py_ssize_t r1 = r0 + g.band
    cdef Py_ssize_t n = p // g.C
    cdef Py_ssize_t c = p % g.C
    cdef Py_ssize_t OW = g.osz[2]
    cdef const double* u = g.u + 3 * p
    # scratch: W starts, then the row's running maxima, their indices and
    # one staged tap
    cdef Py_ssize_t ntap = g.ks[0] * g.ks[1] * g.ks[2]
    cdef bint tags = idx != NULL and _tags_fit(<pool_t>0, ntap)
    # scratch: W starts, the row's running maxima, their indices (or tap
    # numbers, and the flat offset of every tap), one staged tap
    cdef Py_ssize_t* tw = <Py_ssize_t*>mine
    cdef int64_t* bi = <int64_t*>(mine + _lines(OW * sizeof(Py_ssize_t)))
    cdef pool_t* m = <pool_t*>(<char*>bi + _lines(OW * sizeof(int64_t)))
    cdef pool_t* gb = <pool_t*>(<char*>m + _lines(OW * sizeof(pool_t)))
    cdef pool_t* tg = <pool_t*>(<char*>gb + _lines(OW * sizeof(pool_t)))
    cdef int64_t* tb = <int64_t*>(<char*>tg + _lines(OW * sizeof(pool_t)))
    cdef Py_ssize_t r, od, oh, d0, h0, kd, kh, kw, ow, t
    cdef const pool_t* xp = x + n * g.xs[0] + c * g.xs[1]
    cdef const pool_t* row
    cdef pool_t* o
    cdef int64_t* j
    cdef int64_t base
    cdef Py_ssize_t step = 0
    if r1 > R:
        r1 = R
    _table(u[2], g.isz[2], OW, g.ks[2], g.single, tw, 1)
    if g.xs[4] == 1 and OW > 1 and (tw[1] - tw[0] == 1 or tw[1] - tw[0] == 2):
        step = tw[1] - tw[0]
        for ow in range(2, OW):
            if tw[ow] != tw[0] + ow * step:
                step = 0
                break
    for r in range(r0, r1):
        od = r // g.osz[1]
        oh = r % g.osz[1]
        d0 = _start(u[0], od, g.isz[0], g.osz[0], g.ks[0], g.single)
        h0 = _start(u[1], oh, g.isz[1], g.osz[1], g.ks[1], g.single)
        t = 0
        for kd in range(g.ks[0]):
            for kh in range(g.ks[1]):
                row = xp + (d0 + kd) * g.xs[2] + (h0 + kh) * g.xs[3]
                base = ((d0 + kd) * g.isz[1] + h0 + kh) * g.isz[2]
                for kw in range(g.ks[2]):
                    if t == 0:
                        # the first tap always wins against PyTorch's initial
                        # -inf (or integer minimum) with the first tap's index
                        _gather(row, g.xs[4], tw, kw, OW, step, m)
                        if tags:
                            for ow in range(OW):
                                tg[ow] = 0
                        elif idx != NULL:
                            for ow in range(OW):
                                bi[ow] = base + tw[ow]
                    else:
                        _gather(row, g.xs[4], tw, kw, OW, step, gb)
                        if tags:
                            _update_tag(m, tg, gb, <pool_t>t, OW)
                        elif idx != NULL:
                            _update_idx(m, bi, gb, tw, base + kw, OW)
                        else:
                            _update(m, gb, OW)
                    if tags:
                        tb[t] = base + kw
                    t += 1
        o = out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
        for ow in range(OW):
            o[ow * g.os[4]] = m[ow]
        if idx != NULL:
            j = idx + n * g.js[0] + c * g.js[1] + od * g.js[2] + oh * g.js[3]
            if tags:
                for ow in range(OW):
                    j[ow * g.js[4]] = tb[<Py_ssize_t>tg[ow]] + tw[ow]
            else:
                for ow in range(OW):
                    j[ow * g.js[4]] = bi[ow]


cdef int _fwd_planes(const pool_t* x, pool_t* out, int64_t* idx,
                     const Geo* g) noexcept nogil:
    cdef Py_ssize_t nitems = g.N * g.C * g.nband
    cdef Py_ssize_t it
    cdef char* scratch = <char*>malloc(g.per * g.nthreads + LINE)
    cdef char* mine = NULL
    if scratch == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(scratch) + cypool_omp_get_thread_num() * g.per
        for it in prange(nitems, schedule='static'):
            _planes_item(x, out, idx, g, it, mine)
    free(scratch)
    return 0


# ------------------------------------------------------- channels-last pass

cdef inline void _cl_item(const pool_t* x, pool_t* out, int64_t* idx,
                          const Geo* g, Py_ssize_t it, char* mine) noexcept nogil:
    cdef Py_ssize_t C = g.C
    cdef Py_ssize_t n = it // g.nband
    cdef Py_ssize_t r0 = (it % g.nband) * g.band
    cdef Py_ssize_t R = g.osz[0] * g.osz[1]
    cdef Py_ssize_t r1 = r0 + g.band
    cdef Py_ssize_t KW = g.ks[2]
    cdef Py_ssize_t ntap = g.ks[0] * g.ks[1]
    cdef bint tags = idx != NULL and _tags_fit(<pool_t>0, ntap * KW)
    cdef const double* u = g.u + 3 * C * n
    # scratch: W starts [ow][c]; row offsets and index bases [tap][c]; the
    # running maxima, their indices, one staged tap and tap numbers [c]
    cdef Py_ssize_t* tw = <Py_ssize_t*>mine
    cdef Py_ssize_t* roff = <Py_ssize_t*>(mine + _lines(g.osz[2] * C * sizeof(Py_ssize_t)))
    cdef int64_t* ioff = <int64_t*>(<char*>roff + _lines(ntap * C * sizeof(Py_ssize_t)))
    cdef int64_t* bi = <int64_t*>(<char*>ioff + _lines(ntap * C * sizeof(int64_t)))
    cdef pool_t* m = <pool_t*>(<char*>bi + _lines(C * sizeof(int64_t)))
    cdef pool_t* gb = <pool_t*>(<char*>m + _lines(C * sizeof(pool_t)))
    cdef pool_t* tg = <pool_t*>(<char*>gb + _lines(C * sizeof(pool_t)))
    # tap number -> offset of its (kd, kh) row in ioff, and its kw
    cdef Py_ssize_t* ttab = <Py_ssize_t*>(<char*>tg + _lines(C * sizeof(pool_t)))
    cdef Py_ssize_t* ktab = ttab + ntap * KW
    cdef const pool_t* xp = x + n * g.xs[0]
    cdef Py_ssize_t r, od, oh, ow, c, d0, h0, kd, kh, kw, t, tt, tag, w
    cdef Py_ssize_t xc = g.xs[1], xw = g.xs[4], oc = g.os[1], jc = g.js[1]
    cdef const Py_ssize_t* twr
    cdef const Py_ssize_t* rt
    cdef const int64_t* ib
    cdef pool_t* dst
    cdef pool_t* o
    cdef int64_t* j = NULL
    cdef pool_t v, b
    cdef int64_t msk
    if r1 > R:
        r1 = R
    if tags:
        for t in range(ntap):
            for kw in range(KW):
                ttab[t * KW + kw] = t * C
                ktab[t * KW + kw] = kw
    for c in range(C):
        _table(u[3 * c + 2], g.isz[2], g.osz[2], KW, g.single, tw + c, C)
    for r in range(r0, r1):
        od = r // g.osz[1]
        oh = r % g.osz[1]
        for c in range(C):
            d0 = _start(u[3 * c], od, g.isz[0], g.osz[0], g.ks[0], g.single)
            h0 = _start(u[3 * c + 1], oh, g.isz[1], g.osz[1], g.ks[1], g.single)
            t = 0
            for kd in range(g.ks[0]):
                for kh in range(g.ks[1]):
                    roff[t * C + c] = (d0 + kd) * g.xs[2] + (h0 + kh) * g.xs[3] + c * xc
                    ioff[t * C + c] = ((d0 + kd) * g.isz[1] + h0 + kh) * g.isz[2]
                    t += 1
        for ow in range(g.osz[2]):
            twr = tw + ow * C
            tt = 0
            for t in range(ntap):
                rt = roff + t * C
                ib = ioff + t * C
                for kw in range(KW):
                    # stage this tap of every channel's window contiguously
                    dst = m if tt == 0 else gb
                    for c in range(C):
                        dst[c] = xp[rt[c] + (twr[c] + kw) * xw]
                    if tt == 0:
                        if tags:
                            for c in range(C):
                                tg[c] = 0
                        elif idx != NULL:
                            for c in range(C):
                                bi[c] = ib[c] + twr[c]
                    elif tags:
                        _update_tag(m, tg, gb, <pool_t>tt, C)
                    elif idx != NULL:
                        for c in range(C):
                            v = gb[c]
                            b = m[c]
                            if pool_t is float or pool_t is double:
                                msk = -<int64_t>((v > b) | (v != v))
                            else:
                                msk = -<int64_t>(v > b)
                            m[c] = v if msk else b
                            bi[c] = ((ib[c] + twr[c] + kw) & msk) | (bi[c] & ~msk)
                    else:
                        _update(m, gb, C)
                    tt += 1
            o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
            for c in range(C):
                o[c * oc] = m[c]
            if idx != NULL:
                j = idx + n * g.js[0] + od * g.js[2] + oh * g.js[3] + ow * g.js[4]
                if tags:
                    for c in range(C):
                        tag = <Py_ssize_t>tg[c]
                        j[c * jc] = ioff[ttab[tag] + c] + twr[c] + ktab[tag]
                else:
                    for c in range(C):
                        j[c * jc] = bi[c]


cdef int _fwd_cl(const pool_t* x, pool_t* out, int64_t* idx,
                 const Geo* g) noexcept nogil:
    cdef Py_ssize_t nitems = g.N * g.nband
    cdef Py_ssize_t it
    cdef char* scratch = <char*>malloc(g.per * g.nthreads + LINE)
    cdef char* mine = NULL
    if scratch == NULL:
        return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        mine = _aligned(scratch) + cypool_omp_get_thread_num() * g.per
        for it in prange(nitems, schedule='static'):
            _cl_item(x, out, idx, g, it, mine)
    free(scratch)
    return 0


cdef inline char* _aligned(char* p) noexcept nogil:
    return p + (LINE - <size_t>p % LINE) % LINE


cdef inline Py_ssize_t _lines(Py_ssize_t nbytes) noexcept nogil:
    return (nbytes + LINE - 1) // LINE * LINE


cdef int _dispatch(int typenum, const void* xp, void* op, int64_t* ip, const Geo* g,
                   bint cl) noexcept nogil:
    if typenum == cnp.NPY_FLOAT32:
        return _fwd_cl(<const float*>xp, <float*>op, ip, g) if cl else \
            _fwd_planes(<const float*>xp, <float*>op, ip, g)
    if typenum == cnp.NPY_FLOAT64:
        return _fwd_cl(<const double*>xp, <double*>op, ip, g) if cl else \
            _fwd_planes(<const double*>xp, <double*>op, ip, g)
    if typenum == cnp.NPY_INT8:
        return _fwd_cl(<const int8_t*>xp, <int8_t*>op, ip, g) if cl else \
            _fwd_planes(<const int8_t*>xp, <int8_t*>op, ip, g)
    if typenum == cnp.NPY_UINT8:
        return _fwd_cl(<const uint8_t*>xp, <uint8_t*>op, ip, g) if cl else \
            _fwd_planes(<const uint8_t*>xp, <uint8_t*>op, ip, g)
    if typenum == cnp.NPY_INT16:
        return _fwd_cl(<const int16_t*>xp, <int16_t*>op, ip, g) if cl else \
            _fwd_planes(<const int16_t*>xp, <int16_t*>op, ip, g)
    if typenum == cnp.NPY_UINT16:
        return _fwd_cl(<const uint16_t*>xp, <uint16_t*>op, ip, g) if cl else \
            _fwd_planes(<const uint16_t*>xp, <uint16_t*>op, ip, g)
    if typenum == cnp.NPY_INT32:
        return _fwd_cl(<const int32_t*>xp, <int32_t*>op, ip, g) if cl else \
            _fwd_planes(<const int32_t*>xp, <int32_t*>op, ip, g)
    if typenum == cnp.NPY_INT64:
        return _fwd_cl(<const int64_t*>xp, <int64_t*>op, ip, g) if cl else \
            _fwd_planes(<const int64_t*>xp, <int64_t*>op, ip, g)
    return -3


# ------------------------------------------------------------ Python entry

cdef int _strides5(cnp.ndarray a, str name, Py_ssize_t* strides) except -1:
    cdef int i
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    if cnp.PyArray_NDIM(a) != 5:
        raise ValueError(f"{name} must be 5-d (N, C, D, H, W)")
    for i in range(5):
        if cnp.PyArray_STRIDE(a, i) % item != 0:
            raise ValueError(f"{name} strides must be multiples of its item size")
        strides[i] = cnp.PyArray_STRIDE(a, i) // item
    return 0


def fractional_max_pool_forward(cnp.ndarray x not None, cnp.ndarray out not None,
                                cnp.ndarray idx, cnp.ndarray u not None,
                                tuple kernel, bint single, int nthreads):
    """Fill ``out`` (and ``idx`` unless None) with the fractional max pooling
    of ``x``.

    ``x``, ``out``, ``idx``: 5-d ``(N, C, D, H, W)`` arrays, any strides;
    ``u``: C-contiguous float64 ``(N, C, 3)`` samples in ``[0, 1]``, (D, H, W)
    order; ``kernel``: 3 ints with ``Out + k - 1 <= In``; ``single``: interval
    arithmetic in float32.
    """
    cdef Geo g
    cdef int rc = 0, i
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int64_t* ip = NULL
    cdef Py_ssize_t p, ntap, want, nb
    cdef double work
    cdef const double* up
    _strides5(x, "x", g.xs)
    _strides5(out, "out", g.os)
    if cnp.PyArray_TYPE(out) != typenum:
        raise TypeError("out must have x's dtype")
    if not cnp.PyArray_ISWRITEABLE(out):
        raise ValueError("out is read-only")
    if len(kernel) != 3:
        raise ValueError("kernel must have 3 entries")
    g.N = x.shape[0]
    g.C = x.shape[1]
    if out.shape[0] != g.N or out.shape[1] != g.C:
        raise ValueError("batch/channel sizes of x and out differ")
    for i in range(3):
        g.isz[i] = x.shape[2 + i]
        g.osz[i] = out.shape[2 + i]
        g.ks[i] = kernel[i]
        if g.ks[i] < 1 or g.isz[i] < 1 or g.osz[i] < 0 or g.osz[i] + g.ks[i] - 1 > g.isz[i]:
            raise ValueError("invalid fractional pooling geometry")
    if idx is not None:
        _strides5(idx, "idx", g.js)
        if cnp.PyArray_TYPE(idx) != cnp.NPY_INT64:
            raise TypeError("idx must be int64")
        if not cnp.PyArray_ISWRITEABLE(idx):
            raise ValueError("idx is read-only")
        for i in range(5):
            if idx.shape[i] != out.shape[i]:
                raise ValueError("idx must have out's shape")
        ip = <int64_t*>cnp.PyArray_DATA(idx)
    if (cnp.PyArray_TYPE(u) != cnp.NPY_FLOAT64 or cnp.PyArray_NDIM(u) != 3
            or not cnp.PyArray_IS_C_CONTIGUOUS(u) or u.shape[0] != g.N
            or u.shape[1] != g.C or u.shape[2] != 3):
        raise ValueError("u must be a C-contiguous float64 (N, C, 3) array")
    up = <const double*>cnp.PyArray_DATA(u)
    for p in range(g.N * g.C * 3):
        # 1.0 is possible: a float64 sample just below 1 rounds to float32 1.0
        if not (0.0 <= up[p] <= 1.0):
            raise ValueError("samples must lie in [0, 1]")
    if g.N * g.C == 0 or g.osz[0] * g.osz[1] * g.osz[2] == 0:
        return
    g.u = up
    g.single = single

    # channels-last loop order when the channel axis is the most contiguous
    cdef bint cl = g.C > 1 and abs(g.xs[1]) < abs(g.xs[4])
    cdef Py_ssize_t R = g.osz[0] * g.osz[1]
    cdef Py_ssize_t outer = g.N if cl else g.N * g.C
    want = 4 * nthreads if nthreads > 1 else 1
    g.band = R
    if outer < want and R > 1:
        nb = min(R, (want + outer - 1) // outer)
        g.band = (R + nb - 1) // nb
    g.nband = (R + g.band - 1) // g.band
    work = <double>g.N * g.C * R * g.osz[2] * g.ks[0] * g.ks[1] * g.ks[2]
    g.nthreads = <int>max(1, min(nthreads, outer * g.nband))
    g.parallel = g.nthreads > 1 and work >= PARALLEL_MIN_WORK
    ntap = g.ks[0] * g.ks[1]
    if cl:
        g.per = (_lines(g.osz[2] * g.C * sizeof(Py_ssize_t))
                 + _lines(ntap * g.C * sizeof(Py_ssize_t)) + _lines(ntap * g.C * sizeof(int64_t))
                 + _lines(g.C * sizeof(int64_t)) + 3 * _lines(g.C * cnp.PyArray_ITEMSIZE(x))
                 + 2 * _lines(ntap * g.ks[2] * sizeof(Py_ssize_t)))
    else:
        g.per = (_lines(g.osz[2] * sizeof(Py_ssize_t)) + _lines(g.osz[2] * sizeof(int64_t))
                 + 3 * _lines(g.osz[2] * cnp.PyArray_ITEMSIZE(x))
                 + _lines(ntap * g.ks[2] * sizeof(int64_t)))
    with nogil:
        rc = _dispatch(typenum, cnp.PyArray_DATA(x), cnp.PyArray_DATA(out), ip, &g, cl)
    if rc == -1:
        raise MemoryError()
    if rc == -3:
        raise TypeError(f"fractional max pooling does not support dtype {x.dtype}")
