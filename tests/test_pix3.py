"""Channels-last max and average pooling of 8-bit three-channel images
(H, W, 3) over 2x2 windows at stride 2: the byte-shuffle kernels of
pix3_kernels.h (AVX2 and AVX-512 builds), whose 16-byte stores overlap and
reach past each block's bytes; the average sums in 16-bit lanes and rounds
by cypool's integer rule (toward zero, or to nearest with ties to even).

Compared with the reference backend on every row length around the
kernel's 8-pixel blocks and its scalar tail, uint8 and int8 at their
extremes, batches and 3-d inputs, stepped rows, 1 and 2 threads, with the
kernel on and off; output views inside larger arrays must keep every byte
outside the view (the overlapping stores stay inside each output row)."""

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled


@pytest.fixture(params=["pix3", "generic"])
def pix3(request):
    from cypool._compiled import _kernels
    old = _kernels._pix3()
    _kernels._pix3(1 if request.param == "pix3" else 0)
    yield request.param
    _kernels._pix3(1 if old else 0)


def _img(rng, shape, dtype):
    info = np.iinfo(dtype)
    return rng.choice(np.array([info.min, info.min + 1, -1 if info.min < 0 else 1, 0,
                                info.max - 1, info.max], dtype=dtype), shape)


def _check(x, nd=2, avg=False, **kw):
    if avg:
        pool = cypool.avg_pool2d if nd == 2 else cypool.avg_pool3d
    else:
        pool = cypool.max_pool2d if nd == 2 else cypool.max_pool3d
    k = 2 if nd == 2 else (1, 2, 2)
    with cypool.backend("reference"):
        want = pool(x, k, channels_last=True, **kw)
    got = pool(x, k, channels_last=True, **kw)
    np.testing.assert_array_equal(got, want, err_msg=f"{x.shape} {kw}")
    return want


def test_switch_reports_the_build():
    from cypool._compiled import _kernels
    old = _kernels._pix3(0)
    try:
        assert _kernels._pix3() is False
    finally:
        _kernels._pix3(1 if old else 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_row_lengths(threads, pix3, dtype):
    rng = np.random.default_rng(np.dtype(dtype).num)
    for w in list(range(2, 40)) + [63, 64, 65, 127, 200, 513]:
        for h in (2, 3, 6):
            x = _img(rng, (h, w, 3), dtype)
            _check(x)
            _check(x, ceil_mode=True)
            for rounding in ("truncate", "nearest"):
                _check(x, avg=True, rounding=rounding)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
def test_average_rounding_of_every_sum(pix3, dtype, rounding):
    """Every window sum of four 8-bit values (each remainder mod 4, both
    signs, the extremes), in the vector blocks and the scalar tail."""
    info = np.iinfo(dtype)
    vals = np.arange(info.min, info.max + 1)
    rng = np.random.default_rng(1)
    x = rng.choice(vals, (2, 4 * 256 + 30, 3)).astype(dtype)
    x[:, :8] = np.array([info.min, info.max, info.min + 1, info.max - 1])[
        rng.integers(0, 4, (2, 8))][..., None]
    _check(x, avg=True, rounding=rounding)
    _check(x, avg=True, rounding=rounding, divisor_override=4)
    _check(x, avg=True, rounding=rounding, divisor_override=3)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_batches_depth_and_strided_rows(threads, pix3, dtype):
    rng = np.random.default_rng(3)
    for avg in (False, True):
        _check(_img(rng, (3, 10, 45, 3), dtype), avg=avg)
        _check(_img(rng, (2, 3, 8, 37, 3), dtype), nd=3, avg=avg)
        big = _img(rng, (2, 20, 41, 3), dtype)
        _check(big[:, ::2], avg=avg)            # rows two apart
        _check(big[:, :, :38], avg=avg)         # rows longer than the windows read


def test_output_views_keep_their_neighbours(threads, pix3):
    rng = np.random.default_rng(5)
    x = _img(rng, (2, 14, 90, 3), np.uint8)
    want = _check(x)
    # public out= arrays are C-contiguous; the kernels also take views
    # (called directly, 5-d (N, C, D, H, W) views of channels-last arrays)
    from cypool._compiled import _kernels
    buf = np.full((2, 7, 46, 3), 77, np.uint8)
    _kernels.max_pool_forward(np.moveaxis(x, -1, 1)[:, :, None],
                              np.moveaxis(buf[:, :, :45], -1, 1)[:, :, None], None,
                              (1, 2, 2), (1, 2, 2), (1, 1, 1), (0, 0, 0), 1)
    np.testing.assert_array_equal(buf[:, :, :45], want)
    assert (buf[:, :, 45] == 77).all()
    flat = np.full(2 * 7 * 45 * 3 + 50, 99, np.uint8)
    out = flat[:-50].reshape(2, 7, 45, 3)
    cypool.max_pool2d(x, 2, channels_last=True, out=out)
    np.testing.assert_array_equal(out, want)
    assert (flat[-50:] == 99).all()
    want = _check(x, avg=True)
    buf[:] = 77
    _kernels.avg_pool_forward(np.moveaxis(x, -1, 1)[:, :, None],
                              np.moveaxis(buf[:, :, :45], -1, 1)[:, :, None],
                              (1, 2, 2), (1, 2, 2), (0, 0, 0), (0, 0, 0), True, 0, False, 1)
    np.testing.assert_array_equal(buf[:, :, :45], want)
    assert (buf[:, :, 45] == 77).all()


def test_other_geometries_still_right(pix3):
    """Padding, other strides, four channels and indices are not this
    kernel's: they must still match the reference."""
    rng = np.random.default_rng(9)
    x = _img(rng, (9, 31, 3), np.uint8)
    _check(x, padding=1)
    _check(x, stride=1)
    _check(_img(rng, (9, 31, 4), np.uint8))
    with cypool.backend("reference"):
        want = cypool.max_pool2d(x, 2, channels_last=True, return_indices=True)
    got = cypool.max_pool2d(x, 2, channels_last=True, return_indices=True)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
