"""The separable kernel of planar max pooling over 3x3 windows at stride
2x2 (values only; ``sep_kernels.h``): row maxima first, then the maximum of
a window's three row maxima, one or two new input rows per output row.

Compared with the reference backend bit for bit (signed zeros and NaN
payloads included) with the kernel on at every row length and off (the
row kernels), on: every padding and rounding (windows of one, two and
three rows at the top and bottom, one or two columns at the sides), work
items that start inside a plane (bands of rows for N=1 at 2 threads,
chunks of rows over 2048 outputs), reversed and stepped rows, 3-d inputs
with 1x3x3 windows, every dtype, NaN at each tap of a window (the row
kernels then redo the block), infinities (false alarms), and ties of
signed zeros placed so that columns-first would pick the other zero."""

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled

UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(UINT[a.dtype]) if a.dtype in UINT else a


@pytest.fixture(params=["sep", "rows"])
def sep(request):
    from cypool._compiled import _kernels
    old = _kernels._sep3()
    # the AVX-512 kernel of short rows (test_pair_kernels.py) off, so that
    # those rows reach the kernel named
    old_pair = _kernels._pair_rows(0)
    _kernels._sep3(*((1, 0) if request.param == "sep" else (0, 0)))
    yield request.param
    _kernels._sep3(*old)
    _kernels._pair_rows(old_pair)


def _check(x, pool=None, **kw):
    pool = pool or cypool.max_pool2d
    with cypool.backend("reference"):
        want = pool(x, 3, 2, **kw)
    got = pool(x, 3, 2, **kw)
    np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"{x.shape} {kw}")
    return got


def _values(rng, shape, dtype):
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.choice(np.array([info.min, info.min + 1, 0, 3, info.max], dtype), shape)
    return rng.choice(np.array([-2.0, -1.0, -0.0, 0.0, 0.5, 1.0], dtype), shape)


def test_kernel_switch_is_real():
    """The setting reaches the kernels: its previous value comes back."""
    from cypool._compiled import _kernels
    old = _kernels._sep3(0, 5)
    try:
        assert _kernels._sep3() == (False, 5)
    finally:
        _kernels._sep3(*old)
    assert _kernels._sep3() == old


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64,
                                   np.int16, np.uint8], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pad", [0, 1, (0, 1), (1, 0)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_geometries(threads, sep, dtype, pad, ceil_mode):
    rng = np.random.default_rng([np.dtype(dtype).itemsize, int(ceil_mode)])
    for h, w in [(3, 3), (4, 4), (5, 6), (6, 5), (7, 7), (8, 9), (9, 8), (12, 40),
                 (13, 41), (2, 35), (35, 2), (1, 33), (17, 130)]:
        if (h + 2 * (pad if isinstance(pad, int) else pad[0]) < 3
                or w + 2 * (pad if isinstance(pad, int) else pad[1]) < 3):
            continue
        x = _values(rng, (2, 3, h, w), dtype)
        _check(x, padding=pad, ceil_mode=ceil_mode)


def test_items_inside_planes(sep):
    """N=1 at 2 threads: bands of rows, so blocks start at output rows > 0
    (no row maxima carried over); rows of over 2048 outputs: chunks, whose
    first columns are not the row's."""
    rng = np.random.default_rng(7)
    with cypool.num_threads(2):
        for shape in [(1, 1, 41, 70), (1, 2, 64, 33), (1, 1, 9, 2 * 2048 * 2 + 13)]:
            x = _values(rng, shape, np.float32)
            for pad in (0, 1):
                for ceil_mode in (False, True):
                    _check(x, padding=pad, ceil_mode=ceil_mode)


@pytest.mark.parametrize("layout", ["reversed", "step", "transposed"])
def test_layouts(threads, sep, layout):
    rng = np.random.default_rng(11)
    base = _values(rng, (2, 3, 23, 61), np.float32)
    x = {"reversed": base[:, :, ::-1],
         "step": _values(rng, (2, 3, 46, 61), np.float32)[:, :, ::2],
         "transposed": np.ascontiguousarray(base.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)}[layout]
    _check(x, padding=1)
    _check(x, padding=0, ceil_mode=True)


