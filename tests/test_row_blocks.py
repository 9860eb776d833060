"""Whole-window rows of the compiled max/average kernels (2-d, and 1-d
rows at the end of this file) are cut into
vector-sized blocks, the last one overlapping its predecessor
(``_head_len`` in ``_pool.pyx``).  These tests sweep the row width over every
remainder of the block size (one 64-byte vector: 16 float32, 8 float64,
64 uint8 outputs) for 2x2 and 3x3 windows at strides 1 and 2, with and
without padding, so that every cut is exercised at both ends of a row.

Max pooling is compared with the reference backend (exactly, NaN included);
average pooling with a NumPy sliding-window sum of small integers, which is
exact in any summation order, divided as PyTorch divides."""

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled

DTYPES = [np.float32, np.float64, np.uint8, np.int16]


def _widths(dtype, stride):
    block = 64 // np.dtype(dtype).itemsize
    # output rows from 1 to a little over 3 blocks: every remainder
    return range(1, (3 * block + 4) * stride + 4)


def _avg_oracle(x, k, s, p):
    """count_include_pad=True average of integer-valued x, exact."""
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (p, p), (p, p)])
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    sums = win[:, :, ::s, ::s].sum(axis=(-1, -2))
    return sums


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (2, 1, 0), (3, 2, 0), (3, 2, 1),
                                   (3, 1, 1), (3, 1, 0)])
def test_max_rows_every_width(dtype, k, s, p):
    rng = np.random.default_rng(1000 * k + 10 * s + p)
    floating = np.issubdtype(dtype, np.floating)
    for w in _widths(dtype, s):
        if w + 2 * p < k:
            continue
        if floating:
            x = rng.standard_normal((1, 2, k + 2, w)).astype(dtype)
            if w % 3 == 0:
                x[0, 0, 1, w - 1] = np.nan          # the last column
                x[0, 1, rng.integers(k + 2), rng.integers(w)] = np.nan
        else:
            x = rng.integers(0, 50, (1, 2, k + 2, w)).astype(dtype)  # ties
        with cypool.backend("reference"):
            ref, ref_i = cypool.max_pool2d(x, k, s, p, return_indices=True)
        got = cypool.max_pool2d(x, k, s, p)
        np.testing.assert_array_equal(got, ref, err_msg=f"width {w}")
        got, got_i = cypool.max_pool2d(x, k, s, p, return_indices=True)
        np.testing.assert_array_equal(got, ref, err_msg=f"width {w}, indices")
        np.testing.assert_array_equal(got_i, ref_i, err_msg=f"width {w}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (2, 1, 0), (3, 2, 0), (3, 2, 1),
                                   (3, 1, 1)])
def test_avg_rows_every_width(dtype, k, s, p):
    rng = np.random.default_rng(7 + 1000 * k + 10 * s + p)
    for w in _widths(dtype, s):
        if w + 2 * p < k:
            continue
        x = rng.integers(-20, 20, (1, 2, k + 2, w)).astype(dtype)
        sums = _avg_oracle(x, k, s, p)
        want = (sums.astype(dtype) / dtype(k * k)).astype(dtype)
        got = cypool.avg_pool2d(x, k, s, p)
        np.testing.assert_array_equal(got, want, err_msg=f"width {w}")


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_int_avg_rows_every_width(k, s, p):
    rng = np.random.default_rng(11 + k + s + p)
    for w in _widths(np.uint8, s):
        if w + 2 * p < k:
            continue
        x = rng.integers(0, 256, (1, 2, k + 2, w)).astype(np.uint8)
        with cypool.backend("reference"):
            ref = cypool.avg_pool2d(x, k, s, p)
        got = cypool.avg_pool2d(x, k, s, p)
        np.testing.assert_array_equal(got, ref, err_msg=f"width {w}")


# 1-d pooling (and kernels one row high): windows of one input row are
# written once by ``_max_win1`` / ``_avg_win1``, cut like the 2-d rows.

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (2, 1, 0), (3, 2, 1), (3, 1, 1), (3, 2, 0)])
def test_max_1d_every_width(dtype, k, s, p):
    rng = np.random.default_rng(500 + 10 * k + s + p)
    floating = np.issubdtype(dtype, np.floating)
    for w in _widths(dtype, s):
        if w + 2 * p < k:
            continue
        if floating:
            x = rng.standard_normal((2, 3, w)).astype(dtype)
            if w % 4 == 1:
                x[0, 0, w - 1] = np.nan
                x[1, 2, rng.integers(w)] = np.nan
        else:
            x = rng.integers(0, 40, (2, 3, w)).astype(dtype)
        with cypool.backend("reference"):
            ref = cypool.max_pool1d(x, k, s, p)
            ref2 = cypool.max_pool2d(x[:, :, None], (1, k), (1, s), (0, p))
        np.testing.assert_array_equal(cypool.max_pool1d(x, k, s, p), ref,
                                      err_msg=f"width {w}")
        np.testing.assert_array_equal(cypool.max_pool2d(x[:, :, None], (1, k), (1, s),
                                                        (0, p)), ref2, err_msg=f"width {w}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (2, 1, 0), (3, 2, 1), (3, 1, 1)])
def test_avg_1d_every_width(dtype, k, s, p):
    rng = np.random.default_rng(900 + 10 * k + s + p)
    for w in _widths(dtype, s):
        if w + 2 * p < k:
            continue
        x = rng.integers(-20, 20, (2, 3, w)).astype(dtype)
        xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (p, p)])
        sums = np.lib.stride_tricks.sliding_window_view(xp, k, axis=2)[:, :, ::s].sum(-1)
        want = (sums.astype(dtype) / dtype(k)).astype(dtype)
        np.testing.assert_array_equal(cypool.avg_pool1d(x, k, s, p), want,
                                      err_msg=f"width {w}")
    # signed zeros: sums start from +0, as the general path's
    z = np.full((1, 1, 40), -0.0, dtype)
    assert not np.signbit(cypool.avg_pool1d(z, k, s, p)).any()
