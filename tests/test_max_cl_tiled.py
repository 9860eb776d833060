"""Channels-last max pooling of integer data over windows that tile the W
axis (kernel == stride along W, no W padding or dilation) with fewer than
16 channels: the compiled kernel reduces the window rows element-wise first,
then each output its S pixels (``_max_cl_tiled_row``).  Compared exactly with
the reference backend over every integer dtype, channel counts, window
sizes, H padding and dilation, ceil mode (a window clipped by the row's end
falls back to the tap-by-tap rows), rows cut into chunks, 3-d input, the
dtypes' extreme values, views that take the general path, and 1 and 2
threads."""

import numpy as np
import pytest

import cypool
from conftest import both_backends_equal as _both, requires_compiled

pytestmark = requires_compiled

DTYPES = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64]


def _data(rng, shape, dtype):
    info = np.iinfo(dtype)
    x = rng.integers(-50 if info.min < 0 else 0, 50, size=shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.integers(0, flat.size, 7)] = info.max
    flat[rng.integers(0, flat.size, 7)] = info.min
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 7, 15])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_images(threads, dtype, channels, k):
    rng = np.random.default_rng(channels * 10 + k)
    for h, w in [(k, k), (2 * k + 1, 5 * k + 3), (11, 31)]:
        x = _data(rng, (2, h, w, channels), dtype)
        _both(cypool.max_pool2d, x, k, channels_last=True)
        _both(cypool.max_pool2d, x, k, channels_last=True, ceil_mode=True)
        _both(cypool.max_pool2d, x, (k, k), k, (k // 2, 0), channels_last=True)
        if h >= 2 * k:
            _both(cypool.max_pool2d, x, (k, k), k, 0, (2, 1), channels_last=True)


def test_one_row_window_and_all_padding_rows(threads):
    """A window of one input row (kernel 1 along H), and windows whose rows
    are mostly padding."""
    rng = np.random.default_rng(8)
    x = _data(rng, (1, 5, 12, 3), np.uint8)
    _both(cypool.max_pool2d, x, (1, 2), channels_last=True)
    _both(cypool.max_pool2d, x, (5, 2), (3, 2), (2, 0), channels_last=True)


def test_wide_rows_are_chunked(threads):
    rng = np.random.default_rng(1)
    x = _data(rng, (1, 16, 9000, 5), np.uint8)
    _both(cypool.max_pool2d, x, 8, channels_last=True)
    _both(cypool.max_pool2d, x, 2, channels_last=True, ceil_mode=True)


def test_3d(threads):
    rng = np.random.default_rng(2)
    x = _data(rng, (2, 5, 6, 8, 3), np.int16)
    _both(cypool.max_pool3d, x, 2, channels_last=True)
    _both(cypool.max_pool3d, x, (3, 2, 2), (2, 2, 2), (1, 1, 0), channels_last=True)


def test_views_take_the_general_path(threads):
    rng = np.random.default_rng(3)
    x = _data(rng, (2, 12, 40, 6), np.uint8)
    _both(cypool.max_pool2d, x[:, :, ::2], 2, channels_last=True)
    _both(cypool.max_pool2d, x[..., ::2], 2, channels_last=True)
    _both(cypool.max_pool2d, x[:, :, ::-1], 2, channels_last=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32],
                         ids=lambda d: np.dtype(d).name)
def test_rgb_pairs_every_width(threads, dtype):
    """Three channels, 2-wide windows: the pixel-pair pass and the copy of
    each pixel with a spare element, over row widths that cover every
    remainder of a vector, chunked rows (chunk borders inside a row), and
    windows of one input row (the pass reads the input row itself)."""
    rng = np.random.default_rng(33)
    for w in list(range(2, 140)) + [4098]:
        x = _data(rng, (1, 3, w, 3), dtype)
        _both(cypool.max_pool2d, x, 2, channels_last=True)
        _both(cypool.max_pool2d, x, (1, 2), channels_last=True)
        _both(cypool.max_pool2d, x, (3, 2), (2, 2), (1, 0), channels_last=True)
    x = _data(rng, (1, 2, 30001, 3), dtype)   # rows of more than one chunk
    _both(cypool.max_pool2d, x, 2, channels_last=True)
