"""Rows and columns at the edges of 2x2 / 3x3 windows in the compiled max
pooling's whole-window paths: planar (``_max_row_square``), where windows
cut by the top or bottom edge (padding, ceil mode, tiny inputs) read a
neighbouring in-bounds row twice and border columns go through a
branch-free scalar select, and channels-last (``_max_cl_win``), where rows
and columns outside the input are replaced by a repeated in-bounds one.

Compared with the reference backend bit for bit (``view`` as unsigned
integers), on data full of ties, signed zeros and NaNs with distinct
payloads, so that the element picked by PyTorch's scan-order rule is what
is checked, not only its value."""

import itertools

import zlib

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled

UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _nan(dtype, payload):
    """A quiet NaN whose mantissa carries ``payload``, positive or negative."""
    u = UINT[np.dtype(dtype)]
    bits = np.array(np.nan, dtype=dtype).view(u) | u(payload)
    if payload % 2:
        bits = bits | (u(1) << u(8 * np.dtype(dtype).itemsize - 1))
    return bits.view(dtype)


def _data(rng, shape, dtype, nan_rate):
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 0.0, 1.0, 2.0], dtype=dtype), shape)
    if nan_rate:
        hit = rng.random(shape) < nan_rate
        payloads = rng.integers(1, 1000, hit.sum())
        x[hit] = [_nan(dtype, int(p)) for p in payloads]
    return x


def _bits(a):
    return np.ascontiguousarray(a).view(UINT[a.dtype])


def _views(x):
    yield "contiguous", x
    yield "reversed W", x[..., ::-1]
    yield "every other W", np.repeat(x, 2, axis=-1)[..., ::2]
    yield "transposed", np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)


