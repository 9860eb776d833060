# cython: language_level=3, cdivision=True, cpow=True
# (boundscheck, wraparound, initializedcheck and nonecheck are set for the
# whole build in setup.py: off, or on with CYPOOL_CYTHON_DEBUG=1)
"""Lp (power-average) pooling kernels, forward and backward.

PyTorch 2.13's composite ``(sign(a) * relu(|a|) * prod(k)) ** (1/p)`` with
``a = avg_pool(x ** p)`` (no padding, ceil-mode edge windows divided by their
clipped count), computed in one pass: each output row accumulates the window
sums of ``x ** p`` tap by tap (PyTorch's summation order: ``kd``, ``kh``,
``kw``, starting from 0) and then applies the division, the rectification,
the kernel-size scale and the root.  Powers use PyTorch's special exponents
(1, 2, 3, -2, 0.5, -0.5, -1, and 0 for the gradient), repeated
multiplication for other small integers, ``pow`` otherwise.  ``p = ±inf`` is
the largest / smallest ``|x|`` of the window (NaN propagates, ties keep the
first tap).

Every array is a 5-d ``(N, C, D, H, W)`` view with arbitrary element
strides.  Planar arrays: the forward splits bands of output rows of each
``(n, c, od)`` (and chunks of long rows) across threads; the backward gives
each thread whole ``(n, c)`` planes of the input gradient (zeroed, window
coefficients added tap by tap, then multiplied by the pointwise factor), so
there are no races and the result does not depend on the thread count.
Channels-last arrays (channel stride 1): the same computations with the
contiguous channels innermost, the forward by output rows, the backward by
(sample, block of channels).

Validation of the window arguments happens in Python; the ``def`` wrappers
check what memory safety depends on: ranks, dtypes, shapes, and that every
window starts inside the input.
"""

cimport numpy as cnp
from cython.parallel cimport prange, parallel
from libc.math cimport sqrt, sqrtf, pow, powf, fabs, INFINITY
from libc.stdint cimport int64_t, uintptr_t
from libc.string cimport memset
from libc.stdlib cimport malloc, free

cnp.import_array()

from cypool._ext.omp_shim cimport (cypool_omp_get_thread_num,
    CYPOOL_HAVE_OPENMP, cypool_prefetch, CYPOOL_HAVE_STREAM, cypool_sfence,
    cypool_stream_t, cypool_stream_init, cypool_stream_flush,
    cypool_stream_put)


ctypedef fused real_t:
    float
    double


cdef enum:
    PARALLEL_MIN_WORK = 32768   # below this many element operations: one thread
    BLOCK = 256                 # output positions accumulated at once
    MAX_INT_POWER = 16          # integer powers up to this by multiplication

# power modes (the exponent classes PyTorch's pow kernel special-cases)
cdef enum:
    PW_ONE, PW_ZERO, PW_SQ, PW_CUBE, PW_INVSQ, PW_SQRT, PW_RSQRT, PW_INV
    PW_INT, PW_NEGINT, PW_GEN


cdef struct Pow:
    int mode
    int n          # PW_INT / PW_NEGINT: |exponent|
    double q       # the exponent


cdef struct G:
    Py_ssize_t N, C
    Py_ssize_t isz[3]
    Py_ssize_t osz[3]
    Py_ssize_t ks[3]
    Py_ssize_t st[3]
    Py_ssize_t xs[5]     # input strides (elements)
    Py_ssize_t os[5]     # output (forward) / grad_output (backward) strides
    Py_ssize_t gs[5]     # grad_input strides (backward)
    Py_ssize_t band      # forward: output rows (H) per work item
    Py_ssize_t nband     # forward: work items per (n, c, od)
    Py_ssize_t nchunk    # forward: chunks per output row
    Py_ssize_t chunk     # forward: output positions per chunk
    bint stream          # forward: the fused rows streamed out (_fwd)
    int nthreads
    bint parallel
    int extreme          # 0: finite p, 1: +inf, -1: -inf
    double p
    double K             # prod(kernel)
    Pow fwd              # x ** p
    Pow root             # t ** (1/p)
    Pow droot            # t ** (1/p - 1)
    Pow dfwd             # x ** (p - 1)


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(CYPOOL_HAVE_OPENMP)


cdef Pow _pow_mode(double q):
    cdef Pow w
    w.q = q
    w.n = 0
    if q == 1:
        w.mode = PW_ONE
    elif q == 0:
        w.mode = PW_ZERO
    elif q == 2:
        w.mode = PW_SQ
    elif q == 3:
        w.mode = PW_CUBE
    elif q == -2:
        w.mode = PW_INVSQ
    elif q == 0.5:
        w.mode = PW_SQRT
    elif q == -0.5:
        w.mode = PW_RSQRT
    elif q == -1:
        w.mode = PW_INV
    elif 4 <= fabs(q) <= MAX_INT_POWER and q == <int>q:
        w.n = <int>fabs(q)
        w.mode = PW_INT if q > 0 else PW_NEGINT
    else:
        w.mode = PW_GEN
    return w


cdef inline real_t _pw(real_t x, const Pow* w) noexcept nogil:
    """``x ** w.q`` in the input's precision, PyTorch's special exponents
    exactly as its pow kernel computes them."""
    cdef real_t r
    cdef int i
    cdef int m = w.mode
    if m == PW_ONE:
        return x
    if m == PW_SQ:
        return x * x
    if m == PW_ZERO:
        return 1
    if m == PW_CUBE:
        return x * x * x
    if m == PW_INVSQ:
        return (<real_t>1) / (x * x)
    if m == PW_SQRT:
        return sqrtf(x) if real_t is float else sqrt(x)
    if m == PW_RSQRT:
        return (<real_t>1) / (sqrtf(x) if real_t is float else sqrt(x))
    if m == PW_INV:
        return (<real_t>1) / x
    if m == PW_INT or m == PW_NEGINT:
        r = x
        for i in range(1, w.n):
            r = r * x
        return r if m == PW_INT else (<real_t>1) / r
    if real_t is float:
        return powf(x, <float>w.q)
    else:
        return pow(x, w.q)


