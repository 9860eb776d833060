"""Integer average pooling over windows that tile the W axis (kernel ==
stride along W, no W padding) of 8- and 16-bit data: the compiled kernel sums
the window rows element-wise into 32-bit column sums first, then each output
its S pixels (``_avg_int_tiled_row``).  Compared exactly with the reference
backend over channel counts 1 to 16 (planar and channels-last), window
sizes, H padding, ceil mode (the last window clipped by the row's end, which
falls back to the tap-by-tap sums), rows cut into chunks, 3-d input, both
roundings, divisor_override (a row of one divisor divides in one
branch-free loop: shifts for powers of two, a corrected double quotient
otherwise), extreme values and 1 and 2 threads."""

import numpy as np
import pytest

import cypool
from conftest import both_backends_equal as _both, requires_compiled

pytestmark = requires_compiled

DTYPES = [np.uint8, np.int8, np.uint16, np.int16]


def _data(rng, shape, dtype, extreme=False):
    info = np.iinfo(dtype)
    if extreme:
        return rng.choice(np.array([info.min, info.max, 0, 1, -1 if info.min < 0 else 2],
                                   dtype=dtype), size=shape)
    return rng.integers(info.min, int(info.max) + 1, size=shape, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 16])
@pytest.mark.parametrize("k", [2, 3, 4])
def test_channels_last_images(threads, dtype, channels, k):
    rng = np.random.default_rng(channels * 100 + k)
    for h, w in [(k, k), (2 * k + 1, 7 * k + 2), (13, 40)]:
        x = _data(rng, (2, h, w, channels), dtype, extreme=(h == 13))
        for rounding in ("truncate", "nearest"):
            _both(cypool.avg_pool2d, x, k, channels_last=True, rounding=rounding)
        _both(cypool.avg_pool2d, x, (k, k), k, (1, 0), channels_last=True,
              count_include_pad=False)
        _both(cypool.avg_pool2d, x, (k, k), k, (1, 0), channels_last=True)
        _both(cypool.avg_pool2d, x, k, channels_last=True, ceil_mode=True)
        _both(cypool.avg_pool2d, x, k, channels_last=True, divisor_override=3)
        _both(cypool.avg_pool2d, x, k, channels_last=True, divisor_override=-4,
              rounding="nearest")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k", [(2, 2), (3, 3), (1, 2), (2, 5)])
def test_planar(threads, dtype, k):
    rng = np.random.default_rng(sum(k))
    x = _data(rng, (2, 3, 17, 41), dtype)
    for rounding in ("truncate", "nearest"):
        _both(cypool.avg_pool2d, x, k, rounding=rounding)
    _both(cypool.avg_pool2d, x, k, ceil_mode=True)
    _both(cypool.avg_pool2d, x, k, k, (k[0] // 2, 0))


def test_wide_rows_are_chunked(threads):
    """A row of 4096 RGB pixels at k=8 needs more column sums than one
    work item holds: it is cut into chunks."""
    rng = np.random.default_rng(1)
    x = _data(rng, (1, 16, 8200, 3), np.uint8)
    _both(cypool.avg_pool2d, x, 8, channels_last=True)
    _both(cypool.avg_pool2d, x, 2, channels_last=True, ceil_mode=True)


def test_3d_and_1d(threads):
    rng = np.random.default_rng(2)
    x = _data(rng, (2, 5, 6, 8, 3), np.int16)
    _both(cypool.avg_pool3d, x, 2, channels_last=True)
    _both(cypool.avg_pool3d, x, (3, 2, 2), (3, 2, 2), (1, 1, 0), channels_last=True)
    y = _data(rng, (2, 3, 101), np.uint8)
    _both(cypool.avg_pool1d, y, 4)
    _both(cypool.avg_pool1d, y, 4, ceil_mode=True)


def test_views_take_the_general_path(threads):
    """Pixels not contiguous (every other column) or channels strided: the
    tiled sums do not apply; the result is the same."""
    rng = np.random.default_rng(3)
    x = _data(rng, (2, 12, 40, 6), np.uint8)
    _both(cypool.avg_pool2d, x[:, :, ::2], 2, channels_last=True)
    _both(cypool.avg_pool2d, x[..., ::2], 2, channels_last=True)
