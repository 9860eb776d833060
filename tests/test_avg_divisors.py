"""Average pooling's quotients, bit for bit, for divisors that are not
powers of two (those are ``test_avg_pow2.py``), and the sign of zero in the
backward.

The oracles are NumPy's float32 divide (IEEE, correctly rounded) and the
reference backend, which divides.

- ``test_every_significand``: ``avg_pool2d`` with a 1x1 window and
  ``divisor_override=d`` returns x/d for every float32 significand (2**23
  values in [1, 2)), for a set of divisors.
- ``test_scaled_binades``: random significands in every binade, down into
  the subnormal range, where quotients round to subnormals.
- ``test_pooling_forward``: windows with divisors 9, 6, 4, 3, 25, 7, 65535,
  65536, 65537 and a negative override, planar and channels-last, 1-d to 3-d,
  over data with zeros of both signs, subnormals, infinities and NaNs.
- ``test_pooling_backward`` (windows that do not overlap, so that each input
  gradient is one quotient) and ``test_backward_negative_zero``: PyTorch adds
  each output gradient over its divisor to a zeroed input gradient, so a -0
  quotient lands as +0, on every path (rows stored without a zero fill,
  overlapping windows, channels-last).
"""

import functools
import zlib

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def _assert_same(got, want, msg=""):
    """Bit for bit, except that a NaN need only be a NaN (its sign depends
    on the order of the operands of inf + -inf)."""
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=msg)
    np.testing.assert_array_equal(_bits(got)[~nan], _bits(want)[~nan], err_msg=msg)


@functools.lru_cache(maxsize=1)
def _significands():
    """Every float32 in [1, 2) (32 MB, built once, when first needed)."""
    return (np.arange(1 << 23, dtype=np.uint32) + np.uint32(0x3F800000)).view(np.float32)


def _divisors():
    rng = np.random.default_rng(20261129)
    odd = rng.integers(0, 1 << 15, 4) * 2 + 1          # odd d up to 2**16
    return sorted({3, 6, 7, 9, 25, 49, 65535, 65537, 100003, *map(int, odd)})


@pytest.mark.parametrize("d", _divisors())
def test_every_significand(d):
    x = _significands().reshape(1, 1, -1, 1024)
    got = cypool.avg_pool2d(x, 1, 1, divisor_override=d)
    want = x / np.float32(d)
    mism = np.flatnonzero(_bits(got) != _bits(want))
    assert mism.size == 0, (d, x.ravel()[mism[:5]], got.ravel()[mism[:5]],
                            want.ravel()[mism[:5]])


@pytest.mark.parametrize("d", [3, 7, 9, 25, 1000, 65535, 65536])
@pytest.mark.parametrize("sign", [1, -1])
def test_scaled_binades(d, sign):
    """Random significands in binades from the largest down to the alarm
    threshold (2**-100) and below it, into the subnormal range."""
    rng = np.random.default_rng(zlib.crc32(repr((d, sign)).encode()))
    exps = np.arange(-149, 128)
    m = rng.integers(0x800000, 0x1000000, (exps.size, 512)).astype(np.float64)
    x = (sign * np.ldexp(m, exps[:, None] - 23)).astype(np.float32)
    x[~np.isfinite(x)] = np.float32(sign) * np.finfo(np.float32).max
    x = x.reshape(1, 1, exps.size, 512)
    got = cypool.avg_pool2d(x, 1, 1, divisor_override=d)
    with np.errstate(under="ignore"):
        want = x / np.float32(d)
    _assert_same(got, want, str(d))
    assert np.count_nonzero((want != 0) & (np.abs(want) < np.finfo(np.float32).tiny))


def _hostile(rng, shape, nrows_special=3):
    """Random normal data; a few rows get zeros of both signs, tiny normal
    values (about 2**-100), subnormals, infinities or a NaN, and one row is
    all tiny values."""
    x = rng.standard_normal(shape).astype(np.float32) * np.float32(
        2.0 ** rng.integers(-20, 20))
    flat = x.reshape(-1, shape[-1])
    t = np.float32(2.0 ** -100)
    specials = [np.float32(0), np.float32(-0.0), t, -t, np.nextafter(t, 0),
                np.float32(2.0 ** -101), np.float32(1e-40), np.float32(np.inf),
                np.float32(-np.inf), np.float32(np.nan), np.finfo(np.float32).max]
    for _ in range(nrows_special):
        r = rng.integers(flat.shape[0])
        cols = rng.integers(0, shape[-1], 3)
        flat[r, cols] = rng.choice(specials, 3)
    # one row entirely of tiny values
    r = rng.integers(flat.shape[0])
    flat[r] = t * np.float32(rng.integers(1, 20)) * rng.choice([-1, 1], shape[-1])
    return x


