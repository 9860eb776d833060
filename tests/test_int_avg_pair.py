"""The 8/16-bit mean over windows two pixels wide and two rows high (the 2 x 2
image mean; ``_avg_int_pair_row``): four-term sums in int32, the quotient by
a power of two in closed form (toward zero, or to nearest with ties to
even), and for several channels a pass over every row position followed by
a per-pixel gather (RGB: overlapping four-element copies).

Compared exactly with the reference backend: every 8/16-bit dtype, 1 to 8
channels, planar and channels-last, row widths from one output pixel up,
both roundings, divisors 2 to 2**30 by ``divisor_override`` and the
default 4, windows with only two rows in bounds (H padding, a depth pair in
3-d), values chosen so that every remainder and every tie occurs, the
dtype's extremes, rows cut into chunks, ``out=`` arrays, and 1 and 2
threads."""

import numpy as np
import pytest

import cypool
from conftest import both_backends_equal as _both, requires_compiled

pytestmark = requires_compiled

DTYPES = [np.uint8, np.int8, np.uint16, np.int16]
ROUNDINGS = ["truncate", "nearest"]


def _data(rng, shape, dtype, kind):
    info = np.iinfo(dtype)
    if kind == "extreme":
        vals = [info.min, info.max, info.min + 1, info.max - 1, 0, 1, 2, 3]
        if info.min < 0:
            vals += [-1, -2, -3]
        return rng.choice(np.array(vals, dtype=dtype), size=shape)
    if kind == "small":
        # sums of four small values: every remainder mod 4 (and mod 8, 16)
        # with even and odd quotients, negative ones for signed types
        lo = -9 if info.min < 0 else 0
        return rng.integers(lo, 10, size=shape).astype(dtype)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("kind", ["random", "small", "extreme"])
def test_channels_last(threads, dtype, channels, kind):
    rng = np.random.default_rng([channels, len(kind), np.dtype(dtype).itemsize])
    for h, w in [(2, 2), (2, 4), (4, 6), (6, 17), (5, 64), (3, 131)]:
        x = _data(rng, (2, h, w, channels), dtype, kind)
        for rounding in ROUNDINGS:
            _both(cypool.avg_pool2d, x, 2, channels_last=True, rounding=rounding)
            for d in (2, 8, 16):
                _both(cypool.avg_pool2d, x, 2, channels_last=True, rounding=rounding,
                      divisor_override=d)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", ["random", "small", "extreme"])
def test_planar(threads, dtype, kind):
    rng = np.random.default_rng([3, len(kind), np.dtype(dtype).itemsize])
    for h, w in [(2, 2), (4, 3), (6, 34), (7, 129)]:
        x = _data(rng, (2, 3, h, w), dtype, kind)
        for rounding in ROUNDINGS:
            _both(cypool.avg_pool2d, x, 2, rounding=rounding)
            _both(cypool.avg_pool2d, x, 2, rounding=rounding, divisor_override=2)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_large_divisors(dtype):
    """Shifts up to 30 bits take the pair kernel; 2**31 and a negative
    power of two take the general one."""
    rng = np.random.default_rng(7)
    x = _data(rng, (1, 6, 10, 3), dtype, "extreme")
    for d in (2 ** 20, 2 ** 29, 2 ** 30, 2 ** 31, -4):
        for rounding in ROUNDINGS:
            _both(cypool.avg_pool2d, x, 2, channels_last=True, rounding=rounding,
                  divisor_override=d)
            _both(cypool.avg_pool2d, np.ascontiguousarray(np.moveaxis(x, -1, 1)), 2,
                  rounding=rounding, divisor_override=d)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_windows_with_two_rows_in_bounds(threads, dtype, channels):
    """Windows three rows high whose edge windows keep two in-bounds rows
    (divisor 4 without the padding, 6 with it), two-row windows of which
    the edge ones keep one, and a 3-d window whose two rows lie in two
    depth slices."""
    rng = np.random.default_rng(channels)
    x = _data(rng, (2, 7, 10, channels), dtype, "small")
    for rounding in ROUNDINGS:
        for cip in (False, True):
            _both(cypool.avg_pool2d, x, (3, 2), (2, 2), (1, 0), channels_last=True,
                  count_include_pad=cip, rounding=rounding)
            _both(cypool.avg_pool2d, x, (2, 2), (2, 2), (1, 0), channels_last=True,
                  count_include_pad=cip, rounding=rounding)
            _both(cypool.avg_pool2d, x, (3, 2), (2, 2), (1, 0), ceil_mode=True,
                  channels_last=True, count_include_pad=cip, rounding=rounding)
    v = _data(rng, (2, 4, 5, 6, channels), dtype, "small")
    for k in [(2, 1, 2), (1, 2, 2), (2, 2, 2)]:
        for rounding in ROUNDINGS:
            _both(cypool.avg_pool3d, v, k, channels_last=True, rounding=rounding)
            _both(cypool.avg_pool3d, np.ascontiguousarray(np.moveaxis(v, -1, 1)), k,
                  rounding=rounding)


def test_chunked_rows(threads):
    """Rows longer than one work item's buffer: the pair kernel runs on
    chunks starting inside the row."""
    rng = np.random.default_rng(11)
    x = _data(rng, (1, 4, 24002, 3), np.uint8, "random")
    for rounding in ROUNDINGS:
        _both(cypool.avg_pool2d, x, 2, channels_last=True, rounding=rounding)
    y = _data(rng, (1, 4, 40002, 1), np.int16, "small")
    _both(cypool.avg_pool2d, y, 2, channels_last=True, rounding="nearest")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_out_inside_a_guard_buffer(threads, dtype, channels):
    """Into ``out=`` arrays that are a window of a larger buffer, at every
    element offset: the values are the reference's, and no element before
    or after the window is written (the RGB gather copies four elements per
    pixel; the last pixel's spare one must not land past the end)."""
    rng = np.random.default_rng(channels + 20)
    x = _data(rng, (2, 6, 14, channels), dtype, "random")
    with cypool.backend("reference"):
        want = cypool.avg_pool2d(x, 2, channels_last=True, rounding="nearest")
    for off in range(4):
        buf = np.full(want.size + 8, 7, dtype)
        out = buf[off:off + want.size].reshape(want.shape)
        cypool.avg_pool2d(x, 2, channels_last=True, rounding="nearest", out=out)
        np.testing.assert_array_equal(out, want)
        assert (buf[:off] == 7).all() and (buf[off + want.size:] == 7).all()


def test_rgb_against_integer_arithmetic():
    """Independent of the reference backend: the 2 x 2 RGB mean of uint8
    data is ``(a + b + c + d) // 4`` in int64 (toward zero is the floor for
    nonnegative sums), and round-half-to-even of ``s / 4`` otherwise."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(1, 10, 22, 3), dtype=np.uint8)
    s = x.astype(np.int64).reshape(1, 5, 2, 11, 2, 3).sum(axis=(2, 4))
    got = cypool.avg_pool2d(x, 2, channels_last=True)
    np.testing.assert_array_equal(got, (s // 4).astype(np.uint8))
    got = cypool.avg_pool2d(x, 2, channels_last=True, rounding="nearest")
    np.testing.assert_array_equal(got, np.round(s / 4).astype(np.uint8))
