"""The worked examples of SEMANTICS.md, on every available backend.

Every expected value below is copied from SEMANTICS.md, where it was observed
with torch 2.13.0 (CPU) or derived by hand from the stated rule; none was
produced by cypool.
"""

import doctest

import numpy as np
import pytest

import cypool
from cases import out_len

inf, nan = np.inf, np.nan


# ---------------------------------------------------------- output sizes (1)

@pytest.mark.parametrize("L,k,s,p,d,floor_len,ceil_len", [
    (5, 2, 2, 1, 1, 3, 3),      # dropped
    (5, 1, 3, 0, 1, 2, 2),      # dropped with p = 0
    (5, 2, 2, 0, 1, 2, 3),
    (6, 3, 2, 1, 1, 3, 4),
    (10, 4, 4, 2, 1, 3, 3),     # dropped
    (7, 3, 2, 1, 2, 3, 3),
])
def test_output_sizes_and_ceil_drop(each_backend, L, k, s, p, d, floor_len, ceil_len):
    x = np.zeros((1, 1, L), np.float32)
    assert cypool.max_pool1d(x, k, s, p, d, ceil_mode=False).shape[-1] == floor_len
    assert cypool.max_pool1d(x, k, s, p, d, ceil_mode=True).shape[-1] == ceil_len
    if d == 1:
        assert cypool.avg_pool1d(x, k, s, p, ceil_mode=True).shape[-1] == ceil_len
    x2 = np.zeros((1, L, L), np.float32)
    assert cypool.max_pool2d(x2, k, s, p, d, ceil_mode=True).shape[-2:] == (ceil_len,) * 2


# ------------------------------------------------- max: NaN, ties, -inf (4)

def test_nan_wins_last_nan_index(each_backend):
    x = np.array([[nan, 9, 9, 1, nan, nan]], np.float32)
    out, idx = cypool.max_pool1d(x, 3, return_indices=True)
    assert np.isnan(out).all()
    assert idx.tolist() == [[0, 5]]


def test_nan_2d_index(each_backend):
    x = np.array([[[0, nan], [nan, 0]]], np.float64)
    out, idx = cypool.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(out).all() and idx.item() == 2


def test_ties_keep_first(each_backend):
    out, idx = cypool.max_pool1d(np.array([[5., 5., 5.]]), 3, return_indices=True)
    assert out.item() == 5 and idx.item() == 0


def test_all_minus_inf_keeps_first_in_bounds_tap(each_backend):
    x = np.full((1, 6), -inf, np.float32)
    out, idx = cypool.max_pool1d(x, 3, 3, return_indices=True)
    assert (out == -inf).all() and idx.tolist() == [[0, 3]]


def test_int8_minimum_with_padding(each_backend):
    x = np.full((1, 4), -128, np.int8)
    out, idx = cypool.max_pool1d(x, 3, 2, 1, return_indices=True)
    # windows [-1, 1], [1, 3]: first in-bounds taps 0 and 1
    assert out.tolist() == [[-128, -128]] and idx.tolist() == [[0, 1]]
    x = np.full((1, 5), -128, np.int8)
    out, idx = cypool.max_pool1d(x, 2, 2, 1, return_indices=True)
    assert idx.tolist() == [[0, 1, 3]]


def test_gradient_goes_to_nan(each_backend):
    x = np.array([[nan, 1., 2.]])
    out, idx = cypool.max_pool1d(x, 2, 1, return_indices=True)
    g = cypool.max_pool1d_backward(np.ones_like(out), idx, x.shape, 2, 1)
    assert g.tolist() == [[1, 0, 1]]


@pytest.mark.parametrize("L,k,d,p,hole", [(1, 2, 2, 1, 0), (3, 2, 4, 1, 0)])
def test_dilation_hole(each_backend, L, k, d, p, hole):
    """Decision 1: a window with no in-bounds tap is -inf with index -1."""
    x = np.arange(L, dtype=np.float32).reshape(1, L)
    out, idx = cypool.max_pool1d(x, k, 1, p, d, return_indices=True)
    assert out[0, hole] == -inf and idx[0, hole] == -1
    xi = np.arange(L, dtype=np.int16).reshape(1, L)
    out, idx = cypool.max_pool1d(xi, k, 1, p, d, return_indices=True)
    assert out[0, hole] == np.iinfo(np.int16).min and idx[0, hole] == -1
    g = cypool.max_pool1d_backward(np.ones(out.shape), idx, x.shape, k, 1, p, d)
    assert np.isfinite(g).all()  # index -1 is skipped, nothing written out of bounds


# ----------------------------------------------------------- avg divisors (5)