cdef inline real_t _sign(real_t v) noexcept nogil:
    """torch.sign: -1, 0 or 1; 0 for NaN."""
    if v > 0:
        return 1
    if v < 0:
        return -1
    return 0


cdef inline Py_ssize_t _imin(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef inline Py_ssize_t _imax(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


cdef inline Py_ssize_t _count(Py_ssize_t o, Py_ssize_t k, Py_ssize_t s,
                              Py_ssize_t L) noexcept nogil:
    """In-bounds taps of window ``o`` (it starts inside the input)."""
    return _imin(o * s + k, L) - o * s


cdef inline real_t _finish(real_t acc, Py_ssize_t cnt, const G* g) noexcept nogil:
    """The composite after the window sum: average, rectify (-0 -> +0, NaN
    kept), scale by the kernel size, root."""
    cdef real_t a = acc / <real_t>cnt
    cdef real_t t = a if a != 0 else 0
    t = t * <real_t>g.K
    return _pw(t, &g.root)


# --------------------------------------------------------------- forward

cdef inline void _finish_rows(real_t* o, const real_t* acc, Py_ssize_t n,
                              real_t dv, real_t K, bint root2,
                              bint mul) noexcept nogil:
    """``_finish_row``'s loops; ``mul``: ``dv`` is the exact reciprocal of
    a power-of-two count, by which the sum is multiplied (the same rounding
    as the division: both round the same real number)."""
    cdef Py_ssize_t j
    cdef real_t a, t
    if root2:
        for j in range(n):
            a = acc[j] * dv if mul else acc[j] / dv
            t = a if a != 0 else 0
            if real_t is float:
                o[j] = sqrtf(t * K)
            else:
                o[j] = sqrt(t * K)
    else:
        for j in range(n):
            a = acc[j] * dv if mul else acc[j] / dv
            t = a if a != 0 else 0
            o[j] = t * K


cdef inline void _finish_row(real_t* o, const real_t* acc, Py_ssize_t n,
                             Py_ssize_t cnt, real_t K, bint root2) noexcept nogil:
    """``_finish`` for ``n`` outputs of one count, root 1/2 or 1, written
    contiguously (a loop the compiler vectorises).  A power-of-two count
    (2x2 windows) multiplies by its reciprocal instead of dividing."""
    if cnt > 0 and (cnt & (cnt - 1)) == 0 and cnt <= (1 << 20):
        if root2:
            _finish_rows(o, acc, n, (<real_t>1) / <real_t>cnt, K, True, True)
        else:
            _finish_rows(o, acc, n, (<real_t>1) / <real_t>cnt, K, False, True)
    elif root2:
        _finish_rows(o, acc, n, <real_t>cnt, K, True, False)
    else:
        _finish_rows(o, acc, n, <real_t>cnt, K, False, False)


cdef inline void _sum2(real_t* acc, const real_t* r, Py_ssize_t n, Py_ssize_t sw,
                       bint square) noexcept nogil:
    """acc[j] += f(r[j*sw]) then += f(r[j*sw + 1]), f = square or identity,
    for a contiguous row (stride 2 spelled out so that it vectorises)."""
    cdef Py_ssize_t j
    cdef real_t a, b
    if square:
        if sw == 2:
            for j in range(n):
                a = r[2 * j]
                b = r[2 * j + 1]
                acc[j] = acc[j] + a * a + b * b
        else:
            for j in range(n):
                a = r[j * sw]
                b = r[j * sw + 1]
                acc[j] = acc[j] + a * a + b * b
    else:
        if sw == 2:
            for j in range(n):
                acc[j] = acc[j] + r[2 * j] + r[2 * j + 1]
        else:
            for j in range(n):
                acc[j] = acc[j] + r[j * sw] + r[j * sw + 1]


cdef Py_ssize_t _S2_HINT = 8192   # bytes ahead (_fwd_item)


def _s2_hint(Py_ssize_t nbytes=-1):
    """The distance (bytes) at which the stride-2 fused loop hints input
    rows ahead; ``nbytes >= 0`` sets it (0: two rows).  Returns the previous
    value."""
    global _S2_HINT
    cdef Py_ssize_t old = _S2_HINT
    if nbytes >= 0:
        _S2_HINT = nbytes
    return old


cdef inline void _rows2_fused(real_t* o, const real_t* r0, const real_t* r1,
                              Py_ssize_t n, Py_ssize_t sw, real_t dv, real_t K,
                              bint root2, bint square) noexcept nogil:
    """2 x 2 windows at W stride ``sw`` = 1 or 2, a constant at each call
    (two in-bounds rows, p 1 or 2), whole:
    window sum, average (``dv``: the exact reciprocal of 4), rectify, scale
    and root in one loop, with no accumulator row.  The same operations in
    the same order as ``_row_sums`` + ``_finish_row`` (whose sum starts
    from 0: 0 + a equals a, NaN included, and a square is never -0).
    Measured 3.3-3.7x on (8, 64, 112, 112) float32 k2s1 p=2, 1 thread (the
    tap passes read each input element twice there).  At stride 2 the
    caller hints the rows ahead (``_fwd_item``)."""
    cdef Py_ssize_t j
    cdef real_t a, b, c, d, t
    if square:
        for j in range(n):
            a = r0[sw * j]; b = r0[sw * j + 1]; c = r1[sw * j]; d = r1[sw * j + 1]
            t = (((a * a + b * b) + c * c) + d * d) * dv
            t = t if t != 0 else 0
            if root2:
                o[j] = (sqrtf(t * K) if real_t is float else sqrt(t * K))
            else:
                o[j] = t * K
    else:
        for j in range(n):
            t = (((r0[sw * j] + r0[sw * j + 1]) + r1[sw * j]) + r1[sw * j + 1]) * dv
            t = t if t != 0 else 0
            if root2:
                o[j] = (sqrtf(t * K) if real_t is float else sqrt(t * K))
            else:
                o[j] = t * K


cdef inline void _row_sums(real_t* acc, const real_t* base, const G* g,
                           Py_ssize_t cd, Py_ssize_t chh, Py_ssize_t oh,
                           Py_ssize_t b0, Py_ssize_t blen,
                           Py_ssize_t jf2) noexcept nogil:
    """acc[j] = the window sum of ``x ** p`` (the largest ``±|x|`` for
    p = ±inf) of output ``(od, oh, b0 + j)``, ``j < blen``; ``base`` points
    at input ``(n, c, od * stride_d, 0, 0)``, the window has ``cd`` x ``chh``
    in-bounds rows, and ``jf2`` outputs have both taps of a 2-wide window
    inside the row.  Taps are added in PyTorch's order, starting from 0."""
    cdef Py_ssize_t j, kd, kh, kw, jn, sw = g.st[2]
    cdef Py_ssize_t xs4 = g.xs[4], step = g.st[2] * g.xs[4]
    cdef const real_t* r
    cdef real_t v, m
    cdef int mode = g.fwd.mode
    cdef bint fused = (g.extreme == 0 and g.ks[2] == 2 and xs4 == 1
                       and (mode == PW_SQ or mode == PW_ONE))
    if g.extreme != 0:
        for j in range(blen):
            acc[j] = -INFINITY
    else:
        for j in range(blen):
            acc[j] = 0
    for kd in range(cd):
        for kh in range(chh):
            r = base + kd * g.xs[2] + (oh * g.st[1] + kh) * g.xs[3] + b0 * step
            if fused:
                # both taps in one pass (the same summation order) ...
                _sum2(acc, r, jf2, sw, mode == PW_SQ)
                # ... then tap 0 of a ceil-mode edge window
                for j in range(jf2, blen):
                    if (b0 + j) * sw >= g.isz[2]:
                        break
                    acc[j] += _pw(r[j * step], &g.fwd)
                continue
            for kw in range(g.ks[2]):
                # outputs b0 + j whose tap kw lies inside the row
                jn = (g.isz[2] - kw - b0 * sw + sw - 1) // sw
                if jn <= 0:
                    break
                jn = _imin(jn, blen)
                if g.extreme > 0:
                    for j in range(jn):
                        v = fabs(r[j * step])
                        m = acc[j]
                        acc[j] = v if (v > m) | (v != v) else m
                elif g.extreme < 0:
                    for j in range(jn):
                        v = -fabs(r[j * step])
                        m = acc[j]
                        acc[j] = v if (v > m) | (v != v) else m
                elif mode == PW_SQ:
                    for j in range(jn):
                        acc[j] += r[j * step] * r[j * step]
                elif mode == PW_ONE:
                    for j in range(jn):
                        acc[j] += r[j * step]
                elif mode == PW_CUBE:
                    for j in range(jn):
                        v = r[j * step]
                        acc[j] += v * v * v
                else:
                    for j in range(jn):
                        acc[j] += _pw(r[j * step], &g.fwd)
                r = r + xs4


cdef inline void _fwd_item(const real_t* x, real_t* out, const G* g,
                           Py_ssize_t it, cypool_stream_t* st,
                           real_t* tmp) noexcept nogil:
    """Work item ``it``: a band of output rows ``oh`` of one ``(n, c, od)``,
    restricted to one chunk of output positions along W."""
    cdef real_t acc[BLOCK]
    cdef Py_ssize_t ch = it % g.nchunk
    cdef Py_ssize_t rest = it // g.nchunk
    cdef Py_ssize_t band = rest % g.nband
    cdef Py_ssize_t ncd = rest // g.nband
    cdef Py_ssize_t od = ncd % g.osz[0]
    cdef Py_ssize_t n = (ncd // g.osz[0]) // g.C, c = (ncd // g.osz[0]) % g.C
    cdef Py_ssize_t oh0 = band * g.band
    cdef Py_ssize_t oh1 = _imin(oh0 + g.band, g.osz[1])
    cdef Py_ssize_t ow0 = ch * g.chunk
    cdef Py_ssize_t ow1 = _imin(ow0 + g.chunk, g.osz[2])
    cdef Py_ssize_t oh, b0, blen, j, jf2, jfull, chh, sw = g.st[2]
    cdef Py_ssize_t cd = _count(od, g.ks[0], g.st[0], g.isz[0])
    cdef const real_t* base = (x + n * g.xs[0] + c * g.xs[1]
                               + od * g.st[0] * g.xs[2])
    cdef real_t* orow
    cdef bint fast_finish = (g.extreme == 0 and g.os[4] == 1
                             and (g.root.mode == PW_SQRT or g.root.mode == PW_ONE))
    # 2 x 2 windows (the two rows in H, or in D for 2 x 1 x 2), p = 1 or 2,
    # W-contiguous rows, W stride 1: one fused loop per output row
    cdef bint fused2 = (fast_finish and g.ks[2] == 2 and g.xs[4] == 1
                        and (sw == 1 or (sw == 2 and real_t is float))
                        and (g.fwd.mode == PW_SQ or g.fwd.mode == PW_ONE)
                        and g.ks[0] * g.ks[1] == 2)
    # At stride 2 the fused loop hints the input rows about 8 KiB ahead (at
    # least 2 rows): without the hints it ran at 0.6x the passes from memory
    # (1.9x from the caches), with them 1.2-1.4x ((32, 64, 112, 112) float32
    # p=2, 1 thread; hints 4 rows ahead 1.1x, 8 1.25x, 16 1.4x, 32 1.3x;
    # 0.95-0.99x at 2 threads).  float64 keeps the passes (1.03x at 1
    # thread, 0.86x at 2).
    cdef Py_ssize_t pfr = _imax(2, _S2_HINT // _imax(1, g.xs[3] * <Py_ssize_t>sizeof(real_t)))
    pfr = pfr * g.xs[3]
    cdef const real_t* r0
    cdef const real_t* r1
    b0 = ow0
    while b0 < ow1:
        blen = _imin(BLOCK, ow1 - b0)
        # outputs b0 + j, j < jf2, have both taps of a 2-wide window inside
        # the row; j < jfull, the whole window (one count for all of them)
        jf2 = _imax(0, _imin(blen, (g.isz[2] - 1 - b0 * sw + sw - 1) // sw))
        jfull = _imax(0, _imin(blen, (g.isz[2] - g.ks[2] - b0 * sw) // sw + 1))
        for oh in range(oh0, oh1):
            chh = _count(oh, g.ks[1], g.st[1], g.isz[1])
            orow = (out + n * g.os[0] + c * g.os[1] + od * g.os[2] + oh * g.os[3]
                    + b0 * g.os[4])
            if (fused2 and cd * chh == 2 and jfull == blen):
                r0 = base + (oh * g.st[1]) * g.xs[3] + b0 * sw
                r1 = (r0 + g.xs[3]) if chh == 2 else (r0 + g.xs[2])
                if sw == 2:
                    # hints for the rows pfr ahead (see above)
                    for j in range(0, 2 * blen * <Py_ssize_t>sizeof(real_t), 64):
                        cypool_prefetch(<const char*>(r0 + pfr) + j)
                        cypool_prefetch(<const char*>(r1 + pfr) + j)
                    if g.root.mode == PW_SQRT:
                        _rows2_fused(tmp if st != NULL else orow, r0, r1, blen, 2,
                                     <real_t>0.25, <real_t>g.K, True, g.fwd.mode == PW_SQ)
                    else:
                        _rows2_fused(tmp if st != NULL else orow, r0, r1, blen, 2,
                                     <real_t>0.25, <real_t>g.K, False, g.fwd.mode == PW_SQ)
                    if st != NULL:
                        cypool_stream_put(st, <char*>orow, <const char*>tmp,
                                          blen * sizeof(real_t))
                    continue
                if g.root.mode == PW_SQRT:
                    _rows2_fused(orow, r0, r1, blen, 1, <real_t>0.25, <real_t>g.K, True,
                                 g.fwd.mode == PW_SQ)
                else:
                    _rows2_fused(orow, r0, r1, blen, 1, <real_t>0.25, <real_t>g.K, False,
                                 g.fwd.mode == PW_SQ)
                continue
            _row_sums(acc, base, g, cd, chh, oh, b0, blen, jf2)
            if g.extreme > 0:
                for j in range(blen):
                    orow[j * g.os[4]] = acc[j]
            elif g.extreme < 0:
                for j in range(blen):
                    orow[j * g.os[4]] = -acc[j]
            else:
                j = 0
                if fast_finish:
                    _finish_row(orow, acc, jfull, cd * chh * g.ks[2],
                                <real_t>g.K, g.root.mode == PW_SQRT)
                    j = jfull
                while j < blen:
                    orow[j * g.os[4]] = _finish(
                        acc[j], cd * chh * _count(b0 + j, g.ks[2], sw, g.isz[2]), g)
                    j += 1
        b0 += blen


cdef inline void _acc_taps(real_t* acc, const real_t* r, Py_ssize_t n,
                           const G* g) noexcept nogil:
    """acc[c] (+)= f(r[c]) for ``n`` contiguous channels: one tap of a
    channels-last window."""
    cdef Py_ssize_t c
    cdef real_t v, m
    cdef int mode = g.fwd.mode
    if g.extreme > 0:
        for c in range(n):
            v = fabs(r[c])
            m = acc[c]
            acc[c] = v if (v > m) | (v != v) else m
    elif g.extreme < 0:
        for c in range(n):
            v = -fabs(r[c])
            m = acc[c]
            acc[c] = v if (v > m) | (v != v) else m
    elif mode == PW_SQ:
        for c in range(n):
            acc[c] += r[c] * r[c]
    elif mode == PW_ONE:
        for c in range(n):
            acc[c] += r[c]
    elif mode == PW_CUBE:
        for c in range(n):
            v = r[c]
            acc[c] += v * v * v
    else:
        for c in range(n):
            acc[c] += _pw(r[c], &g.fwd)


cdef inline void _fwd_cl_item(const real_t* x, real_t* out, const G* g,
                              Py_ssize_t it) noexcept nogil:
    """Channels-last input and output (channel stride 1): output row
    ``it = (n*OD + od)*OH + oh``, every position with all its channels, in
    blocks of channels; the inner loops run along the contiguous channels
    and the taps are visited in PyTorch's order for each channel."""
    cdef real_t acc[BLOCK]
    cdef Py_ssize_t oh = it % g.osz[1]
    cdef Py_ssize_t od = (it // g.osz[1]) % g.osz[0]
    cdef Py_ssize_t n = (it // g.osz[1]) // g.osz[0]
    cdef Py_ssize_t cd = _count(od, g.ks[0], g.st[0], g.isz[0])
    cdef Py_ssize_t chh = _count(oh, g.ks[1], g.st[1], g.isz[1])
    cdef Py_ssize_t ow, cw, c0, nc, c, kd, kh, kw, cnt
    cdef const real_t* base = (x + n * g.xs[0] + od * g.st[0] * g.xs[2]
                               + oh * g.st[1] * g.xs[3])
    cdef real_t* o
    cdef bint fast_finish = (g.extreme == 0 and (g.root.mode == PW_SQRT
                                                 or g.root.mode == PW_ONE))
    for ow in range(g.osz[2]):
        cw = _count(ow, g.ks[2], g.st[2], g.isz[2])
        cnt = cd * chh * cw
        o = out + n * g.os[0] + od * g.os[2] + oh * g.os[3] + ow * g.os[4]
        c0 = 0
        while c0 < g.C:
            nc = _imin(BLOCK, g.C - c0)
            for c in range(nc):
                acc[c] = -INFINITY if g.extreme != 0 else 0
            for kd in range(cd):
                for kh in range(chh):
                    for kw in range(cw):
                        _acc_taps(acc, base + c0 + kd * g.xs[2] + kh * g.xs[3]
                                  + (ow * g.st[2] + kw) * g.xs[4], nc, g)
            if g.extreme > 0:
                for c in range(nc):
                    o[c0 + c] = acc[c]
            elif g.extreme < 0:
                for c in range(nc):
                    o[c0 + c] = -acc[c]
            elif fast_finish:
                _finish_row(o + c0, acc, nc, cnt, <real_t>g.K,
                            g.root.mode == PW_SQRT)
            else:
                for c in range(nc):
                    o[c0 + c] = _finish(acc[c], cnt, g)
            c0 += nc


cdef int _fwd_cl(const real_t* x, real_t* out, const G* g) noexcept nogil:
    cdef Py_ssize_t it
    cdef Py_ssize_t nitems = g.N * g.osz[0] * g.osz[1]
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        for it in prange(nitems, schedule='static'):
            _fwd_cl_item(x, out, g, it)
    return 0


cdef int _fwd(const real_t* x, real_t* out, const G* g) noexcept nogil:
    """``g.stream``: the fused stride-2 rows are built in a per-thread row
    and appended to the thread's stream of non-temporal stores
    (``cypool_stream_put``), which saves the read of every output line that
    ordinary stores cost; the other rows store directly, and a row after
    them starts a new stream (the put flushes the carried line first).
    p=2 k2s2 (32, 64, 112, 112) float32: 1 thread 1.28-1.33x, 2 threads
    1.19-1.24x; p=1 1.3x (1 thread)."""
    cdef Py_ssize_t it
    cdef Py_ssize_t nitems = g.N * g.C * g.osz[0] * g.nband * g.nchunk
    cdef Py_ssize_t per = 0
    cdef char* scratch = NULL
    cdef real_t* row
    cdef cypool_stream_t* st
    if g.stream:
        # per thread: a row of BLOCK outputs, then the stream state (lines)
        per = (BLOCK * sizeof(real_t) + sizeof(cypool_stream_t) + 127) // 64 * 64
        scratch = <char*>malloc(per * g.nthreads + 64)
        if scratch == NULL:
            return -1
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        row = NULL
        st = NULL
        if scratch != NULL:
            row = <real_t*>(<char*>((<uintptr_t>scratch + 63) & ~(<uintptr_t>63))
                            + cypool_omp_get_thread_num() * per)
            st = <cypool_stream_t*>(row + BLOCK)
            cypool_stream_init(st)
        for it in prange(nitems, schedule='static'):
            _fwd_item(x, out, g, it, st, row)
        if st != NULL:
            cypool_stream_flush(st)
            cypool_sfence()     # the streamed stores, visible before the join
    free(scratch)
    return 0


# -------------------------------------------------------------- backward

cdef inline real_t _coef(real_t acc, real_t gout, Py_ssize_t cnt,
                          const G* g) noexcept nogil:
    """What a finite-p window passes back to each of its taps before the
    pointwise factor: autograd's chain through the root, the kernel-size
    scale, relu(|a|) (no gradient where the average a is 0), abs, and the
    average's division (see _reference_lp.lp_pool_backward)."""
    cdef real_t a = acc / <real_t>cnt
    cdef real_t K = <real_t>g.K, t, gt, sa
    if a == 0:
        return 0
    t = a * K
    gt = gout * (<real_t>(1.0 / g.p) * _pw(t, &g.droot))
    sa = _sign(a)
    return gt * K * sa * sa / <real_t>cnt


cdef inline void _factor_row(real_t* gp, Py_ssize_t gs, const real_t* xr,
                             Py_ssize_t xs, Py_ssize_t n, const G* g) noexcept nogil:
    """gp[i] *= p * x[i] ** (p - 1) (finite p) or sign(x[i]) (p = ±inf)."""
    cdef Py_ssize_t i
    cdef real_t p = <real_t>g.p, v
    if g.extreme != 0:
        for i in range(n):
            gp[i * gs] = gp[i * gs] * _sign(xr[i * xs])
    elif g.dfwd.mode == PW_ONE and gs == 1 and xs == 1:
        for i in range(n):
            gp[i] = gp[i] * (p * xr[i])
    elif g.dfwd.mode == PW_ZERO and gs == 1:
        for i in range(n):
            gp[i] = gp[i] * p
    else:
        for i in range(n):
            gp[i * gs] = gp[i * gs] * (p * _pw(xr[i * xs], &g.dfwd))


cdef inline void _bwd_plane_extreme(const real_t* go, const real_t* x, real_t* gi,
                                    const G* g, Py_ssize_t it) noexcept nogil:
    """p = ±inf, planar: input-gradient plane ``it = n*C + c``: zeroed, each
    output gradient added at its window's extreme tap (the max-pooling rule
    on ±|x|: first in scan order, NaN wins), then times sign(x)."""
    cdef Py_ssize_t n = it // g.C, c = it % g.C
    cdef const real_t* xp = x + n * g.xs[0] + c * g.xs[1]
    cdef const real_t* gop = go + n * g.os[0] + c * g.os[1]
    cdef real_t* gp = gi + n * g.gs[0] + c * g.gs[1]
    cdef Py_ssize_t d, h, w, od, oh, ow, kd, kh, kw, cd, chh, cw, d0, h0, w0, bg
    cdef real_t v, best
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            for w in range(g.isz[2]):
                gp[d * g.gs[2] + h * g.gs[3] + w * g.gs[4]] = 0
    for od in range(g.osz[0]):
        d0 = od * g.st[0]
        cd = _count(od, g.ks[0], g.st[0], g.isz[0])
        for oh in range(g.osz[1]):
            h0 = oh * g.st[1]
            chh = _count(oh, g.ks[1], g.st[1], g.isz[1])
            for ow in range(g.osz[2]):
                w0 = ow * g.st[2]
                cw = _count(ow, g.ks[2], g.st[2], g.isz[2])
                best = -INFINITY
                bg = d0 * g.gs[2] + h0 * g.gs[3] + w0 * g.gs[4]   # first tap
                for kd in range(cd):
                    for kh in range(chh):
                        for kw in range(cw):
                            v = fabs(xp[(d0 + kd) * g.xs[2] + (h0 + kh) * g.xs[3]
                                        + (w0 + kw) * g.xs[4]])
                            if g.extreme < 0:
                                v = -v
                            if v > best or v != v:
                                best = v
                                bg = ((d0 + kd) * g.gs[2] + (h0 + kh) * g.gs[3]
                                      + (w0 + kw) * g.gs[4])
                gp[bg] += gop[od * g.os[2] + oh * g.os[3] + ow * g.os[4]]
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            _factor_row(gp + d * g.gs[2] + h * g.gs[3], g.gs[4],
                        xp + d * g.xs[2] + h * g.xs[3], g.xs[4], g.isz[2], g)


cdef inline void _bwd_plane_rows(const real_t* go, const real_t* x, real_t* gi,
                                 const G* g, Py_ssize_t it) noexcept nogil:
    """Finite p, planar: input-gradient plane ``it = n*C + c``, by output
    rows: window sums as in the forward, one coefficient per window, added
    tap by tap to the (zeroed) plane, then the pointwise factor."""
    cdef real_t acc[BLOCK]
    cdef Py_ssize_t n = it // g.C, c = it % g.C
    cdef const real_t* xb = x + n * g.xs[0] + c * g.xs[1]
    cdef const real_t* gob = go + n * g.os[0] + c * g.os[1]
    cdef real_t* gp = gi + n * g.gs[0] + c * g.gs[1]
    cdef Py_ssize_t d, h, w, od, oh, b0, blen, j, jn, jf2, kd, kh, kw, cd, chh
    cdef Py_ssize_t sw = g.st[2], gs4 = g.gs[4]
    cdef const real_t* gor
    cdef real_t* grow
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            grow = gp + d * g.gs[2] + h * g.gs[3]
            if gs4 == 1:
                memset(grow, 0, g.isz[2] * sizeof(real_t))
            else:
                for w in range(g.isz[2]):
                    grow[w * gs4] = 0
    for od in range(g.osz[0]):
        cd = _count(od, g.ks[0], g.st[0], g.isz[0])
        for oh in range(g.osz[1]):
            chh = _count(oh, g.ks[1], g.st[1], g.isz[1])
            gor = gob + od * g.os[2] + oh * g.os[3]
            b0 = 0
            while b0 < g.osz[2]:
                blen = _imin(BLOCK, g.osz[2] - b0)
                jf2 = _imax(0, _imin(blen, (g.isz[2] - 1 - b0 * sw + sw - 1) // sw))
                _row_sums(acc, xb + od * g.st[0] * g.xs[2], g, cd, chh, oh, b0,
                          blen, jf2)
                for j in range(blen):
                    acc[j] = _coef(acc[j], gor[(b0 + j) * g.os[4]],
                                   cd * chh * _count(b0 + j, g.ks[2], sw, g.isz[2]), g)
                for kd in range(cd):
                    for kh in range(chh):
                        grow = (gp + (od * g.st[0] + kd) * g.gs[2]
                                + (oh * g.st[1] + kh) * g.gs[3] + b0 * sw * gs4)
                        for kw in range(g.ks[2]):
                            jn = (g.isz[2] - kw - b0 * sw + sw - 1) // sw
                            if jn <= 0:
                                break
                            jn = _imin(jn, blen)
                            for j in range(jn):
                                grow[(j * sw + kw) * gs4] += acc[j]
                b0 += blen
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            _factor_row(gp + d * g.gs[2] + h * g.gs[3], gs4,
                        xb + d * g.xs[2] + h * g.xs[3], g.xs[4], g.isz[2], g)


cdef inline void _bwd_cl_item(const real_t* go, const real_t* x, real_t* gi,
                              const G* g, Py_ssize_t it, Py_ssize_t nb) noexcept nogil:
    """Channels-last (channel stride 1 in x and grad_in): sample ``n`` and
    a block of channels ``[c0, c0 + nc)`` of the input gradient: zeroed,
    every window's coefficients (or, for p = ±inf, the output gradients at
    each channel's extreme tap) added along the contiguous channels, then
    the pointwise factor."""
    cdef real_t acc[BLOCK]
    cdef Py_ssize_t boff[BLOCK]
    cdef Py_ssize_t n = it // nb
    cdef Py_ssize_t c0 = (it % nb) * BLOCK
    cdef Py_ssize_t nc = _imin(BLOCK, g.C - c0)
    cdef const real_t* xb = x + n * g.xs[0] + c0
    cdef const real_t* gob = go + n * g.os[0] + c0 * g.os[1]
    cdef real_t* gp = gi + n * g.gs[0] + c0
    cdef Py_ssize_t d, h, w, od, oh, ow, kd, kh, kw, c, cd, chh, cw, cnt, xo, go_off
    cdef const real_t* r
    cdef real_t* grow
    cdef real_t v, m
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            for w in range(g.isz[2]):
                memset(gp + d * g.gs[2] + h * g.gs[3] + w * g.gs[4], 0,
                       nc * sizeof(real_t))
    for od in range(g.osz[0]):
        cd = _count(od, g.ks[0], g.st[0], g.isz[0])
        for oh in range(g.osz[1]):
            chh = _count(oh, g.ks[1], g.st[1], g.isz[1])
            for ow in range(g.osz[2]):
                cw = _count(ow, g.ks[2], g.st[2], g.isz[2])
                cnt = cd * chh * cw
                go_off = od * g.os[2] + oh * g.os[3] + ow * g.os[4]
                if g.extreme != 0:
                    for c in range(nc):
                        acc[c] = -INFINITY
                        boff[c] = ((od * g.st[0]) * g.gs[2] + (oh * g.st[1]) * g.gs[3]
                                   + (ow * g.st[2]) * g.gs[4])
                else:
                    for c in range(nc):
                        acc[c] = 0
                for kd in range(cd):
                    for kh in range(chh):
                        for kw in range(cw):
                            xo = ((od * g.st[0] + kd) * g.xs[2]
                                  + (oh * g.st[1] + kh) * g.xs[3]
                                  + (ow * g.st[2] + kw) * g.xs[4])
                            if g.extreme == 0:
                                _acc_taps(acc, xb + xo, nc, g)
                                continue
                            r = xb + xo
                            for c in range(nc):
                                v = fabs(r[c]) if g.extreme > 0 else -fabs(r[c])
                                m = acc[c]
                                if (v > m) | (v != v):
                                    acc[c] = v
                                    boff[c] = ((od * g.st[0] + kd) * g.gs[2]
                                               + (oh * g.st[1] + kh) * g.gs[3]
                                               + (ow * g.st[2] + kw) * g.gs[4])
                if g.extreme != 0:
                    for c in range(nc):
                        gp[boff[c] + c] += gob[go_off + c * g.os[1]]
                    continue
                for c in range(nc):
                    acc[c] = _coef(acc[c], gob[go_off + c * g.os[1]], cnt, g)
                for kd in range(cd):
                    for kh in range(chh):
                        for kw in range(cw):
                            grow = (gp + (od * g.st[0] + kd) * g.gs[2]
                                    + (oh * g.st[1] + kh) * g.gs[3]
                                    + (ow * g.st[2] + kw) * g.gs[4])
                            for c in range(nc):
                                grow[c] += acc[c]
    for d in range(g.isz[0]):
        for h in range(g.isz[1]):
            for w in range(g.isz[2]):
                _factor_row(gp + d * g.gs[2] + h * g.gs[3] + w * g.gs[4], 1,
                            xb + d * g.xs[2] + h * g.xs[3] + w * g.xs[4], 1, nc, g)


cdef int _bwd_cl(const real_t* go, const real_t* x, real_t* gi, const G* g) noexcept nogil:
    cdef Py_ssize_t it, nb = (g.C + BLOCK - 1) // BLOCK
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        for it in prange(g.N * nb, schedule='static'):
            _bwd_cl_item(go, x, gi, g, it, nb)
    return 0


cdef int _bwd(const real_t* go, const real_t* x, real_t* gi, const G* g) noexcept nogil:
    cdef Py_ssize_t it, nitems = g.N * g.C
    with parallel(num_threads=g.nthreads, use_threads_if=g.parallel):
        for it in prange(nitems, schedule='static'):
            if g.extreme == 0:
                _bwd_plane_rows(go, x, gi, g, it)
            else:
                _bwd_plane_extreme(go, x, gi, g, it)
    return 0


# ------------------------------------------------------ Python wrappers

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


cdef int _setup(G* g, cnp.ndarray x, tuple osz, tuple kernel, tuple stride,
                double p, int nthreads) except -1:
    cdef int i
    g.N = x.shape[0]
    g.C = x.shape[1]
    for i in range(3):
        g.isz[i] = x.shape[2 + i]
        g.osz[i] = osz[i]
        g.ks[i] = kernel[i]
        g.st[i] = stride[i]
        if g.ks[i] < 1 or g.st[i] < 1 or g.isz[i] < 1 or g.osz[i] < 1:
            raise ValueError("invalid window geometry")
        # every window starts inside the input (Python integers: no overflow)
        if (osz[i] - 1) * stride[i] >= x.shape[2 + i]:
            raise ValueError("a window would start outside the input")
    if p != p or p == 0:
        raise ValueError("norm_type must be non-zero and not NaN")
    g.p = p
    g.extreme = 1 if p == INFINITY else (-1 if p == -INFINITY else 0)
    g.K = float(kernel[0]) * float(kernel[1]) * float(kernel[2])
    if g.extreme == 0:
        g.fwd = _pow_mode(p)
        g.root = _pow_mode(1.0 / p)
        g.droot = _pow_mode(1.0 / p - 1.0)
        g.dfwd = _pow_mode(p - 1.0)
    g.nthreads = max(1, nthreads)
    return 0


def lp_pool_forward(cnp.ndarray x not None, cnp.ndarray out not None,
                    tuple kernel, tuple stride, double p, int nthreads,
                    bint stream=False):
    """Fill ``out`` (5-d, the input's dtype) with the Lp pooling of ``x``.
    ``stream``: write the fused stride-2 rows with non-temporal stores
    (``_fwd``; the caller decides by the output's size and origin) where
    the rows allow it: W-contiguous output, rows of one block."""
    cdef G g
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef Py_ssize_t rows, want, planes
    if typenum not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64):
        raise TypeError(f"Lp pooling does not support dtype {x.dtype}")
    if cnp.PyArray_TYPE(out) != typenum:
        raise TypeError("out must have the input's dtype")
    if not cnp.PyArray_ISWRITEABLE(out):
        raise ValueError("out is read-only")
    _strides(x, "x", g.xs)
    _strides(out, "out", g.os)
    if out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1]:
        raise ValueError("out must have the input's N and C")
    _setup(&g, x, (out.shape[2], out.shape[3], out.shape[4]), kernel, stride, p,
           nthreads)
    if g.N * g.C == 0:
        return
    if g.C > 1 and g.xs[1] == 1 and g.os[1] == 1:
        rows = g.N * g.osz[0] * g.osz[1]
        g.nthreads = <int>max(1, min(g.nthreads, rows))
        g.parallel = g.nthreads > 1 and (
            <double>rows * g.C * g.osz[2] * g.ks[0] * g.ks[1] * g.ks[2]
            >= PARALLEL_MIN_WORK)
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                _fwd_cl(<const float*>xp, <float*>op, &g)
            else:
                _fwd_cl(<const double*>xp, <double*>op, &g)
        return
    # work items: bands of output rows of one (n, c, od), whole planes when
    # there are enough of them, and chunks of long rows when even single
    # rows are too few to feed every thread
    planes = g.N * g.C * g.osz[0]
    rows = planes * g.osz[1]
    want = 4 * g.nthreads if g.nthreads > 1 else 1
    g.nband = 1
    if planes < want:
        g.nband = min(g.osz[1], (want + planes - 1) // planes)
    g.band = (g.osz[1] + g.nband - 1) // g.nband
    g.nband = (g.osz[1] + g.band - 1) // g.band
    g.nchunk = 1
    if planes * g.nband < want and g.osz[2] > 2 * BLOCK:
        g.nchunk = min((want + planes * g.nband - 1) // (planes * g.nband),
                       (g.osz[2] + BLOCK - 1) // BLOCK)
    g.chunk = (g.osz[2] + g.nchunk - 1) // g.nchunk
    g.nchunk = (g.osz[2] + g.chunk - 1) // g.chunk
    g.nthreads = <int>max(1, min(g.nthreads, planes * g.nband * g.nchunk))
    g.parallel = g.nthreads > 1 and (
        <double>rows * g.osz[2] * g.ks[0] * g.ks[1] * g.ks[2] >= PARALLEL_MIN_WORK)
    # rows of one block only: items of longer rows go down the plane a
    # block of columns at a time, and streamed so they measured 0.94x into
    # out= (8192 x 8192 float32)
    g.stream = (stream and CYPOOL_HAVE_STREAM and g.os[4] == 1 and g.st[2] == 2
                and g.chunk <= BLOCK)
    cdef int rc = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            rc = _fwd(<const float*>xp, <float*>op, &g)
        else:
            rc = _fwd(<const double*>xp, <double*>op, &g)
    if rc != 0:
        raise MemoryError()


def lp_pool_backward(cnp.ndarray grad_out not None, cnp.ndarray x not None,
                     cnp.ndarray grad_in not None, tuple kernel, tuple stride,
                     double p, int nthreads):
    """Fill ``grad_in`` (``x``'s shape and dtype) with the gradient of Lp
    pooling for the output gradient ``grad_out``."""
    cdef G g
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef const void* gop = cnp.PyArray_DATA(grad_out)
    cdef const void* xp = cnp.PyArray_DATA(x)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef int i
    if typenum not in (cnp.NPY_FLOAT32, cnp.NPY_FLOAT64):
        raise TypeError(f"Lp pooling does not support dtype {x.dtype}")
    if cnp.PyArray_TYPE(grad_out) != typenum or cnp.PyArray_TYPE(grad_in) != typenum:
        raise TypeError("grad_out and grad_in must have the input's dtype")
    if not cnp.PyArray_ISWRITEABLE(grad_in):
        raise ValueError("grad_in is read-only")
    _strides(x, "x", g.xs)
    _strides(grad_out, "grad_out", g.os)
    _strides(grad_in, "grad_in", g.gs)
    for i in range(5):
        if grad_in.shape[i] != x.shape[i]:
            raise ValueError("grad_in must have the input's shape")
    if grad_out.shape[0] != x.shape[0] or grad_out.shape[1] != x.shape[1]:
        raise ValueError("grad_out must have the input's N and C")
    _setup(&g, x, (grad_out.shape[2], grad_out.shape[3], grad_out.shape[4]), kernel,
           stride, p, nthreads)
    if g.N * g.C == 0:
        return
    cdef Py_ssize_t nb = (g.C + BLOCK - 1) // BLOCK
    if g.C > 1 and g.xs[1] == 1 and g.gs[1] == 1:
        g.nthreads = <int>max(1, min(g.nthreads, g.N * nb))
        g.parallel = g.nthreads > 1 and (
            <double>g.N * g.C * g.isz[0] * g.isz[1] * g.isz[2] * 4 >= PARALLEL_MIN_WORK)
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                _bwd_cl(<const float*>gop, <const float*>xp, <float*>gip, &g)
            else:
                _bwd_cl(<const double*>gop, <const double*>xp, <double*>gip, &g)
        return
    g.nthreads = <int>max(1, min(g.nthreads, g.N * g.C))
    g.parallel = g.nthreads > 1 and (
        <double>g.N * g.C * g.isz[0] * g.isz[1] * g.isz[2] * 4 >= PARALLEL_MIN_WORK)
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _bwd(<const float*>gop, <const float*>xp, <float*>gip, &g)
        else:
            _bwd(<const double*>gop, <const double*>xp, <double*>gip, &g)
