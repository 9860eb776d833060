# cython: language_level=3, cdivision=True, cpow=True
# (boundscheck, wraparound, initializedcheck and nonecheck are set for the
# whole build in setup.py: off, or on with CYPOOL_CYTHON_DEBUG=1)
"""Max unpooling kernels: the scatter (forward) and the gather (backward).

Unpooling only moves elements, so the kernels are specialised on the item
size (1, 2, 4 or 8 bytes), not on the dtype: a zero bit pattern is zero in
every supported dtype (+0.0 for floats).

Every array is a 5-d ``(N, C, D, H, W)`` view.  The unpooled array (the
forward's output, the backward's output gradient) must map each ``(n, c)``
plane's flat index ``i`` to the element offset ``i * e`` (true of C-order and
channels-last arrays); the pooled-shape arrays may have any strides.

* Forward, planar output: each work item owns whole ``(n, c)`` output planes:
  it zeroes the plane and scatters the plane's input values in C order of
  the input plane (so the last of repeated indices wins), with no races and
  a result independent of the thread count.  A large ``out=`` (the caller
  passes the windows' row bounds) is built in a per-thread buffer and
  streamed out while it is built (``scatter_stream.h``).
* Forward, channels-last output: a work item owns one sample ``n`` and a
  block of channels; it zeroes that part and scatters position by position
  (input C order per plane, as above), channels innermost.
* Backward: a gather, parallel over rows of the indices (no races at all).

An index outside ``[0, plane size)`` other than -1 is never used: the
kernels skip it and report it, and the caller raises.
"""

cimport numpy as cnp
from cython.parallel cimport prange, parallel
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memset
from libc.stdlib cimport malloc, calloc, free

cnp.import_array()

from cypool._ext.omp_shim cimport (cypool_omp_get_thread_num,
    CYPOOL_HAVE_OPENMP, CYPOOL_HAVE_STREAM, cypool_sfence)

cdef extern from "scatter_stream.h" nogil:
    int cypool_unpool_stream_u8(const uint8_t* x, const int64_t* idx, Py_ssize_t Q, Py_ssize_t OW, const int64_t* bnd, uint8_t* buf, uint8_t* gp, Py_ssize_t P, Py_ssize_t pf)
    int cypool_unpool_stream_u16(const uint16_t* x, const int64_t* idx, Py_ssize_t Q, Py_ssize_t OW, const int64_t* bnd, uint16_t* buf, uint16_t* gp, Py_ssize_t P, Py_ssize_t pf)
    int cypool_unpool_stream_u32(const uint32_t* x, const int64_t* idx, Py_ssize_t Q, Py_ssize_t OW, const int64_t* bnd, uint32_t* buf, uint32_t* gp, Py_ssize_t P, Py_ssize_t pf)
    int cypool_unpool_stream_u64(const uint64_t* x, const int64_t* idx, Py_ssize_t Q, Py_ssize_t OW, const int64_t* bnd, uint64_t* buf, uint64_t* gp, Py_ssize_t P, Py_ssize_t pf)


ctypedef fused elem_t:
    uint8_t
    uint16_t
    uint32_t
    uint64_t


cdef enum:
    PARALLEL_MIN_WORK = 32768   # below this many elements moved: one thread
    LINE = 64                   # bytes per cache line (per-thread flags)


cdef struct U:
    Py_ssize_t N, C
    Py_ssize_t isz[3]        # pooled spatial size (x, indices, grad_input)
    Py_ssize_t P             # unpooled plane size
    Py_ssize_t xs[5]         # strides of the pooled-shape value array
    Py_ssize_t js[5]         # strides of the indices
    Py_ssize_t e             # element stride of the unpooled plane's flat index
    Py_ssize_t ps[2]         # strides (N, C) of the unpooled array
    Py_ssize_t cb            # channels per item (channels-last)
    int nthreads
    bint parallel
    bint zeroed              # out is already all zeros (forward: no zero fill)
    const int64_t* bnd       # streamed scatter: row bounds (scatter_stream.h)


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(CYPOOL_HAVE_OPENMP)


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


# ----------------------------------------------------------------- forward

# pooled elements ahead whose indices and values the streamed scatter hints
cdef Py_ssize_t _PF = 512


cdef inline bint _dense(const Py_ssize_t* s, const Py_ssize_t* isz) noexcept:
    """Are the (D, H, W) elements of each (n, c) volume with strides ``s``
    (elements) contiguous in C order?"""
    return ((isz[2] <= 1 or s[4] == 1)
            and (isz[1] <= 1 or s[3] == isz[2])
            and (isz[0] <= 1 or s[2] == isz[1] * isz[2]))

