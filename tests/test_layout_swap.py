"""Inputs whose memory runs in the other layout than the result's.

A PyTorch ``channels_last`` tensor seen through NumPy is an ``(N, C, H, W)``
array whose memory is ``(N, H, W, C)``; ``np.moveaxis`` of an NCHW array
passed with ``channels_last=True`` is the reverse.  The compiled backend
runs those in the input's own layout and copies the result into the
caller's; these tests check that every value and index is the one the
contiguous input gives, for both backends.
"""

import numpy as np
import pytest

import cypool

BACKENDS = ["reference", "compiled"] if "compiled" in cypool.available_backends() else ["reference"]


@pytest.fixture(autouse=True)
def swaps(monkeypatch):
    """Takes the swapped path at every size (the shapes here are small) and
    counts the scratch results it makes, so a test can tell it ran."""
    made = []
    if "compiled" in cypool.available_backends():
        from cypool import _compiled
        monkeypatch.setattr(_compiled, "_SWAP_MIN", 0)
        real = _compiled._scratch_like

        def counted(out, swap):
            made.append(swap)
            return real(out, swap)
        monkeypatch.setattr(_compiled, "_scratch_like", counted)
    return made


def _inputs(dtype, shape=(2, 5, 33, 40)):
    rng = np.random.default_rng(7)
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal(shape).astype(dtype)
        x.flat[::97] = np.nan
        x.flat[::89] = -np.inf
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    # NCHW values in NHWC memory, and NHWC values in NCHW memory
    nhwc_memory = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    assert not nhwc_memory.flags.c_contiguous
    assert np.moveaxis(nhwc_memory, 1, -1).flags.c_contiguous
    return x, nhwc_memory


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int16])
@pytest.mark.parametrize("args", [(2,), (3, 2, 1), (3, 1, 1, 2, True)])
def test_max_pool_in_the_other_layout(backend, dtype, args, swaps):
    x, view = _inputs(dtype)
    with cypool.backend(backend):
        ref, ref_idx = cypool.max_pool2d(x, *args, return_indices=True)
        got, got_idx = cypool.max_pool2d(view, *args, return_indices=True)
        assert got.flags.c_contiguous and got_idx.flags.c_contiguous
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got_idx, ref_idx)
        assert np.array_equal(cypool.max_pool2d(view, *args), ref, equal_nan=True)
        # NCHW memory asked for as channels-last
        xcl = np.moveaxis(x, 1, -1)
        assert not xcl.flags.c_contiguous
        got = cypool.max_pool2d(xcl, *args, channels_last=True)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, np.moveaxis(ref, 1, -1))
        out = np.empty_like(ref)
        idx = np.empty_like(ref_idx)
        res = cypool.max_pool2d(view, *args, return_indices=True, out=(out, idx))
        assert res[0] is out and res[1] is idx
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(idx, ref_idx)
    if backend == "compiled":
        assert "cl" in swaps and "planar" in swaps


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("args", [(2,), (3, 2, 1, True, False), (3, 1, 1, False, True, 5)])
def test_avg_pool_in_the_other_layout(backend, dtype, args, swaps):
    x, view = _inputs(dtype)
    if np.dtype(dtype).kind == "i":
        x, view = x // 4096, view // 4096   # keep int sums far from wrapping
    with cypool.backend(backend):
        ref = cypool.avg_pool2d(x, *args)
        got = cypool.avg_pool2d(view, *args)
        assert got.flags.c_contiguous
        # the compiled sums run in one order in every layout: bit for bit
        np.testing.assert_array_equal(got, ref)
        got = cypool.avg_pool2d(np.moveaxis(x, 1, -1), *args, channels_last=True)
        np.testing.assert_array_equal(got, np.moveaxis(ref, 1, -1))
        out = np.empty_like(ref)
        assert cypool.avg_pool2d(view, *args, out=out) is out
        np.testing.assert_array_equal(out, ref)
    if backend == "compiled":
        assert "cl" in swaps and "planar" in swaps


def test_other_layout_3d_and_1d(swaps):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 10, 12, 14)).astype(np.float32)
    view = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    np.testing.assert_array_equal(cypool.max_pool3d(view, 2), cypool.max_pool3d(x, 2))
    np.testing.assert_array_equal(cypool.avg_pool3d(view, 3, 2, 1), cypool.avg_pool3d(x, 3, 2, 1))
    x1 = rng.standard_normal((3, 8, 5000)).astype(np.float32)
    v1 = np.moveaxis(np.ascontiguousarray(np.moveaxis(x1, 1, -1)), -1, 1)
    np.testing.assert_array_equal(cypool.max_pool1d(v1, 3, 2), cypool.max_pool1d(x1, 3, 2))
    if cypool.get_backend() == "compiled":
        assert swaps.count("cl") == 3