def _divisors(x_len, **kw):
    """Divisors seen on ones(x_len): the window sum over the average."""
    x = np.ones((1, x_len))
    sums = cypool.avg_pool1d(x, divisor_override=1, **kw)
    return sums / cypool.avg_pool1d(x, **kw)


def test_avg_divisors_ceil_mode(each_backend):
    assert _divisors(5, kernel_size=2, stride=2, ceil_mode=True).tolist() == [[2, 2, 1]]
    assert np.allclose(_divisors(5, kernel_size=4, stride=3, padding=2, ceil_mode=True),
                       [[4, 4, 3]])
    assert np.allclose(_divisors(5, kernel_size=4, stride=3, padding=2, ceil_mode=True,
                                 count_include_pad=False), [[2, 4, 1]])


def test_avg_divisors_2d_corners(each_backend):
    out = cypool.avg_pool2d(np.ones((1, 5, 5)), 3, 2, 1, ceil_mode=True)
    expected = np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9
    np.testing.assert_allclose(out[0], expected)


def test_divisor_override_negative(each_backend):
    out = cypool.avg_pool2d(np.ones((1, 2, 2)), 2, divisor_override=-2)
    assert out.item() == -2.0


# ------------------------------------------------------------- backward (11)

def test_max_backward_accumulates(each_backend):
    x = np.array([[1., 9., 2., 3., 0.]])
    out, idx = cypool.max_pool1d(x, 3, 1, return_indices=True)
    assert idx.tolist() == [[1, 1, 3]]
    g = cypool.max_pool1d_backward(np.ones_like(out), idx, x.shape, 3, 1)
    assert g.tolist() == [[0, 2, 0, 1, 0]]


@pytest.mark.parametrize("kw,expected", [
    ({}, [1 / 3, 2 / 3, 1 / 3, 2 / 3, 1 / 3]),
    ({"count_include_pad": False}, [0.5, 5 / 6, 1 / 3, 5 / 6, 0.5]),
    # SEMANTICS.md says "1/3 each" here; each *contribution* is 1/3, and the
    # inputs shared by two windows get two (torch 2.13 gives this too)
    ({"divisor_override": 3}, [1 / 3, 2 / 3, 1 / 3, 2 / 3, 1 / 3]),
])
def test_avg_backward_divisors(each_backend, kw, expected):
    x = np.ones((1, 5))
    out = cypool.avg_pool1d(x, 3, 2, 1, ceil_mode=True, **kw)
    g = cypool.avg_pool1d_backward(np.ones_like(out), x.shape, 3, 2, 1, ceil_mode=True, **kw)
    np.testing.assert_allclose(g[0], expected)


# ------------------------------------------------------ SAME / VALID (3)

@pytest.mark.parametrize("L,k,s,before_after", [(5, 4, 1, (1, 2)), (5, 2, 2, (0, 1))])
def test_same_padding_split(each_backend, L, k, s, before_after):
    x = np.arange(1, L + 1, dtype=np.float64).reshape(1, L)
    same = cypool.avg_pool1d(x, k, s, padding="same", count_include_pad=False)
    explicit = cypool.avg_pool1d(x, k, s, padding=[before_after], count_include_pad=False)
    assert same.shape[-1] == -(-L // s)
    np.testing.assert_array_equal(same, explicit)
    # TensorFlow's SAME average never counts padding: do it by hand
    b, a = before_after
    xp = np.concatenate([np.full(b, np.nan), x[0], np.full(a, np.nan)])
    by_hand = [np.nanmean(xp[i * s:i * s + k]) for i in range(same.shape[-1])]
    np.testing.assert_allclose(same[0], by_hand)


def test_valid_padding(each_backend):
    x = np.arange(7.).reshape(1, 7)
    assert cypool.max_pool1d(x, 3, 2, padding="valid").tolist() == [[2., 4., 6.]]


def test_out_len_helper_matches_library():
    """The tests' own size formula agrees with the library on a grid."""
    for L in range(1, 12):
        for k in range(1, 5):
            for s in range(1, 4):
                for p in range(0, k // 2 + 1):
                    for ceil in (False, True):
                        n = out_len(L, k, s, p, 1, ceil)
                        if n < 1:
                            continue
                        got = cypool.max_pool1d(np.zeros((1, L)), k, s, p, 1, ceil).shape[-1]
                        assert got == n


# --------------------------------------------------------------- doctests

@pytest.mark.parametrize("module", ["cypool", "cypool._pooling"])
def test_docstring_examples(each_backend, module):
    import importlib

    mod = importlib.import_module(module)
    failures, _ = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
