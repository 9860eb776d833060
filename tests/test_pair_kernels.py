"""Max pooling (with and without indices) and average pooling over 2x2
windows at stride 2 of float32 planes whose output rows hold at most 8
values (pair_kernels.h, AVX-512 builds; the other builds take the tiling
and table paths, which the same tests then check).  Bit for bit against
the reference backend on data full of ties, signed zeros and NaNs with
distinct payloads, so that the element PyTorch's scan-order rule picks is
what is checked, not only its value, and the sign of zero sums; strided,
reversed and 3-d inputs, outputs at odd offsets, and input that ends at
an unreadable page."""

import contextlib
import ctypes
import mmap
import sys

import numpy as np
import pytest

import cypool
from conftest import requires_compiled, same_bits_or_nan as _same_avg

pytestmark = requires_compiled


def _nan(payload):
    bits = np.array(np.nan, np.float32).view(np.uint32) | np.uint32(payload)
    if payload % 2:
        bits = bits | np.uint32(1 << 31)
    return bits.view(np.float32)


def _data(rng, shape, nan_rate=0.1):
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 0.0, 1.0, 2.0], np.float32), shape)
    hit = rng.random(shape) < nan_rate
    x[hit] = [_nan(int(p)) for p in rng.integers(1, 1000, hit.sum())]
    return x


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def _check(x, *args, out=None, **kw):
    """Max with indices, max and average of x, bit for bit the reference at
    1 and 2 threads; returns the max and indices."""
    nd = x.ndim - 2
    mp = getattr(cypool, f"max_pool{nd}d")
    ap = getattr(cypool, f"avg_pool{nd}d")
    with cypool.backend("reference"):
        want, want_i = mp(x, *args, return_indices=True, **kw)
        want_avg = ap(x, *args, **kw) if len(args) < 4 else None
    for th in (1, 2):
        with cypool.num_threads(th):
            got, got_i = mp(x, *args, return_indices=True, out=out, **kw)
            got_v = mp(x, *args, **kw)
            got_avg = ap(x, *args, **kw) if want_avg is not None else None
        np.testing.assert_array_equal(_bits(got), _bits(want))
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_array_equal(_bits(got_v), _bits(want))
        if want_avg is not None:
            _same_avg(got_avg, want_avg)
    return got, got_i


@pytest.mark.parametrize("h", [2, 3, 4, 5, 14, 15])
def test_widths_bitwise(h):
    rng = np.random.default_rng(h)
    for w in range(2, 20):
        x = _data(rng, (3, 5, h, w))
        for ceil in (False, True):
            _check(x, 2, 2, 0, ceil_mode=ceil)


def test_views_bitwise():
    """Rows at a stride (a window of wider rows), reversed rows, every
    other row, reversed planes."""
    rng = np.random.default_rng(1)
    base = _data(rng, (2, 6, 14, 40))
    for name, v in [("narrow window", base[..., 3:17]), ("reversed rows", base[:, :, ::-1, :14]),
                    ("every other row", np.repeat(base, 2, axis=2)[:, :, ::2, 5:19]),
                    ("reversed channels", base[:, ::-1, :, :13])]:
        _check(v, 2)


def test_3d_bitwise():
    """1x2x2 windows over volumes: each depth slice is a slice of its own
    (the flat index counts the slices before it)."""
    rng = np.random.default_rng(2)
    x = _data(rng, (2, 3, 5, 9, 12))
    for sd in (1, 2, 3):
        _check(x, (1, 2, 2), (sd, 2, 2))


def test_out_arrays():
    """Into ``out=`` arrays holding other values, and past them nothing:
    the results are written into windows of larger buffers."""
    rng = np.random.default_rng(3)
    x = _data(rng, (4, 8, 14, 14))
    ob = np.full(4 * 8 * 7 * 7 + 10, 7.0, np.float32)
    ib = np.full(4 * 8 * 7 * 7 + 10, -5, np.int64)
    o = ob[3:-7].reshape(4, 8, 7, 7)
    i = ib[5:-5].reshape(4, 8, 7, 7)
    _check(x, 2, out=(o, i))
    assert (ob[:3] == 7).all() and (ob[-7:] == 7).all()
    assert (ib[:5] == -5).all() and (ib[-5:] == -5).all()


