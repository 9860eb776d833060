"""Average pooling of integer input (SEMANTICS.md, decision 3): int64 window
sums, PyTorch's divisor, the quotient rounded toward zero (default, PyTorch's
int64 rule) or to nearest with ties to even (``rounding="nearest"``), stored
in the input's dtype."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cypool
from cases import INTS, cases

BACKENDS = cypool.available_backends()


def _expected(case, include_pad, divisor, rounding):
    """Exact quotients in Python integers: window sums and divisors come from
    the float64 path (exact for these small integers), the division from
    :class:`fractions.Fraction` (``int`` truncates, ``round`` ties to even)."""
    f = getattr(cypool, f"avg_pool{case.nd}d")
    xf = case.x.astype(np.float64)
    args = case.avg_args() + (include_pad,)
    with cypool.backend("reference"):
        sums = f(xf, *args, 1)
        if divisor is None:
            ones = np.ones_like(xf)
            divs = np.rint(f(ones, *args, 1) / f(ones, *args, None)).astype(np.int64)
        else:
            divs = np.full(sums.shape, divisor, np.int64)
    q = [Fraction(int(s), int(d)) for s, d in zip(sums.ravel(), divs.ravel())]
    q = [int(v) if rounding == "truncate" else round(v) for v in q]
    return np.array(q, dtype=np.int64).reshape(sums.shape).astype(case.x.dtype)


@given(cases(dtypes=INTS, dilation=False), st.booleans(),
       st.sampled_from([None, 1, 3, -2, 7]), st.sampled_from(["truncate", "nearest"]))
def test_integer_average(case, include_pad, divisor, rounding):
    # keep the sums small so that the float64 path that builds the expected
    # values is exact
    x = np.clip(case.x, -1000, 1000).astype(case.x.dtype)
    case.x = x
    want = _expected(case, include_pad, divisor, rounding)
    f = getattr(cypool, f"avg_pool{case.nd}d")
    for name in BACKENDS:
        with cypool.backend(name):
            got = f(x, *case.avg_args(), include_pad, divisor, rounding=rounding)
            assert got.dtype == x.dtype
            np.testing.assert_array_equal(got, want)
            c_axis = 1 if x.ndim == case.nd + 2 else 0
            cl = f(np.moveaxis(x, c_axis, -1), *case.avg_args(), include_pad, divisor,
                   rounding=rounding, channels_last=True)
            np.testing.assert_array_equal(np.moveaxis(cl, -1, c_axis), want)


@pytest.mark.parametrize("name", BACKENDS)
def test_integer_average_examples(name):
    with cypool.backend(name):
        # SEMANTICS.md section 6: [-7, -2, 3, -9], k4 -> -3 (toward zero)
        x = np.array([[[-7, -2, 3, -9]]], np.int64)
        assert cypool.avg_pool1d(x, 4).tolist() == [[[-3]]]
        assert cypool.avg_pool1d(x, 4, rounding="nearest").tolist() == [[[-4]]]  # -3.75
        # ties to even: 1.5 -> 2, 2.5 -> 2, -0.5 -> 0
        y = np.array([[1, 2, 2, 3, 0, -1]], np.int16)
        assert cypool.avg_pool1d(y, 2, rounding="nearest").tolist() == [[2, 2, 0]]
        assert cypool.avg_pool1d(y, 2).tolist() == [[1, 2, 0]]
        # uint8 image means never overflow the 8-bit sum
        img = np.full((1, 4, 4), 255, np.uint8)
        assert cypool.avg_pool2d(img, 2).tolist() == [[[255, 255], [255, 255]]]


@pytest.mark.parametrize("name", BACKENDS)
def test_rounding_argument(name):
    with cypool.backend(name):
        x = np.ones((1, 4), np.int32)
        with pytest.raises(ValueError, match="rounding"):
            cypool.avg_pool1d(x, 2, rounding="floor")
        with pytest.raises(TypeError, match="rounding"):
            cypool.avg_pool1d(x, 2, rounding=None)
        # no effect on floats
        xf = np.array([[1.0, 2.0]])
        assert cypool.avg_pool1d(xf, 2, rounding="nearest").tolist() == [[1.5]]


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_int64_average_matches_torch(nd):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(nd)
    x = rng.integers(-50, 50, (2, 3) + (9,) * nd, dtype=np.int64)
    for kw in [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
               dict(kernel_size=2, count_include_pad=False, padding=1)]:
        want = getattr(F, f"avg_pool{nd}d")(torch.from_numpy(x), **kw).numpy()
        for name in BACKENDS:
            with cypool.backend(name):
                got = getattr(cypool, f"avg_pool{nd}d")(x, **kw)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", BACKENDS)
def test_integer_quotient_edges(name):
    """Exact quotients at the 64-bit edges (sums past 2**53, the int64
    minimum divided by -1, which wraps as int64 arithmetic does), never a
    trap."""
    sums = [0, 1, -1, 5, -5, 7, -7, 2**52 - 1, -(2**52 - 1), 2**53 - 1, -(2**53 - 1),
            2**53, -(2**53), 2**53 + 1, 2**62, -(2**62), 2**63 - 1, -(2**63)]
    divisors = [1, -1, 2, -2, 3, -3, 4, -7, 2**31, -(2**31), 2**53 + 1, -(2**53 + 1),
                2**63 - 1, -(2**63 - 1)]
    x = np.array([sums], np.int64)
    with cypool.backend(name):
        for d in divisors:
            for rounding in ("truncate", "nearest"):
                got = cypool.avg_pool1d(x, 1, divisor_override=d, rounding=rounding)
                q = [Fraction(v, d) for v in sums]
                q = [int(v) if rounding == "truncate" else round(v) for v in q]
                want = np.array([[(v + 2**63) % 2**64 - 2**63 for v in q]], np.int64)
                np.testing.assert_array_equal(got, want, err_msg=f"d={d} {rounding}")
