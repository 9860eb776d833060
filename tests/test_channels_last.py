"""``channels_last=True``: (N, *spatial, C) input gives exactly the
transposed result of the (N, C, *spatial) call, under every backend, for every
operator, forward and backward; the compiled channels-last kernels also
match the reference backend, and the reference matches PyTorch's
``channels_last`` memory format."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cypool
from cases import FLOATS, cases, grad_like


def _c_axis(x, nd):
    return 1 if x.ndim == nd + 2 else 0


def to_cl(a, nd, contiguous):
    v = np.moveaxis(a, _c_axis(a, nd), -1)
    return np.ascontiguousarray(v) if contiguous else v


def from_cl(a, nd):
    return np.moveaxis(a, -1, 1 if a.ndim == nd + 2 else 0)


def bits(a):
    return a.view(np.uint32 if a.itemsize == 4 else np.uint64) if a.dtype.kind == "f" else a


@pytest.fixture(params=cypool.available_backends())
def backend_name(request):
    return request.param


@given(cases(), st.booleans(), st.integers(0, 2**32 - 1))
def test_max_pool_channels_last(case, contiguous, seed):
    nd = case.nd
    f = getattr(cypool, f"max_pool{nd}d")
    b = getattr(cypool, f"max_pool{nd}d_backward")
    xcl = to_cl(case.x, nd, contiguous)
    with cypool.backend("reference"):
        ref, ref_idx = f(case.x, *case.max_args(), return_indices=True)
    for name in cypool.available_backends():
        with cypool.backend(name):
            got, got_idx = f(xcl, *case.max_args(), return_indices=True, channels_last=True)
            assert got.flags.c_contiguous and got_idx.flags.c_contiguous
            np.testing.assert_array_equal(bits(from_cl(got, nd)), bits(ref))
            np.testing.assert_array_equal(from_cl(got_idx, nd), ref_idx)
            np.testing.assert_array_equal(
                bits(f(xcl, *case.max_args(), channels_last=True)), bits(got))
    if case.x.dtype.kind != "f":
        return
    g = grad_like(np.random.default_rng(seed), ref.shape, ref.dtype)
    with cypool.backend("reference"):
        ref_grad = b(g, ref_idx, case.x.shape, *case.max_args())
    for name in cypool.available_backends():
        with cypool.backend(name):
            got_grad = b(to_cl(g, nd, contiguous), to_cl(ref_idx, nd, contiguous),
                         xcl.shape, *case.max_args(), channels_last=True)
            assert got_grad.shape == xcl.shape and got_grad.flags.c_contiguous
            np.testing.assert_array_equal(bits(from_cl(got_grad, nd)), bits(ref_grad))


@given(cases(dtypes=FLOATS, dilation=False), st.booleans(), st.booleans(),
       st.sampled_from([None, 3, -2]), st.integers(0, 2**32 - 1))
def test_avg_pool_channels_last(case, contiguous, include_pad, divisor, seed):
    nd = case.nd
    f = getattr(cypool, f"avg_pool{nd}d")
    b = getattr(cypool, f"avg_pool{nd}d_backward")
    xcl = to_cl(case.x, nd, contiguous)
    rtol = 2e-6 if case.x.dtype == np.float32 else 1e-13
    args = case.avg_args() + (include_pad, divisor)
    with cypool.backend("reference"):
        ref = f(case.x, *args)
        g = grad_like(np.random.default_rng(seed), ref.shape, ref.dtype)
        ref_grad = b(g, case.x.shape, *args)
    for name in cypool.available_backends():
        with cypool.backend(name):
            got = f(xcl, *args, channels_last=True)
            assert got.flags.c_contiguous
            np.testing.assert_allclose(from_cl(got, nd), ref, rtol=rtol)
            got_grad = b(to_cl(g, nd, contiguous), xcl.shape, *args, channels_last=True)
            np.testing.assert_allclose(from_cl(got_grad, nd), ref_grad, rtol=rtol,
                                       atol=1e-6 if g.dtype == np.float32 else 1e-13)


def test_channels_last_must_be_bool(backend_name):
    x = np.zeros((1, 4, 4, 2), np.float32)
    with cypool.backend(backend_name):
        with pytest.raises(TypeError, match="channels_last"):
            cypool.max_pool2d(x, 2, channels_last=1)
        with pytest.raises(TypeError, match="channels_last"):
            cypool.avg_pool2d_backward(np.zeros((1, 2, 2, 2)), x.shape, 2, channels_last="yes")


def test_channels_last_wrong_rank_names_layout(backend_name):
    with cypool.backend(backend_name):
        with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
            cypool.max_pool2d(np.zeros((4, 4), np.float32), 2, channels_last=True)


def test_channels_last_backward_shape_checks(backend_name):
    x = np.zeros((1, 4, 6, 3), np.float32)
    with cypool.backend(backend_name):
        y, idx = cypool.max_pool2d(x, 2, return_indices=True, channels_last=True)
        assert y.shape == (1, 2, 3, 3)
        with pytest.raises(ValueError, match="grad_output"):
            cypool.max_pool2d_backward(np.moveaxis(y, -1, 1), idx, x.shape, 2,
                                       channels_last=True)
        with pytest.raises(ValueError, match="indices"):
            cypool.max_pool2d_backward(y, idx[..., :2], x.shape, 2, channels_last=True)


def test_channels_last_matches_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 13, 11, 8)).astype(np.float32)
    x[0, 3, 4, 5] = np.nan
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1))).contiguous(
        memory_format=torch.channels_last)
    want, want_idx = F.max_pool2d(t, 3, 2, 1, ceil_mode=True, return_indices=True)
    want_avg = F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    for name in cypool.available_backends():
        with cypool.backend(name):
            got, idx = cypool.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True,
                                         channels_last=True)
            np.testing.assert_array_equal(bits(got), bits(np.moveaxis(want.numpy(), 1, -1)))
            np.testing.assert_array_equal(idx, np.moveaxis(want_idx.numpy(), 1, -1))
            avg = cypool.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False,
                                    channels_last=True)
            np.testing.assert_allclose(avg, np.moveaxis(want_avg.numpy(), 1, -1), rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 9, 10, 40), (1, 64, 64, 48), (3, 7, 5, 33)])
def test_channels_last_backward_channel_blocks(shape):
    """N smaller than the work wanted per thread: the compiled channels-last
    backward cuts the channels into blocks (each thread owns some)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape).astype(np.float64)
    xn = np.moveaxis(x, -1, 1)
    with cypool.backend("reference"):
        y, idx = cypool.max_pool2d(xn, 3, 2, 1, return_indices=True)
        g = rng.standard_normal(y.shape)
        ref_max = cypool.max_pool2d_backward(g, idx, xn.shape, 3, 2, 1)
        ref_avg = cypool.avg_pool2d_backward(g, xn.shape, 3, 2, 1)
    for name in cypool.available_backends():
        with cypool.backend(name), cypool.num_threads(2):
            got = cypool.max_pool2d_backward(to_cl(g, 2, True), to_cl(idx, 2, True), x.shape,
                                             3, 2, 1, channels_last=True)
            np.testing.assert_array_equal(from_cl(got, 2), ref_max)
            got = cypool.avg_pool2d_backward(to_cl(g, 2, True), x.shape, 3, 2, 1,
                                             channels_last=True)
            np.testing.assert_allclose(from_cl(got, 2), ref_avg, rtol=1e-13, atol=1e-15)