cdef inline void _scatter_plane(const elem_t* x, const int64_t* idx, elem_t* out,
                                const U* u, Py_ssize_t it, int* bad,
                                elem_t* buf) noexcept nogil:
    """One output plane; with ``buf`` (``u.bnd`` set: contiguous planes and
    pooled volumes) built there and streamed out as it goes."""
    cdef Py_ssize_t n = it // u.C, c = it % u.C
    cdef Py_ssize_t d, h, w, i, P = u.P, e = u.e
    cdef elem_t* op = out + n * u.ps[0] + c * u.ps[1]
    cdef const elem_t* xr
    cdef const int64_t* ir
    cdef Py_ssize_t Q = u.isz[0] * u.isz[1] * u.isz[2]
    cdef int r = 0
    if buf != NULL:
        xr = x + n * u.xs[0] + c * u.xs[1]
        ir = idx + n * u.js[0] + c * u.js[1]
        if elem_t is uint8_t:
            r = cypool_unpool_stream_u8(xr, ir, Q, u.isz[2], u.bnd, buf, op, P, _PF)
        elif elem_t is uint16_t:
            r = cypool_unpool_stream_u16(xr, ir, Q, u.isz[2], u.bnd, buf, op, P, _PF)
        elif elem_t is uint32_t:
            r = cypool_unpool_stream_u32(xr, ir, Q, u.isz[2], u.bnd, buf, op, P, _PF)
        else:
            r = cypool_unpool_stream_u64(xr, ir, Q, u.isz[2], u.bnd, buf, op, P, _PF)
        if r:
            bad[0] = 1
        return
    if not u.zeroed:
        if e == 1:
            memset(op, 0, P * sizeof(elem_t))
        else:
            for i in range(P):
                op[i * e] = 0
    for d in range(u.isz[0]):
        for h in range(u.isz[1]):
            xr = x + n * u.xs[0] + c * u.xs[1] + d * u.xs[2] + h * u.xs[3]
            ir = idx + n * u.js[0] + c * u.js[1] + d * u.js[2] + h * u.js[3]
            for w in range(u.isz[2]):
                i = ir[w * u.js[4]]
                if <uint64_t>i < <uint64_t>P:
                    op[i * e] = xr[w * u.xs[4]]
                elif i != -1:
                    bad[0] = 1


cdef inline void _scatter_cl(const elem_t* x, const int64_t* idx, elem_t* out,
                             const U* u, Py_ssize_t it, int* bad) noexcept nogil:
    """Channels-last output (``e == C``, channel stride 1): sample ``n``,
    channels ``[c0, c1)``."""
    cdef Py_ssize_t nb = (u.C + u.cb - 1) // u.cb
    cdef Py_ssize_t n = it // nb
    cdef Py_ssize_t c0 = (it % nb) * u.cb
    cdef Py_ssize_t c1 = _imin(c0 + u.cb, u.C)
    cdef Py_ssize_t d, h, w, c, i, P = u.P, e = u.e
    cdef elem_t* op = out + n * u.ps[0]
    cdef const elem_t* xr
    cdef const int64_t* ir
    if not u.zeroed:
        for i in range(P):
            memset(op + i * e + c0, 0, (c1 - c0) * sizeof(elem_t))
    for d in range(u.isz[0]):
        for h in range(u.isz[1]):
            for w in range(u.isz[2]):
                xr = x + n * u.xs[0] + d * u.xs[2] + h * u.xs[3] + w * u.xs[4]
                ir = idx + n * u.js[0] + d * u.js[2] + h * u.js[3] + w * u.js[4]
                for c in range(c0, c1):
                    i = ir[c * u.js[1]]
                    if <uint64_t>i < <uint64_t>P:
                        op[i * e + c] = xr[c * u.xs[1]]
                    elif i != -1:
                        bad[0] = 1


