"""Average pooling divides by a power-of-two divisor as a multiply by its
exact reciprocal (``_pow2_recip`` in ``_pool.pyx``).  That is the same
correctly rounded quotient only if nothing is lost on the way, so these
tests feed the cases where a quotient rounds: subnormal sums (halved or
quartered into the subnormal range, ties included), signed zeros,
infinities and NaNs (a NaN need only stay a NaN: its sign depends on the
order of the operands), with 2x2 windows (divisor 4), 1x2 and 2x1 (divisor 2),
4x4 (16) and overrides, planar and channels-last, compared bit for bit with
the reference backend, which divides."""

import zlib

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled

UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _assert_same(got, want, msg):
    """Bit for bit, except that a NaN need only be a NaN: the sign of the
    NaN that ``inf + -inf`` makes depends on the order of the operands,
    and the two backends add large windows in different orders."""
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=msg)
    u = UINT[want.dtype]
    np.testing.assert_array_equal(np.ascontiguousarray(got).view(u)[~nan],
                                  np.ascontiguousarray(want).view(u)[~nan], err_msg=msg)


def _data(rng, shape, dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    normal = np.finfo(dtype).tiny
    pool = np.array([tiny, -tiny, 3 * tiny, 5 * tiny, 7 * tiny, normal, -normal,
                     normal * 1.5, 0.0, -0.0, 1.0, -3.0, np.inf, -np.inf, np.nan,
                     np.finfo(dtype).max], dtype=dtype)
    x = rng.choice(pool, shape)
    # mostly tiny values, so that most windows' sums are subnormal
    small = rng.random(shape) < 0.7
    x[small] = (rng.integers(-9, 10, small.sum()) * tiny).astype(dtype)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("kernel,stride,override", [
    ((2, 2), (2, 2), None), ((2, 2), (1, 1), None), ((1, 2), (1, 2), None),
    ((2, 1), (2, 1), None), ((4, 4), (4, 4), None), ((2, 2), (2, 2), 8),
    ((3, 3), (2, 2), 4), ((3, 3), (3, 3), None), ((2, 2), (2, 2), 3)])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "cl"])
def test_pow2_divisor_bitwise(dtype, kernel, stride, override, channels_last):
    rng = np.random.default_rng(zlib.crc32(repr((kernel, stride, override)).encode()))
    subnormal = 0
    for shape in [(2, 3, 8, 36), (1, 2, 5, 7), (2, 17, 6, 10)]:
        x = _data(rng, shape, dtype)
        if channels_last:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        kw = dict(divisor_override=override, channels_last=channels_last)
        with cypool.backend("reference"):
            want = cypool.avg_pool2d(x, kernel, stride, **kw)
        got = cypool.avg_pool2d(x, kernel, stride, **kw)
        _assert_same(got, want, str(shape))
        subnormal += np.count_nonzero((got != 0) & (np.abs(got) < np.finfo(dtype).tiny))
    assert subnormal > 0   # the data did reach the rounding cases


@pytest.mark.parametrize("include_pad", [True, False])
def test_pow2_divisor_padding(include_pad):
    """With padding the divisors vary along the row (4, 2, 1 at the edges
    without count_include_pad): the row is not taken as uniform."""
    rng = np.random.default_rng(3)
    x = _data(rng, (2, 3, 9, 33), np.float32)
    with cypool.backend("reference"):
        want = cypool.avg_pool2d(x, 2, 2, 1, count_include_pad=include_pad)
    got = cypool.avg_pool2d(x, 2, 2, 1, count_include_pad=include_pad)
    _assert_same(got, want, "")