# Inputs of 16 MiB or more take a different prefetch schedule in the compiled
# channels-last kernels (the next output row's input rows are hinted).  Hints
# never change a value; these cases run that branch on small inputs (the
# threshold lowered to 0) so that the loops around it are checked against
# the reference like every other path.
@pytest.mark.skipif("compiled" not in cypool.available_backends(),
                    reason="the compiled extension is not available")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k,s,p,ceil", [
    ((2, 9, 11, 16), 2, 2, 0, False),
    ((2, 9, 11, 16), 2, 2, 0, True),
    ((1, 12, 13, 64), 3, 2, 1, False),
    ((1, 12, 13, 20), 3, 2, 1, True),
    ((2, 7, 8, 17), 3, 1, 1, False),
    ((1, 5, 6, 7, 16), 2, 2, 0, True),
])
def test_large_input_hints(dtype, shape, k, s, p, ceil):
    from cypool._compiled import _kernels
    nd = len(shape) - 2
    x = np.random.default_rng(7).standard_normal(shape).astype(dtype)
    x[0, 1, 2, 3] = np.nan
    xn = np.moveaxis(x, -1, 1)
    mp = getattr(cypool, f"max_pool{nd}d")
    ap = getattr(cypool, f"avg_pool{nd}d")
    with cypool.backend("reference"):
        want, want_idx = mp(xn, k, s, p, ceil_mode=ceil, return_indices=True)
        want_avg = ap(xn, k, s, p, ceil_mode=ceil)
    old = _kernels._big_input(0)
    try:
        with cypool.backend("compiled"):
            for th in (1, 2):
                with cypool.num_threads(th):
                    got = mp(x, k, s, p, ceil_mode=ceil, channels_last=True)
                    got2, idx = mp(x, k, s, p, ceil_mode=ceil, channels_last=True,
                                   return_indices=True)
                    avg = ap(x, k, s, p, ceil_mode=ceil, channels_last=True)
                    np.testing.assert_array_equal(bits(from_cl(got, nd)), bits(want))
                    np.testing.assert_array_equal(bits(from_cl(got2, nd)), bits(want))
                    np.testing.assert_array_equal(from_cl(idx, nd), want_idx)
                    np.testing.assert_allclose(from_cl(avg, nd), want_avg, rtol=1e-6,
                                               equal_nan=True)
    finally:
        _kernels._big_input(old)