def test_matches_other_paths():
    """The tiling and table paths (``_pair_rows(0)``) on the same random
    float data, and the reference: one more independent set of kernels."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(4)
    x = rng.standard_normal((8, 64, 14, 14)).astype(np.float32)
    got = _check(x, 2)
    got_avg = cypool.avg_pool2d(x, 2)
    old = _kernels._pair_rows(0)
    try:
        other = cypool.max_pool2d(x, 2, return_indices=True)
        other_v = cypool.max_pool2d(x, 2)
        other_avg = cypool.avg_pool2d(x, 2)
    finally:
        _kernels._pair_rows(old)
    np.testing.assert_array_equal(got[0], other[0])
    np.testing.assert_array_equal(got[1], other[1])
    np.testing.assert_array_equal(got[0], other_v)
    np.testing.assert_array_equal(_bits(got_avg), _bits(other_avg))


def test_avg_divisor_override():
    rng = np.random.default_rng(6)
    x = _data(rng, (2, 5, 14, 14), nan_rate=0.02)
    for dv in (1, 3, 4, 7):
        with cypool.backend("reference"):
            want = cypool.avg_pool2d(x, 2, divisor_override=dv)
        _same_avg(cypool.avg_pool2d(x, 2, divisor_override=dv), want)


@contextlib.contextmanager
def _guarded(shape, seed):
    """A float32 array of ``shape`` (random test data) whose last element
    is the last one before a page that cannot be read (Linux, mprotect
    through libc)."""
    page = mmap.PAGESIZE
    buf = mmap.mmap(-1, 3 * page)
    libc = ctypes.CDLL(None, use_errno=True)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(ctypes.c_void_p(addr + 2 * page), page, 0) == 0  # PROT_NONE
    n = int(np.prod(shape))
    a = np.frombuffer(buf, np.float32, count=n, offset=2 * page - 4 * n).reshape(shape)
    try:
        a[...] = _data(np.random.default_rng(seed), shape)
        yield a
    finally:
        # readable again before the mapping goes (with the last array on it)
        libc.mprotect(ctypes.c_void_p(addr + 2 * page), page, 3)  # PROT_READ | PROT_WRITE


LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect via libc")


@LINUX
@pytest.mark.parametrize("w", [2, 14, 15, 16])
def test_input_ending_at_an_unreadable_page(w):
    """Input whose last element is the last byte before a page that cannot
    be read: a load past the last window's columns would crash the run."""
    with _guarded((1, 3, 6, w), w) as a:
        _check(a, 2)


def _check_max(x, *args, **kw):
    nd = x.ndim - 2
    mp = getattr(cypool, f"max_pool{nd}d")
    with cypool.backend("reference"):
        want = mp(x, *args, **kw)
    for th in (1, 2):
        with cypool.num_threads(th):
            got = mp(x, *args, **kw)
        np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("h", [3, 4, 5, 6, 13, 14, 15, 16])
def test_max_3x3_stride_2_bitwise(h):
    """3x3 windows at stride 2 (``cypool_pair3_max``): rows of 1-7 outputs
    and the widths past them (8 outputs and more take the other paths),
    either rounding, strides 1 and 3 as controls."""
    rng = np.random.default_rng(100 + h)
    for w in range(3, 20):
        x = _data(rng, (3, 4, h, w))
        for ceil in (False, True):
            _check_max(x, 3, 2, 0, ceil_mode=ceil)
        _check_max(x, 3, (2, 1))
        _check_max(x, 3, (1, 2))


def test_max_3x3_views_and_3d():
    rng = np.random.default_rng(7)
    base = _data(rng, (2, 6, 13, 40))
    for v in [base[..., 5:18], base[:, :, ::-1, :13], np.repeat(base, 2, axis=2)[:, :, ::2, 2:17],
              base[:, ::-1, :, :15]]:
        _check_max(v, 3, 2)
    x = _data(rng, (2, 3, 5, 11, 13))
    for sd in (1, 2):
        _check_max(x, (1, 3, 3), (sd, 2, 2))


@LINUX
@pytest.mark.parametrize("w", [3, 13, 15, 16])
def test_max_3x3_input_ending_at_an_unreadable_page(w):
    with _guarded((1, 3, 7, w), w) as a:
        _check_max(a, 3, 2)
