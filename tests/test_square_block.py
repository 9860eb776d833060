"""Blocks of output rows in the compiled max pooling: planar 2x2 / 3x3
windows at W stride 1 or 2 (``_max_sq_block``, with indices
``_max_sq_block_idx``) and 3-d 2x2x2 windows
(``_max_cube_block``).  Every output row whose window rows all lie in the
input runs in one call, interior columns in vector passes cut in two
(``_head_len``), border columns one by one, and a NaN anywhere in the block
reruns the whole block with PyTorch's exact rule.

Compared with the reference backend bit for bit, on long rows (every
remainder of the vector width), tall planes, one NaN per plane at a random
place (so that one block of a plane is rerun and the others are not), ties
of signed zeros, rows cut into chunks (over 2048 outputs), H strides 1 to 3,
padding and ceil mode (the rows left out of the block), integer dtypes, and
1 and 2 threads."""

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled

UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(UINT[a.dtype]) if a.dtype in UINT else a


def _check(x, *args, **kw):
    with cypool.backend("reference"):
        want = cypool.max_pool2d(x, *args, **kw)
    got = cypool.max_pool2d(x, *args, **kw)
    np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=f"{x.shape} {args} {kw}")


def _planes(rng, shape, dtype, nan_per_plane=False):
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.choice(np.array([info.min, 0, 1, info.max], dtype=dtype), shape)
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 0.5, 1.0], dtype=dtype), shape)
    if nan_per_plane:
        flat = x.reshape(-1, shape[-2] * shape[-1])
        for p in range(0, flat.shape[0], 2):      # every other plane: one NaN
            flat[p, rng.integers(flat.shape[1])] = np.nan
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k,p", [(2, 0), (2, 1), (3, 0), (3, 1)])
@pytest.mark.parametrize("sh", [1, 2, 3])
@pytest.mark.parametrize("sw", [1, 2])
def test_blocks_bitwise(threads, dtype, k, p, sh, sw):
    rng = np.random.default_rng([k, p, sh, sw, np.dtype(dtype).itemsize])
    for h, w in [(9, 2 * 17 + 1), (13, 66), (30, 99), (6, 300), (11, 257)]:
        x = _planes(rng, (2, 3, h, w), dtype, nan_per_plane=True)
        for ceil in (False, True):
            _check(x, k, (sh, sw), p, ceil_mode=ceil)


@pytest.mark.parametrize("k,p", [(2, 0), (3, 1)])
def test_chunked_rows(threads, k, p):
    """Over 2048 outputs per row: work items take chunks of a row, so a
    block's border columns belong to its first or last chunk only."""
    rng = np.random.default_rng(k)
    x = _planes(rng, (1, 2, 7, 2 * 2048 + 37), np.float32, nan_per_plane=True)
    _check(x, k, 2, p)
    _check(x, k, 2, p, ceil_mode=True)