CASES = [(k, sh, sw, p, ceil)
         for k in (2, 3) for sh in (1, 2, 3) for sw in (1, 2)
         for p in range(k // 2 + 1) for ceil in (False, True)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k,sh,sw,p,ceil", CASES)
def test_square_edges_bitwise(dtype, k, sh, sw, p, ceil):
    rng = np.random.default_rng(zlib.crc32(repr((k, sh, sw, p, ceil)).encode()))
    for h, w, nan_rate in itertools.product((1, 2, 3, 5, 8), (1, 2, 3, 7, 20, 41),
                                            (0.0, 0.15)):
        if h + 2 * p < k or w + 2 * p < k:
            continue
        x = _data(rng, (2, 2, h, w), dtype, nan_rate)
        for name, v in _views(x):
            args = ((k, k), (sh, sw), p, 1, ceil)
            with cypool.backend("reference"):
                want, want_i = cypool.max_pool2d(v, *args, return_indices=True)
            got = cypool.max_pool2d(v, *args)
            got2, got_i = cypool.max_pool2d(v, *args, return_indices=True)
            assert got.shape == want.shape
            msg = f"{name} input {h}x{w}, NaN rate {nan_rate}"
            np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=msg)
            np.testing.assert_array_equal(_bits(got2), _bits(want), err_msg=msg)
            np.testing.assert_array_equal(got_i, want_i, err_msg=msg)


@pytest.mark.parametrize("k,p", [(2, 1), (3, 1)])
def test_square_edges_threads_and_3d(k, p, threads):
    """The same rows through 3-d pooling with a 1-deep kernel and through a
    team of threads that split the rows."""
    rng = np.random.default_rng(7)
    x = _data(rng, (1, 3, 4, 33, 70), np.float32, 0.05)
    args = ((1, k, k), (1, 2, 2), (0, p, p))
    with cypool.backend("reference"):
        want, want_i = cypool.max_pool3d(x, *args, ceil_mode=True, return_indices=True)
    got = cypool.max_pool3d(x, *args, ceil_mode=True)
    got2, got_i = cypool.max_pool3d(x, *args, ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    np.testing.assert_array_equal(_bits(got2), _bits(want))
    np.testing.assert_array_equal(got_i, want_i)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k,p", [(2, 0), (2, 1), (3, 1)])
def test_square_indices_integers(dtype, k, p):
    """Integer data full of ties: the first maximum in scan order wins."""
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    for w in (1, 2, 3, 16, 17, 33, 64, 65, 129):
        if w + 2 * p < k:
            continue
        x = rng.choice(np.array([info.min, 0, 1, info.max], dtype=dtype), (2, 3, 7, w))
        for s in (1, 2):
            with cypool.backend("reference"):
                want, want_i = cypool.max_pool2d(x, k, s, p, return_indices=True)
            got, got_i = cypool.max_pool2d(x, k, s, p, return_indices=True)
            np.testing.assert_array_equal(got, want, err_msg=f"width {w}")
            np.testing.assert_array_equal(got_i, want_i, err_msg=f"width {w}")


def _views_cl(x):
    """(N, H, W, C) layouts; all but the last keep the channels contiguous."""
    yield "contiguous", x
    yield "reversed W", x[:, :, ::-1]
    yield "every other W", np.repeat(x, 2, axis=2)[:, :, ::2]
    yield "transposed", np.ascontiguousarray(np.swapaxes(x, 1, 2)).swapaxes(1, 2)
    yield "reversed channels", x[..., ::-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k,sh,sw,p,ceil", CASES)
def test_square_edges_channels_last_bitwise(dtype, k, sh, sw, p, ceil):
    rng = np.random.default_rng(zlib.crc32(repr((k, sh, sw, p, ceil, "cl")).encode()))
    for h, w, c, nan_rate in itertools.product((1, 2, 5), (1, 3, 8), (16, 21),
                                               (0.0, 0.15)):
        if h + 2 * p < k or w + 2 * p < k:
            continue
        x = _data(rng, (2, h, w, c), dtype, nan_rate)
        for name, v in _views_cl(x):
            args = ((k, k), (sh, sw), p, 1, ceil)
            with cypool.backend("reference"):
                want = cypool.max_pool2d(v, *args, channels_last=True)
            got = cypool.max_pool2d(v, *args, channels_last=True)
            assert got.shape == want.shape
            np.testing.assert_array_equal(
                _bits(got), _bits(want),
                err_msg=f"{name} input {h}x{w}x{c}, NaN rate {nan_rate}")


@pytest.mark.parametrize("k,p", [(2, 1), (3, 1)])
def test_square_edges_channels_last_3d_threads(k, p, threads):
    rng = np.random.default_rng(11)
    x = _data(rng, (2, 3, 17, 30, 24), np.float32, 0.02)
    args = ((1, k, k), (1, 2, 2), (0, p, p))
    with cypool.backend("reference"):
        want = cypool.max_pool3d(x, *args, ceil_mode=True, channels_last=True)
    got = cypool.max_pool3d(x, *args, ceil_mode=True, channels_last=True)
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("stride", [(2, 2, 2), (1, 1, 1), (1, 2, 1), (2, 1, 2), (3, 3, 2)])
@pytest.mark.parametrize("padding", [0, 1, (1, 0, 0), (0, 1, 1)])
def test_cube_2x2x2_bitwise(dtype, stride, padding):
    """3-d max pooling over 2 x 2 x 2 windows: the four window rows in one
    pass where all are in bounds (``_max_win4_run``), the general path at
    the padded faces; widths over every remainder of a vector."""
    rng = np.random.default_rng(zlib.crc32(repr((stride, padding)).encode()))
    for d, h, w in [(2, 2, 2), (3, 5, 17), (4, 3, 33), (5, 4, 70)]:
        if np.issubdtype(dtype, np.floating):
            x = _data(rng, (2, 3, d, h, w), dtype, 0.05)
        else:
            x = rng.integers(-3, 3, (2, 3, d, h, w)).astype(dtype)
        for ceil in (False, True):
            args = (2, stride, padding, 1, ceil)
            with cypool.backend("reference"):
                want = cypool.max_pool3d(x, *args)
            got = cypool.max_pool3d(x, *args)
            got_r = cypool.max_pool3d(x[..., ::-1], *args)
            with cypool.backend("reference"):
                want_r = cypool.max_pool3d(x[..., ::-1], *args)
            msg = f"input {d}x{h}x{w}, ceil {ceil}"
            if np.issubdtype(dtype, np.floating):
                np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=msg)
                np.testing.assert_array_equal(_bits(got_r), _bits(want_r), err_msg=msg)
            else:
                np.testing.assert_array_equal(got, want, err_msg=msg)
                np.testing.assert_array_equal(got_r, want_r, err_msg=msg)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("big", [False, True], ids=["hints ahead", "next-row hints"])
def test_square_channels_last_runs(dtype, k, big):
    """Channels-last square windows: the interior positions of a row go
    through one loop (``_max_cl_run``), the border ones one by one.  Widths
    around every split between them, strides 1-3, padding and ceil mode,
    with both kinds of prefetch hints (``_big_input(0)``: hint the next
    output row's input rows)."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(zlib.crc32(repr((k, big, str(dtype))).encode()))
    old = _kernels._big_input(0 if big else -1)
    try:
        for w in (2, 3, 4, 5, 6, 9, 10, 11, 24, 37):
            for s, p, ceil in itertools.product((1, 2, 3), range(k // 2 + 1),
                                                (False, True)):
                if w + 2 * p < k:
                    continue
                c = int(rng.choice([16, 32, 48]))
                x = _data(rng, (2, 5, w, c), dtype, 0.01)
                args = ((k, k), (s, s), p, 1, ceil)
                with cypool.backend("reference"):
                    want = cypool.max_pool2d(x, *args, channels_last=True)
                for th in (1, 2):
                    with cypool.num_threads(th):
                        got = cypool.max_pool2d(x, *args, channels_last=True)
                    np.testing.assert_array_equal(
                        _bits(got), _bits(want),
                        err_msg=f"width {w} stride {s} padding {p} ceil {ceil} C {c}")
    finally:
        if big:
            _kernels._big_input(old)
