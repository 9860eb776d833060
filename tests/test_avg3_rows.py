"""The row kernels of the same-size average (``avg3_kernels.h``, AVX-512
and AVX2 builds): whole 3x3 windows at W stride 1, float32 and float64, one
vector of outputs per step, the last vector of a row overlapping the one
before it.

Compared bit for bit with the reference backend and with the compiled
loop they replace (``_avg3_rows(0)``), on every interior width from 1 to
50 (below one vector the compiled loop runs; at one vector and every
remainder above it the kernels do), with signed zeros, infinities and NaN,
divisors that multiply (powers of two) and divide, strided rows, 3-d
``(1, 3, 3)`` windows, ``out=`` at every offset from a line (nothing written
outside it), and 1 and 2 threads.  In the baseline build both settings
run the compiled loop and the tests still check it."""

import numpy as np
import pytest

import cypool
from conftest import requires_compiled, same_bits_or_nan as _same, with_specials

pytestmark = requires_compiled

@pytest.fixture(params=[1, 0], ids=["kernels", "loop"])
def avg3(request):
    from cypool._compiled import _kernels
    old = _kernels._avg3_rows(request.param)
    yield request.param
    _kernels._avg3_rows(old)


def _data(rng, shape, dtype):
    return with_specials(rng, shape, dtype, 40)


def _ref(fn, x, *args, **kw):
    with cypool.backend("reference"):
        return fn(x, *args, **kw)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_every_width(threads, avg3, dtype):
    rng = np.random.default_rng(np.dtype(dtype).itemsize)
    for w in range(3, 53):
        x = _data(rng, (2, 3, 7, w), dtype)
        for p, cip, dov in [(1, True, None), (0, True, None), (1, False, None),
                            (1, True, 8), (1, True, 16), (1, True, 5), (0, True, -4)]:
            args = (x, 3, 1, p)
            kw = dict(count_include_pad=cip, divisor_override=dov)
            _same(cypool.avg_pool2d(*args, **kw), _ref(cypool.avg_pool2d, *args, **kw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_signed_zeros(threads, avg3, dtype):
    """Windows of nothing but -0 average to +0 (the sum starts from +0),
    whole vectors of them."""
    x = np.full((1, 2, 9, 70), -0.0, dtype)
    x[0, 0, 4, 30] = 1.5
    x[0, 1, :, 50:] = -2.0
    got = cypool.avg_pool2d(x, 3, 1, 1)
    _same(got, _ref(cypool.avg_pool2d, x, 3, 1, 1))
    assert not np.signbit(got[0, 0, 2:7, 10:20]).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_kernels_match_loop(threads, dtype):
    """The kernels against the compiled loop they replace, on random planes
    with every remainder of both vector widths."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(7)
    for w in (18, 33, 47, 64, 65, 113, 224, 257):
        x = _data(rng, (3, 4, 11, w), dtype)
        old = _kernels._avg3_rows(1)
        try:
            on = cypool.avg_pool2d(x, 3, 1, 1)
            _kernels._avg3_rows(0)
            off = cypool.avg_pool2d(x, 3, 1, 1)
        finally:
            _kernels._avg3_rows(old)
        _same(on, off)


def test_layouts(threads, avg3):
    rng = np.random.default_rng(3)
    base = _data(rng, (2, 3, 40, 90), np.float32)
    views = [base[:, :, 1:-1, 3:70],          # rows strided past the window
             base[:, :, ::2, 5:60],           # every other row
             base[:, ::-1, :, 1:45],          # reversed channels
             np.asfortranarray(base)[:, :, :, 2:]]
    for v in views:
        _same(cypool.avg_pool2d(v, 3, 1, 1), _ref(cypool.avg_pool2d, v, 3, 1, 1))
        _same(cypool.avg_pool2d(v, 3, (2, 1), 1, ceil_mode=True),
              _ref(cypool.avg_pool2d, v, 3, (2, 1), 1, ceil_mode=True))


def test_volumes(threads, avg3):
    rng = np.random.default_rng(4)
    x = _data(rng, (2, 2, 5, 9, 37), np.float64)
    for k, s, p in [((1, 3, 3), 1, (0, 1, 1)), ((1, 3, 3), (2, 1, 1), 0),
                    ((2, 3, 3), 1, (1, 1, 1))]:
        _same(cypool.avg_pool3d(x, k, s, p), _ref(cypool.avg_pool3d, x, k, s, p))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_out_offsets(threads, avg3, dtype):
    """Into ``out=`` at every element offset from a 64-byte line, inside a
    guard buffer: the overlapping last vector of each row rewrites only
    that row's outputs, nothing outside the result is written."""
    rng = np.random.default_rng(5)
    x = _data(rng, (2, 3, 6, 41), dtype)
    want = _ref(cypool.avg_pool2d, x, 3, 1, 1)
    item = np.dtype(dtype).itemsize
    for off in range(64 // item):
        buf = np.full(want.size + 40 + 64 // item, 12345.0, dtype)
        off += (-buf.ctypes.data % 64) // item       # from a line's start
        win = buf[off:off + want.size].reshape(want.shape)
        got = cypool.avg_pool2d(x, 3, 1, 1, out=win)
        assert got is win
        _same(win.copy(), want)
        assert (buf[:off] == 12345.0).all() and (buf[off + want.size:] == 12345.0).all()