def test_nan_rerun_keeps_other_planes_fast():
    """A NaN in one plane and large random values elsewhere: the plane with
    the NaN gives NaN where PyTorch does, the others their maxima."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 20, 64)).astype(np.float32)
    x[0, 2, 11, 5] = np.nan
    for k, p in [(2, 0), (3, 1)]:
        _check(x, k, 2, p)
        got = cypool.max_pool2d(x, k, 2, p)
        assert np.isnan(got[0, 2]).sum() >= 1 and not np.isnan(np.delete(got, 2, 1)).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("stride", [(2, 2, 2), (1, 2, 2), (2, 1, 2), (2, 3, 1), (1, 1, 1)])
def test_cube_blocks_bitwise(threads, dtype, stride):
    """2 x 2 x 2 windows (``_max_cube_block``): the rows whose four window
    rows lie in the input, with the W border columns cut by padding or ceil
    mode (``_max_cube_edge``); the depth and height faces go the general
    way."""
    rng = np.random.default_rng([sum(stride), np.dtype(dtype).itemsize])
    for d, h, w in [(4, 7, 35), (5, 9, 66), (3, 4, 257)]:
        x = _planes(rng, (2, 2, d, h, w), dtype, nan_per_plane=True)
        for p in [0, 1, (0, 0, 1), (1, 0, 0), (0, 1, 0)]:
            for ceil in (False, True):
                with cypool.backend("reference"):
                    want = cypool.max_pool3d(x, 2, stride, p, ceil_mode=ceil)
                got = cypool.max_pool3d(x, 2, stride, p, ceil_mode=ceil)
                np.testing.assert_array_equal(_bits(got), _bits(want),
                                              err_msg=f"{x.shape} {stride} {p} {ceil}")


def test_cube_chunked_rows(threads):
    rng = np.random.default_rng(9)
    x = _planes(rng, (1, 2, 3, 4, 2 * 2048 + 35), np.float32, nan_per_plane=True)
    for p in (0, 1):
        with cypool.backend("reference"):
            want = cypool.max_pool3d(x, 2, 2, p, ceil_mode=True)
        got = cypool.max_pool3d(x, 2, 2, p, ceil_mode=True)
        np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("k,p", [(2, 0), (2, 1), (3, 1)])
@pytest.mark.parametrize("sh,sw", [(2, 2), (1, 1), (3, 2)])
def test_index_blocks(threads, dtype, k, p, sh, sw):
    """With indices (``_max_sq_block_idx``): the flat index of each block
    row's window rows, interior and border columns, and the exact rerun."""
    rng = np.random.default_rng([k, p, sh, sw, np.dtype(dtype).itemsize])
    for h, w in [(9, 35), (14, 66), (7, 258)]:
        x = _planes(rng, (2, 3, h, w), dtype, nan_per_plane=True)
        for ceil in (False, True):
            args = (k, (sh, sw), p)
            with cypool.backend("reference"):
                want, want_i = cypool.max_pool2d(x, *args, ceil_mode=ceil, return_indices=True)
            got, got_i = cypool.max_pool2d(x, *args, ceil_mode=ceil, return_indices=True)
            msg = f"{x.shape} {args} {ceil}"
            np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=msg)
            np.testing.assert_array_equal(got_i, want_i, err_msg=msg)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 1)])
def test_blocks_on_cropped_views(threads, k, s, p):
    """Rows W-contiguous but further apart than W (a crop of a larger
    array), planes further apart than H * W: the blocks step by the array's
    strides, and indices stay flat positions in the cropped plane."""
    rng = np.random.default_rng(k * 10 + s)
    big = _planes(rng, (3, 4, 21, 80), np.float32, nan_per_plane=True)
    x = big[1:, 1:3, 2:-3, 5:-7]
    assert x.strides[-1] == 4 and not x.flags.c_contiguous
    with cypool.backend("reference"):
        want, want_i = cypool.max_pool2d(x, k, s, p, return_indices=True)
        want_avg = cypool.avg_pool2d(x, k, s, p)
    np.testing.assert_array_equal(_bits(cypool.max_pool2d(x, k, s, p)), _bits(want))
    got, got_i = cypool.max_pool2d(x, k, s, p, return_indices=True)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    np.testing.assert_array_equal(got_i, want_i)
    got_avg = cypool.avg_pool2d(x, k, s, p)
    same = (_bits(got_avg) == _bits(want_avg)) | (np.isnan(got_avg) & np.isnan(want_avg))
    assert same.all()
    v = _planes(rng, (2, 3, 7, 9, 70), np.float32, nan_per_plane=True)[:, 1:, 1:-1, 2:, 3:-2]
    with cypool.backend("reference"):
        want3 = cypool.max_pool3d(v, 2, (2, s, s), (0, p % 2, p % 2))
    np.testing.assert_array_equal(_bits(cypool.max_pool3d(v, 2, (2, s, s), (0, p % 2, p % 2))),
                                  _bits(want3))