def test_three_d(threads, sep):
    rng = np.random.default_rng(5)
    x = _values(rng, (2, 2, 3, 19, 26), np.float32)
    for pad in (0, (0, 1, 1)):
        with cypool.backend("reference"):
            want = cypool.max_pool3d(x, (1, 3, 3), (1, 2, 2), pad, ceil_mode=True)
        got = cypool.max_pool3d(x, (1, 3, 3), (1, 2, 2), pad, ceil_mode=True)
        np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_nan_at_every_tap(sep, dtype):
    """A NaN (with its own payload) at each of the 9 taps of an interior
    window and of a padded corner window, among random values: the kernel's
    alarm hands the block to the exact row kernels."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((1, 1, 11, 40)).astype(dtype)
    payload = np.array([0x7FC00123 if dtype == np.float32 else 0x7FF8000000000123],
                       dtype=UINT[np.dtype(dtype)]).view(dtype)[0]
    for y0, x0 in [(4, 10), (-1, -1), (8, 37)]:
        for dy in range(3):
            for dx in range(3):
                y, xx = y0 + dy, x0 + dx
                if not (0 <= y < 11 and 0 <= xx < 40):
                    continue
                x = base.copy()
                x[0, 0, y, xx] = payload
                got = _check(x, padding=1, ceil_mode=True)
                assert np.isnan(got).any()


def test_infinities_false_alarm(sep):
    """+inf and -inf in one window make the alarm's sum NaN: the rerun must
    give the same result."""
    x = np.zeros((1, 2, 9, 37), np.float32)
    x[0, 0, 4, 10] = np.inf
    x[0, 0, 4, 11] = -np.inf
    x[0, 1, 2, 30] = -np.inf
    got = _check(x, padding=1)
    assert np.isinf(got).any()


def test_signed_zero_ties_follow_scan_order(threads, sep):
    """Windows whose maximum is zero, with -0 and +0 placed so that the
    first zero in scan order (row-major, PyTorch) and the first in
    column-major order differ: [[-1, -0, -1], [+0, -1, -1], ...]."""
    x = np.full((1, 1, 9, 65), -1.0, np.float32)
    for j in range(0, 63, 2):
        x[0, 0, 2, j + 1] = -0.0 if j % 4 else 0.0
        x[0, 0, 3, j] = 0.0 if j % 4 else -0.0
    got = _check(x)
    assert (got[0, 0, 1] == 0).all() and np.signbit(got[0, 0, 1]).any() \
        and (~np.signbit(got[0, 0, 1])).any()


def test_random_against_row_kernels(threads):
    """Random values and shapes: the separable kernel gives the row
    kernels' bits."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(13)
    old = _kernels._sep3()
    try:
        for _ in range(40):
            h, w = rng.integers(3, 60, 2)
            pad = tuple(int(p) for p in rng.integers(0, 2, 2))
            ceil_mode = bool(rng.integers(0, 2))
            dtype = rng.choice([np.float32, np.float64, np.int32])
            x = (rng.standard_normal((2, 2, h, w)) * 100).astype(dtype)
            _kernels._sep3(1, 0)
            a = cypool.max_pool2d(x, 3, 2, pad, ceil_mode=ceil_mode)
            _kernels._sep3(0, 0)
            b = cypool.max_pool2d(x, 3, 2, pad, ceil_mode=ceil_mode)
            np.testing.assert_array_equal(_bits(a), _bits(b))
    finally:
        _kernels._sep3(*old)


@pytest.mark.parametrize("extra", [(2, 0), (0, 2), (1, 1)])
def test_kernel_calls_with_oversized_outputs(sep, extra):
    """Direct kernel calls may pass any output shape: output rows or
    columns whose windows have no in-bounds tap must not send the separable
    kernel past the input (it requires a tap in every window, and leaves
    such calls to the row kernels): -inf there, cypool's rule for windows
    without taps, and the valid part equal to the public call's."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 3, 1, 13, 29)).astype(np.float32)
    oh, ow = 7 + extra[0], 15 + extra[1]
    out = np.full((2, 3, 1, oh, ow), 9.0, np.float32)
    _kernels.max_pool_forward(x, out, None, (1, 3, 3), (1, 2, 2), (1, 1, 1), (0, 1, 1), 1)
    with cypool.backend("reference"):
        want = cypool.max_pool2d(x[:, :, 0], 3, 2, 1)
    np.testing.assert_array_equal(_bits(out[:, :, 0, :7, :15]), _bits(want))
    assert (out[:, :, 0, 7:] == -np.inf).all() and (out[:, :, 0, :, 15:] == -np.inf).all()