cdef int _scatter(const elem_t* x, const int64_t* idx, elem_t* out, const U* u,
                  bint cl) noexcept nogil:
    cdef Py_ssize_t it, nitems
    cdef int* bad
    cdef int tid, anybad = 0
    cdef Py_ssize_t slot = LINE // sizeof(int)
    cdef Py_ssize_t per = 0
    cdef char* planes = NULL
    cdef elem_t* buf
    if cl:
        nitems = u.N * ((u.C + u.cb - 1) // u.cb)
    else:
        nitems = u.N * u.C
    bad = <int*>malloc(u.nthreads * LINE)
    if bad == NULL:
        return -1
    if u.bnd != NULL:
        # one zeroed plane per thread (scatter_stream.h leaves it zeroed)
        per = (u.P * sizeof(elem_t) + LINE - 1) // LINE * LINE
        planes = <char*>calloc(per * u.nthreads + LINE, 1)
        if planes == NULL:
            free(bad)
            return -1
    for tid in range(u.nthreads):
        bad[tid * slot] = 0
    with parallel(num_threads=u.nthreads, use_threads_if=u.parallel):
        tid = cypool_omp_get_thread_num()
        buf = NULL
        if planes != NULL:
            buf = <elem_t*>(planes + (LINE - <size_t>planes % LINE) % LINE + tid * per)
        for it in prange(nitems, schedule='static'):
            if cl:
                _scatter_cl(x, idx, out, u, it, bad + tid * slot)
            else:
                _scatter_plane(x, idx, out, u, it, bad + tid * slot, buf)
        if buf != NULL:
            cypool_sfence()     # the streamed stores, visible before the join
    free(planes)
    for tid in range(u.nthreads):
        anybad = anybad | bad[tid * slot]
    free(bad)
    return -2 if anybad else 0


# ---------------------------------------------------------------- backward

cdef inline void _gather_row(const elem_t* go, const int64_t* idx, elem_t* gi,
                             const U* u, const Py_ssize_t* gs, Py_ssize_t it,
                             bint cl, int* bad) noexcept nogil:
    """Planar: row ``it = ((n*C + c)*D + d)*H + h`` along W.  Channels-last:
    ``it = (n*D + d)*H + h``, positions along W, channels innermost."""
    cdef Py_ssize_t h = it % u.isz[1]
    cdef Py_ssize_t rest = it // u.isz[1]
    cdef Py_ssize_t d = rest % u.isz[0]
    cdef Py_ssize_t nc = rest // u.isz[0]
    cdef Py_ssize_t n, c, w, i, P = u.P, e = u.e
    cdef const elem_t* gp
    cdef const int64_t* ir
    cdef elem_t* orow
    if not cl:
        n = nc // u.C
        c = nc % u.C
        gp = go + n * u.ps[0] + c * u.ps[1]
        ir = idx + n * u.js[0] + c * u.js[1] + d * u.js[2] + h * u.js[3]
        orow = gi + n * gs[0] + c * gs[1] + d * gs[2] + h * gs[3]
        for w in range(u.isz[2]):
            i = ir[w * u.js[4]]
            if <uint64_t>i < <uint64_t>P:
                orow[w * gs[4]] = gp[i * e]
            else:
                orow[w * gs[4]] = 0
                if i != -1:
                    bad[0] = 1
        return
    n = nc
    for w in range(u.isz[2]):
        ir = idx + n * u.js[0] + d * u.js[2] + h * u.js[3] + w * u.js[4]
        orow = gi + n * gs[0] + d * gs[2] + h * gs[3] + w * gs[4]
        gp = go + n * u.ps[0]
        for c in range(u.C):
            i = ir[c * u.js[1]]
            if <uint64_t>i < <uint64_t>P:
                orow[c * gs[1]] = gp[c * u.ps[1] + i * e]
            else:
                orow[c * gs[1]] = 0
                if i != -1:
                    bad[0] = 1


cdef int _gather(const elem_t* go, const int64_t* idx, elem_t* gi, const U* u,
                 const Py_ssize_t* gs, bint cl) noexcept nogil:
    cdef Py_ssize_t it, nitems = u.N * u.isz[0] * u.isz[1]
    cdef int* bad
    cdef int tid, anybad = 0
    cdef Py_ssize_t slot = LINE // sizeof(int)
    if not cl:
        nitems = nitems * u.C
    bad = <int*>malloc(u.nthreads * LINE)
    if bad == NULL:
        return -1
    for tid in range(u.nthreads):
        bad[tid * slot] = 0
    with parallel(num_threads=u.nthreads, use_threads_if=u.parallel):
        tid = cypool_omp_get_thread_num()
        for it in prange(nitems, schedule='static'):
            _gather_row(go, idx, gi, u, gs, it, cl, bad + tid * slot)
    for tid in range(u.nthreads):
        anybad = anybad | bad[tid * slot]
    free(bad)
    return -2 if anybad else 0


# ------------------------------------------------------- Python wrappers

cdef int _strides(cnp.ndarray a, str name, Py_ssize_t* out) except -1:
    cdef int i
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    if cnp.PyArray_NDIM(a) != 5:
        raise ValueError(f"{name} must be 5-d")
    for i in range(5):
        if cnp.PyArray_STRIDES(a)[i] % item:
            raise ValueError(f"{name} strides must be multiples of its item size")
        out[i] = cnp.PyArray_STRIDES(a)[i] // item
    return 0


cdef int _pooled(U* u, cnp.ndarray vals, str vname, cnp.ndarray idx,
                 cnp.ndarray plane_arr, str pname) except -1:
    """Shapes and strides shared by both directions: ``vals`` and ``idx`` of
    the pooled shape, ``plane_arr`` the unpooled array with uniform planes;
    sets ``u.e`` and ``u.ps``."""
    cdef Py_ssize_t s[5]
    cdef int i
    u.zeroed = False
    if cnp.PyArray_TYPE(idx) != cnp.NPY_INT64:
        raise TypeError("indices must be int64")
    if cnp.PyArray_ITEMSIZE(vals) != cnp.PyArray_ITEMSIZE(plane_arr) or (
            cnp.PyArray_TYPE(vals) != cnp.PyArray_TYPE(plane_arr)):
        raise TypeError(f"{vname} and {pname} must have the same dtype")
    if cnp.PyArray_ITEMSIZE(vals) not in (1, 2, 4, 8):
        raise TypeError(f"unsupported item size {cnp.PyArray_ITEMSIZE(vals)}")
    _strides(vals, vname, u.xs)
    _strides(idx, "indices", u.js)
    _strides(plane_arr, pname, s)
    for i in range(5):
        if idx.shape[i] != vals.shape[i]:
            raise ValueError(f"indices must have {vname}'s shape")
    if plane_arr.shape[0] != vals.shape[0] or plane_arr.shape[1] != vals.shape[1]:
        raise ValueError(f"{pname} must have {vname}'s N and C")
    u.N = vals.shape[0]
    u.C = vals.shape[1]
    for i in range(3):
        u.isz[i] = vals.shape[2 + i]
        if plane_arr.shape[2 + i] < 1:
            raise ValueError(f"{pname} must have a non-empty plane")
    u.P = plane_arr.shape[2] * plane_arr.shape[3] * plane_arr.shape[4]
    u.e = s[4] if plane_arr.shape[4] > 1 else (
        s[3] if plane_arr.shape[3] > 1 else s[2])
    if u.P > 1 and (
            u.e < 1
            or (plane_arr.shape[4] > 1 and s[4] != u.e)
            or (plane_arr.shape[3] > 1 and s[3] != plane_arr.shape[4] * u.e)
            or (plane_arr.shape[2] > 1
                and s[2] != plane_arr.shape[3] * plane_arr.shape[4] * u.e)):
        raise ValueError(f"{pname} planes must have uniform positive strides")
    if u.e < 1:
        u.e = 1
    u.ps[0] = s[0]
    u.ps[1] = s[1]
    return 0


cdef void _threads(U* u, Py_ssize_t nitems, double work, int nthreads) noexcept:
    u.nthreads = <int>max(1, min(nthreads, nitems))
    u.parallel = u.nthreads > 1 and work >= PARALLEL_MIN_WORK


def max_unpool_forward(cnp.ndarray x not None, cnp.ndarray idx not None,
                       cnp.ndarray out not None, int nthreads, bint zeroed=False,
                       cnp.ndarray bounds=None):
    """Zero ``out`` (unless ``zeroed``: the caller made it with zeros) and
    scatter ``x`` into it through ``idx``.  With ``bounds`` (int64, one per
    row (d, h) of a pooled volume: ``cypool._compiled.row_bounds``), on
    planar output with contiguous planes of up to 256 KiB and contiguous
    pooled volumes of several rows, each plane is built in a per-thread
    buffer and streamed out while it is built (``scatter_stream.h``; any
    index is still handled exactly).

    Returns False when an index other than -1 lies outside its plane (it was
    skipped; the caller raises)."""
    cdef U u
    cdef int rc = 0
    cdef int size = cnp.PyArray_ITEMSIZE(x)
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef const int64_t* ip = <const int64_t*>cnp.PyArray_DATA(idx)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef bint cl
    if not cnp.PyArray_ISWRITEABLE(out):
        raise ValueError("out is read-only")
    _pooled(&u, x, "x", idx, out, "out")
    u.zeroed = zeroed
    u.bnd = NULL
    if u.N * u.C == 0:
        return True
    # channels-last output: the channel axis is contiguous and planes
    # interleave (flat stride C)
    cl = u.C > 1 and u.ps[1] == 1 and u.e == u.C and u.ps[0] == u.P * u.C
    if cl:
        want = 4 * nthreads if nthreads > 1 else 1
        nb = max(1, min(u.C, (want + u.N - 1) // u.N))
        u.cb = (u.C + nb - 1) // nb
        if u.cb < u.C:  # whole cache lines of channels per item
            line = max(1, LINE // size)
            u.cb = min(u.C, ((u.cb + line - 1) // line) * line)
        _threads(&u, u.N * ((u.C + u.cb - 1) // u.cb),
                 <double>u.N * u.C * (u.P + u.isz[0] * u.isz[1] * u.isz[2]), nthreads)
    else:
        u.cb = 1
        _threads(&u, u.N * u.C,
                 <double>u.N * u.C * (u.P + u.isz[0] * u.isz[1] * u.isz[2]), nthreads)
        if (bounds is not None and CYPOOL_HAVE_STREAM and u.e == 1
                and u.P * size <= 262144 and u.isz[0] * u.isz[1] > 1
                and _dense(u.xs, u.isz) and _dense(u.js, u.isz)
                and <size_t>op % <size_t>size == 0):
            if (cnp.PyArray_TYPE(bounds) != cnp.NPY_INT64
                    or cnp.PyArray_SIZE(bounds) != u.isz[0] * u.isz[1]
                    or not cnp.PyArray_IS_C_CONTIGUOUS(bounds)):
                raise ValueError("bounds must be a contiguous int64 array with one "
                                 "element per pooled row")
            u.bnd = <const int64_t*>cnp.PyArray_DATA(bounds)
    with nogil:
        if size == 1:
            rc = _scatter(<const uint8_t*>xp, ip, <uint8_t*>op, &u, cl)
        elif size == 2:
            rc = _scatter(<const uint16_t*>xp, ip, <uint16_t*>op, &u, cl)
        elif size == 4:
            rc = _scatter(<const uint32_t*>xp, ip, <uint32_t*>op, &u, cl)
        else:
            rc = _scatter(<const uint64_t*>xp, ip, <uint64_t*>op, &u, cl)
    if rc == -1:
        raise MemoryError()
    return rc == 0


def max_unpool_backward(cnp.ndarray grad_out not None, cnp.ndarray idx not None,
                        cnp.ndarray grad_in not None, int nthreads):
    """``grad_in[n, c, ...] = grad_out[n, c].flat[idx[n, c, ...]]`` (0 for
    index -1).  Returns False when another index lies outside its plane."""
    cdef U u
    cdef int rc = 0
    cdef Py_ssize_t gs[5]
    cdef int size = cnp.PyArray_ITEMSIZE(grad_in)
    cdef const void* gop = cnp.PyArray_DATA(grad_out)
    cdef const int64_t* ip = <const int64_t*>cnp.PyArray_DATA(idx)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef bint cl
    if not cnp.PyArray_ISWRITEABLE(grad_in):
        raise ValueError("grad_in is read-only")
    _pooled(&u, grad_in, "grad_in", idx, grad_out, "grad_out")
    _strides(grad_in, "grad_in", gs)
    if u.N * u.C == 0:
        return True
    cl = u.C > 1 and gs[1] == 1 and u.js[1] == 1
    _threads(&u, u.N * u.isz[0] * u.isz[1] * (1 if cl else u.C),
             <double>u.N * u.C * u.isz[0] * u.isz[1] * u.isz[2], nthreads)
    with nogil:
        if size == 1:
            rc = _gather(<const uint8_t*>gop, ip, <uint8_t*>gip, &u, gs, cl)
        elif size == 2:
            rc = _gather(<const uint16_t*>gop, ip, <uint16_t*>gip, &u, gs, cl)
        elif size == 4:
            rc = _gather(<const uint32_t*>gop, ip, <uint32_t*>gip, &u, gs, cl)
        else:
            rc = _gather(<const uint64_t*>gop, ip, <uint64_t*>gip, &u, gs, cl)
    if rc == -1:
        raise MemoryError()
    return rc == 0