_CASES = [
    # (nd, kernel, stride, padding, ceil_mode, count_include_pad, override)
    (2, 3, 1, 1, False, True, None),          # 9 everywhere
    (2, 3, 1, 1, False, False, None),         # 9, 6 and 4
    (2, 3, 2, 1, True, True, None),
    (2, (3, 2), 1, 0, False, True, None),     # 6
    (2, 5, 3, 2, True, False, None),
    (2, 2, 2, 0, False, True, 7),
    (2, 3, 3, 0, False, True, 65535),
    (2, 3, 3, 0, False, True, 65537),
    (2, 3, 1, 1, False, True, -9),            # divides (negative override)
    (1, 3, 1, 1, False, True, None),
    (1, 5, 2, 2, True, False, None),
    (3, 3, 1, 1, False, True, None),          # 27
    (3, (1, 3, 3), (1, 2, 2), (0, 1, 1), False, False, None),
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["planar", "cl"])
@pytest.mark.parametrize("case", _CASES, ids=[str(c) for c in _CASES])
def test_pooling_forward(case, channels_last):
    nd, k, s, p, ceil, incl, ov = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()))
    fn = getattr(cypool, f"avg_pool{nd}d")
    for C in (3, 20):
        shape = (2, C) + tuple(int(v) for v in rng.integers(5, 19, nd))
        x = _hostile(rng, shape)
        if channels_last:
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
        kw = dict(ceil_mode=ceil, count_include_pad=incl, divisor_override=ov,
                  channels_last=channels_last)
        with cypool.backend("reference"):
            want = fn(x, k, s, p, **kw)
        got = fn(x, k, s, p, **kw)
        _assert_same(got, want, str(shape))


def _backward_pair(case, go_fn, channels_last, seed):
    nd, k, s, p, ceil, incl, ov = case
    rng = np.random.default_rng(zlib.crc32(repr(case).encode()) + seed)
    fwd = getattr(cypool, f"avg_pool{nd}d")
    bwd = getattr(cypool, f"avg_pool{nd}d_backward")
    shape = (2, 4) + tuple(int(v) for v in rng.integers(5, 19, nd))
    kw = dict(ceil_mode=ceil, count_include_pad=incl, divisor_override=ov)
    with cypool.backend("reference"):
        oshape = fwd(np.zeros(shape, np.float32), k, s, p, **kw).shape
    go = go_fn(rng, oshape)
    if channels_last:
        go = np.ascontiguousarray(np.moveaxis(go, 1, -1))
        shape = (shape[0],) + shape[2:] + (shape[1],)
    kw["channels_last"] = channels_last
    with cypool.backend("reference"):
        want = bwd(go, shape, k, s, p, **kw)
    got = bwd(go, shape, k, s, p, **kw)
    return got, want


# windows that do not overlap (kernel <= stride): each input gradient is one
# quotient (or 0), so both backends agree bit for bit.  Where windows overlap
# they add a position's quotients in different orders (test_differential
# bounds that difference).
_TILED = [
    (2, 2, 2, 0, False, True, 7),
    (2, 3, 3, 0, False, True, 65535),
    (2, 3, 3, 0, False, True, 65537),
    (2, 3, 3, 0, False, True, -9),
    (2, 3, 3, 1, True, False, None),          # cut windows: 4, 6 and 9
    (2, 3, 3, 1, True, True, None),
    (2, (3, 2), (3, 2), (1, 0), True, True, None),
    (1, 3, 3, 0, False, True, None),
    (1, 5, 5, 2, True, False, None),
    (3, 3, 3, 1, False, False, None),
    (3, (1, 3, 3), (1, 3, 3), (0, 1, 1), True, False, None),
]


@pytest.mark.parametrize("channels_last", [False, True], ids=["planar", "cl"])
@pytest.mark.parametrize("case", _TILED, ids=[str(c) for c in _TILED])
def test_pooling_backward(case, channels_last):
    got, want = _backward_pair(case, _hostile, channels_last, 1)
    _assert_same(got, want, str(case))


def _zeros_and_tiny(rng, shape):
    """-0, +0, and the smallest subnormals, whose quotients underflow to
    zeros (of either sign) or stay subnormal; some rows also hold a NaN (so
    that they divide).  Sums of subnormals are exact, so the order in which
    overlapping windows add them does not matter."""
    pool = np.array([-0.0, -0.0, 0.0, -1e-45, -3e-45, 1e-45, -7e-45],
                    dtype=np.float32)
    x = rng.choice(pool, shape)
    flat = x.reshape(-1, shape[-1])
    flat[::3, 0] = np.nan
    return x


@pytest.mark.parametrize("channels_last", [False, True], ids=["planar", "cl"])
@pytest.mark.parametrize("case", _CASES + _TILED, ids=[str(c) for c in _CASES + _TILED])
def test_backward_negative_zero(case, channels_last):
    got, want = _backward_pair(case, _zeros_and_tiny, channels_last, 2)
    _assert_same(got, want, str(case))
    assert not np.any((want == 0) & np.signbit(want))   # the oracle's rule
