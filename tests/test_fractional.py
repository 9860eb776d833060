"""Fractional max pooling: PyTorch parity, compiled vs reference, gradients,
seeds, layouts and the argument rules."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from cypool._reference_fractional import intervals

from conftest import requires_compiled

ALL_DTYPES = [np.float32, np.float64, np.int8, np.uint8, np.int16, np.uint16,
              np.int32, np.int64]
FUNCS = {2: cypool.fractional_max_pool2d, 3: cypool.fractional_max_pool3d}
BACKWARDS = {2: cypool.fractional_max_pool2d_backward,
             3: cypool.fractional_max_pool3d_backward}


def _random_input(rng, shape, dtype, nan=False):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        if nan:
            x[rng.random(shape) < 0.15] = np.nan
            x[rng.random(shape) < 0.05] = -np.inf
        return x
    # few distinct values: plenty of ties
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -3), min(info.max, 3), shape, endpoint=True).astype(dtype)


def _case(rng, nd, max_in=12):
    """A random valid geometry (PyTorch's rule: 3-d is strict)."""
    strict = nd == 3
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 5))
    ins = tuple(int(v) for v in rng.integers(1 + strict, max_in, nd))
    k = tuple(int(rng.integers(1, L + 1 - strict)) for L in ins)
    outs = tuple(int(rng.integers(1, L - kk + 2 - strict)) for L, kk in zip(ins, k))
    return (n, c) + ins, k, outs


# ------------------------------------------------------------ worked examples

def test_semantics_example_float32_and_float64_differ():
    # SEMANTICS section 12: In=182, Out=132, k=1, u=0.69612968: window 118
    # starts at 164 in float32 and at 163 in float64
    u = np.array([0.69612968])
    assert intervals(u, 182, 132, 1, np.float32)[0, 118] == 164
    assert intervals(u, 182, 132, 1, np.float64)[0, 118] == 163


@pytest.mark.parametrize("dtype,start", [(np.float32, 164), (np.float64, 163)])
def test_semantics_example_through_the_api(each_backend, dtype, start):
    x = np.arange(182, dtype=dtype).reshape(1, 1, 1, 182)
    samples = np.array([[[0.69612968, 0.5]]])  # [..., 0] drives W
    y, idx = cypool.fractional_max_pool2d(x, 1, output_size=(1, 132),
                                          random_samples=samples, return_indices=True)
    assert idx[0, 0, 0, 118] == start
    assert y[0, 0, 0, 118] == start


def test_small_example(each_backend):
    # alpha = (5 - 2) / 2 = 1.5; H: u=0.25 -> starts 0, 1, 3; W: u=0.5 -> 0, 2, 3
    x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    y, idx = cypool.fractional_max_pool2d(x, 2, output_size=3, return_indices=True,
                                          random_samples=np.array([[[0.5, 0.25]]]))
    np.testing.assert_array_equal(y[0, 0], [[6, 8, 9], [11, 13, 14], [21, 23, 24]])
    np.testing.assert_array_equal(idx[0, 0], y[0, 0].astype(np.int64))


def test_nan_and_ties(each_backend):
    # one 2x2 window (k=2, In=2, Out=1): scan order 0, 1, 2, 3
    x = np.array([[[[np.nan, 1.0], [np.nan, 0.0]]]])
    y, idx = cypool.fractional_max_pool2d(x, 2, output_size=1, return_indices=True,
                                          random_samples=np.zeros((1, 1, 2)))
    assert np.isnan(y).all() and idx.item() == 2  # the last NaN
    x = np.array([[[[5, 5], [5, 5]]]], dtype=np.int8)
    y, idx = cypool.fractional_max_pool2d(x, 2, output_size=1, return_indices=True,
                                          random_samples=np.zeros((1, 1, 2)))
    assert y.item() == 5 and idx.item() == 0  # the first of ties
    x = np.full((1, 1, 2, 2), -np.inf, dtype=np.float32)
    y, idx = cypool.fractional_max_pool2d(x, 2, output_size=1, return_indices=True,
                                          random_samples=np.zeros((1, 1, 2)))
    assert y.item() == -np.inf and idx.item() == 0
    x = np.full((1, 1, 2, 2), np.iinfo(np.int64).min, dtype=np.int64)
    y, idx = cypool.fractional_max_pool2d(x, 2, output_size=1, return_indices=True,
                                          random_samples=np.zeros((1, 1, 2)))
    assert y.item() == np.iinfo(np.int64).min and idx.item() == 0


def test_windows_cover_the_input_edges(each_backend):
    # the last window always ends at the input's end, the first starts at 0
    rng = np.random.default_rng(3)
    for _ in range(50):
        L, k = int(rng.integers(2, 40)), int(rng.integers(1, 4))
        if k > L:
            continue
        o = int(rng.integers(1, L - k + 2))
        s = intervals(rng.random(3), L, o, k, np.float32)
        assert (s[:, 0] == (0 if o > 1 else L - k)).all() and (s[:, -1] == L - k).all()
        assert (np.diff(s, axis=1) >= 0).all()


# --------------------------------------------------------- parity with torch

@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_parity_random(each_backend, nd, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tf = F.fractional_max_pool2d if nd == 2 else F.fractional_max_pool3d
    rng = np.random.default_rng(100 + nd)
    for trial in range(60 if nd == 2 else 30):
        shape, k, outs = _case(rng, nd, max_in=30 if nd == 2 else 10)
        x = _random_input(rng, shape, dtype, nan=trial % 3 == 0)
        u = rng.random(shape[:2] + (nd,))
        y, idx = FUNCS[nd](x, k, output_size=outs, random_samples=u, return_indices=True)
        yt, it = tf(torch.from_numpy(x), k, output_size=outs, return_indices=True,
                    _random_samples=torch.from_numpy(u.astype(dtype)))
        np.testing.assert_array_equal(y, yt.numpy(), err_msg=f"{shape} {k} {outs}")
        np.testing.assert_array_equal(idx, it.numpy(), err_msg=f"{shape} {k} {outs}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_parity_output_ratio_and_large_planes(each_backend, dtype):
    # long rows make the float32 and float64 interval sequences differ
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    for ratio, k in [((0.5, 0.5), 2), ((0.73, 0.61), 1), ((0.3, 0.9), (3, 1))]:
        x = _random_input(rng, (2, 3, 61, 997), dtype)
        u = rng.random((2, 3, 2))
        y, idx = cypool.fractional_max_pool2d(x, k, output_ratio=ratio, random_samples=u,
                                              return_indices=True)
        yt, it = F.fractional_max_pool2d(torch.from_numpy(x), k, output_ratio=ratio,
                                         return_indices=True,
                                         _random_samples=torch.from_numpy(u.astype(dtype)))
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(idx, it.numpy())


def test_torch_parity_3d_ratio_channels_last_unbatched(each_backend):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(8)
    x = _random_input(rng, (3, 9, 10, 11), np.float32)  # unbatched (C, T, H, W)
    u = rng.random((1, 3, 3))
    yt, it = F.fractional_max_pool3d(torch.from_numpy(x), 2, output_ratio=(0.5, 0.6, 0.7),
                                     return_indices=True,
                                     _random_samples=torch.from_numpy(u.astype(np.float32)))
    for samples in (u, u[0]):
        y, idx = cypool.fractional_max_pool3d(x, 2, output_ratio=(0.5, 0.6, 0.7),
                                              random_samples=samples, return_indices=True)
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(idx, it.numpy())
    xl = np.moveaxis(x, 0, -1)  # (T, H, W, C), a strided view
    y, idx = cypool.fractional_max_pool3d(xl, 2, output_ratio=(0.5, 0.6, 0.7), random_samples=u,
                                          return_indices=True, channels_last=True)
    np.testing.assert_array_equal(np.moveaxis(y, -1, 0), yt.numpy())
    np.testing.assert_array_equal(np.moveaxis(idx, -1, 0), it.numpy())


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_gradients(each_backend, nd, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tf = F.fractional_max_pool2d if nd == 2 else F.fractional_max_pool3d
    rng = np.random.default_rng(200 + nd)
    for _ in range(15):
        shape, k, outs = _case(rng, nd, max_in=14 if nd == 2 else 8)
        x = _random_input(rng, shape, dtype, nan=False)
        x = np.round(x, 0)  # ties: windows overlap and share maxima
        u = rng.random(shape[:2] + (nd,))
        y, idx = FUNCS[nd](x, k, output_size=outs, random_samples=u, return_indices=True)
        g = rng.standard_normal(y.shape).astype(dtype)
        dx = BACKWARDS[nd](g, idx, x.shape)
        xt = torch.from_numpy(x).requires_grad_()
        yt = tf(xt, k, output_size=outs, _random_samples=torch.from_numpy(u.astype(dtype)))
        yt.backward(torch.from_numpy(g))
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-6 if dtype == np.float32 else 1e-12,
                                   atol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("nd", [2, 3])
def test_finite_difference_gradient(each_backend, nd):
    rng = np.random.default_rng(300 + nd)
    shape = (2, 2) + ((7, 9) if nd == 2 else (5, 6, 7))
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64)  # distinct
    u = rng.random((2, 2, nd))
    outs = (4, 5) if nd == 2 else (2, 3, 4)
    y, idx = FUNCS[nd](x, 2, output_size=outs, random_samples=u, return_indices=True)
    g = rng.standard_normal(y.shape)
    dx = BACKWARDS[nd](g, idx, x.shape)
    eps = 1e-3  # values are at least 1 apart: the argmax never changes
    num = np.zeros_like(x)
    for pos in np.ndindex(*shape):
        xp = x.copy()
        xp[pos] += eps
        xm = x.copy()
        xm[pos] -= eps
        fp = (FUNCS[nd](xp, 2, output_size=outs, random_samples=u) * g).sum()
        fm = (FUNCS[nd](xm, 2, output_size=outs, random_samples=u) * g).sum()
        num[pos] = (fp - fm) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-7, atol=1e-7)


# ------------------------------------------------- compiled vs reference

def _both_backends(f, *args, **kwargs):
    with cypool.backend("compiled"):
        a = f(*args, **kwargs)
    with cypool.backend("reference"):
        b = f(*args, **kwargs)
    return a, b


def _layout(x, kind, channels_last):
    if channels_last:
        x = np.moveaxis(x, 1, -1)
    if kind == "C":
        return np.ascontiguousarray(x)
    if kind == "F":
        return np.asfortranarray(x)
    if kind == "neg":  # the same values through negative W strides
        w = -2 if channels_last else -1
        return np.flip(np.ascontiguousarray(np.flip(x, axis=w)), axis=w)
    if kind == "step":
        big = np.repeat(x, 2, axis=-1)
        return big[..., ::2]
    return x


@requires_compiled
@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nd=st.sampled_from([2, 3]),
       dtype=st.sampled_from(ALL_DTYPES), channels_last=st.booleans(),
       kind=st.sampled_from(["C", "F", "neg", "step"]), indices=st.booleans(),
       threads=st.sampled_from([1, 2]))
def test_compiled_matches_reference(seed, nd, dtype, channels_last, kind, indices, threads):
    rng = np.random.default_rng(seed)
    shape, k, outs = _case(rng, nd, max_in=16 if nd == 2 else 8)
    x = _layout(_random_input(rng, shape, dtype, nan=seed % 2 == 0), kind, channels_last)
    u = rng.random(shape[:2] + (nd,))
    with cypool.num_threads(threads):
        a, b = _both_backends(FUNCS[nd], x, k, output_size=outs, random_samples=u,
                              return_indices=indices, channels_last=channels_last)
    if indices:
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert a[0].flags.c_contiguous and a[1].dtype == np.int64
    else:
        np.testing.assert_array_equal(a, b)
        assert a.flags.c_contiguous and a.dtype == x.dtype


@requires_compiled
@pytest.mark.parametrize("dtype", [np.int8, np.float32])
@pytest.mark.parametrize("channels_last", [False, True])
def test_compiled_matches_reference_large_kernels(dtype, channels_last):
    # more taps than int8 can number: the int64 index path
    rng = np.random.default_rng(11)
    x = _random_input(rng, (2, 3, 23, 21), dtype, nan=True)
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    u = rng.random((2, 3, 2))
    a, b = _both_backends(cypool.fractional_max_pool2d, x, (13, 12), output_size=(5, 4),
                          random_samples=u, return_indices=True, channels_last=channels_last)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@requires_compiled
def test_compiled_matches_reference_many_planes_and_threads():
    rng = np.random.default_rng(12)
    x = _random_input(rng, (3, 70, 40, 50), np.float32, nan=True)
    u = rng.random((3, 70, 2))
    for threads in (1, 2):
        with cypool.num_threads(threads):
            for cl, xx in ((False, x), (True, np.ascontiguousarray(np.moveaxis(x, 1, -1)))):
                a, b = _both_backends(cypool.fractional_max_pool2d, xx, 3, output_ratio=0.6,
                                      random_samples=u, return_indices=True, channels_last=cl)
                np.testing.assert_array_equal(a[0], b[0])
                np.testing.assert_array_equal(a[1], b[1])
    # N = 1: the work is split over output rows
    a, b = _both_backends(cypool.fractional_max_pool2d, x[:1, :1], 2, output_ratio=0.5,
                          random_samples=u[:1, :1], return_indices=True)
    np.testing.assert_array_equal(a[1], b[1])


# ----------------------------------------------- layouts, out=, empties, seeds

@pytest.mark.parametrize("nd", [2, 3])
def test_channels_last_equals_transposing(each_backend, nd):
    rng = np.random.default_rng(13)
    shape = (2, 5) + ((11, 9) if nd == 2 else (6, 7, 8))
    x = _random_input(rng, shape, np.int16)
    u = rng.random((2, 5, nd))
    y, idx = FUNCS[nd](x, 2, output_ratio=0.5, random_samples=u, return_indices=True)
    yl, il = FUNCS[nd](np.ascontiguousarray(np.moveaxis(x, 1, -1)), 2, output_ratio=0.5,
                       random_samples=u, return_indices=True, channels_last=True)
    np.testing.assert_array_equal(np.moveaxis(yl, -1, 1), y)
    np.testing.assert_array_equal(np.moveaxis(il, -1, 1), idx)
    g = rng.standard_normal(y.shape)
    dx = BACKWARDS[nd](g, idx, x.shape)
    dxl = BACKWARDS[nd](np.ascontiguousarray(np.moveaxis(g, 1, -1)), il,
                        np.moveaxis(x, 1, -1).shape, channels_last=True)
    np.testing.assert_array_equal(np.moveaxis(dxl, -1, 1), dx)


def test_read_only_and_broadcast_input(each_backend):
    x = np.broadcast_to(np.arange(30.0).reshape(1, 1, 5, 6), (2, 3, 5, 6))
    u = np.full((2, 3, 2), 0.5)
    y = cypool.fractional_max_pool2d(x, 2, output_size=(3, 4), random_samples=u)
    ref = cypool.fractional_max_pool2d(np.ascontiguousarray(x), 2, output_size=(3, 4),
                                       random_samples=u)
    np.testing.assert_array_equal(y, ref)


def test_out(each_backend):
    rng = np.random.default_rng(14)
    x = _random_input(rng, (2, 3, 9, 9), np.float32)
    u = rng.random((2, 3, 2))
    y, idx = cypool.fractional_max_pool2d(x, 2, output_size=4, random_samples=u,
                                          return_indices=True)
    o = np.empty_like(y)
    oi = np.empty_like(idx)
    r = cypool.fractional_max_pool2d(x, 2, output_size=4, random_samples=u,
                                     return_indices=True, out=(o, oi))
    assert r[0] is o and r[1] is oi
    np.testing.assert_array_equal(o, y)
    np.testing.assert_array_equal(oi, idx)
    with pytest.raises(ValueError, match="out"):
        cypool.fractional_max_pool2d(x, 2, output_size=4, random_samples=u,
                                     out=np.empty((2, 3, 4, 5), np.float32))
    with pytest.raises(TypeError, match="out"):
        cypool.fractional_max_pool2d(x, 2, output_size=4, random_samples=u,
                                     out=np.empty((2, 3, 4, 4), np.float64))
    g = np.ones_like(y)
    og = np.full(x.shape, 7.0, np.float32)
    assert cypool.fractional_max_pool2d_backward(g, idx, x.shape, out=og) is og
    np.testing.assert_array_equal(og, cypool.fractional_max_pool2d_backward(g, idx, x.shape))


def test_empty_batch_channels_and_output(each_backend):
    y, idx = cypool.fractional_max_pool2d(np.zeros((0, 3, 5, 5)), 2, output_size=2,
                                          return_indices=True, seed=0)
    assert y.shape == idx.shape == (0, 3, 2, 2)
    y = cypool.fractional_max_pool3d(np.zeros((2, 0, 5, 5, 5), np.uint8), 2, output_size=2,
                                     seed=0)
    assert y.shape == (2, 0, 2, 2, 2) and y.dtype == np.uint8
    # output size 0 is accepted (as PyTorch) and gives an empty result
    y = cypool.fractional_max_pool2d(np.ones((1, 2, 5, 5)), 2, output_size=(0, 2), seed=0)
    assert y.shape == (1, 2, 0, 2)
    dx = cypool.fractional_max_pool2d_backward(np.zeros((1, 2, 0, 2)),
                                               np.zeros((1, 2, 0, 2), np.int64), (1, 2, 5, 5))
    np.testing.assert_array_equal(dx, np.zeros((1, 2, 5, 5)))


def test_seed_reproducible(each_backend):
    # 20 -> 8 with k=2: alpha = 18/7 is not an integer, so the windows depend
    # on the samples
    x = np.random.default_rng(15).standard_normal((2, 4, 20, 20)).astype(np.float32)
    a = cypool.fractional_max_pool2d(x, 2, output_size=8, seed=123, return_indices=True)
    b = cypool.fractional_max_pool2d(x, 2, output_size=8, seed=123, return_indices=True)
    np.testing.assert_array_equal(a[1], b[1])
    c = cypool.fractional_max_pool2d(x, 2, output_size=8, seed=124, return_indices=True)
    assert not np.array_equal(a[1], c[1])
    # the documented draw: default_rng(seed).random((N, C, 2)) in the input's precision
    u = np.random.default_rng(123).random((2, 4, 2), dtype=np.float32)
    d = cypool.fractional_max_pool2d(x, 2, output_size=8, random_samples=u,
                                     return_indices=True)
    np.testing.assert_array_equal(a[1], d[1])
    # a Generator is consumed like any other draw
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    e = cypool.fractional_max_pool2d(x, 2, output_size=8, seed=g1, return_indices=True)
    f = cypool.fractional_max_pool2d(x, 2, output_size=8, seed=g2, return_indices=True)
    np.testing.assert_array_equal(e[1], f[1])


def test_samples_any_float_dtype_rounded_to_input_precision(each_backend):
    x = np.arange(182, dtype=np.float32).reshape(1, 1, 1, 182)
    for dt in (np.float16, np.float32, np.float64):
        u = np.array([[[0.69612968, 0.5]]], dtype=dt)
        y = cypool.fractional_max_pool2d(x, 1, output_size=(1, 132), random_samples=u)
        expect = intervals(u[0, 0, :1].astype(np.float32), 182, 132, 1, np.float32)[0]
        np.testing.assert_array_equal(y[0, 0, 0], expect)


def test_integer_input_uses_float64_intervals(each_backend):
    u = np.array([[[0.69612968, 0.5]]])
    x = np.arange(182, dtype=np.int32).reshape(1, 1, 1, 182)
    y = cypool.fractional_max_pool2d(x, 1, output_size=(1, 132), random_samples=u)
    assert y[0, 0, 0, 118] == 163


def test_extra_sample_rows_ignored(each_backend):
    rng = np.random.default_rng(16)
    x = rng.standard_normal((2, 3, 10, 10))
    u = rng.random((4, 3, 2))
    a = cypool.fractional_max_pool2d(x, 2, output_size=4, random_samples=u)
    b = cypool.fractional_max_pool2d(x, 2, output_size=4, random_samples=u[:2])
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs,exc,word", [
    (dict(kernel_size=2), ValueError, "exactly one"),
    (dict(kernel_size=2, output_size=3, output_ratio=0.5), ValueError, "exactly one"),
    (dict(kernel_size=0, output_size=3), ValueError, "kernel_size"),
    (dict(kernel_size=-1, output_size=3), ValueError, "kernel_size"),
    (dict(kernel_size=2.0, output_size=3), TypeError, "kernel_size"),
    (dict(kernel_size=(2, 2, 2), output_size=3), ValueError, "kernel_size"),
    (dict(kernel_size=2, output_size=-1), ValueError, "output_size"),
    (dict(kernel_size=2, output_size=(3, 3, 3)), ValueError, "output_size"),
    (dict(kernel_size=3, output_size=(9, 3)), ValueError, "kernel_size 3 too large"),
    (dict(kernel_size=2, output_ratio=1.0), ValueError, "output_ratio"),
    (dict(kernel_size=2, output_ratio=0.0), ValueError, "output_ratio"),
    (dict(kernel_size=2, output_ratio=(0.5, 1.5)), ValueError, "output_ratio"),
    (dict(kernel_size=2, output_ratio=(0.5, 0.5, 0.5)), ValueError, "output_ratio"),
    (dict(kernel_size=2, output_ratio="half"), TypeError, "output_ratio"),
    (dict(kernel_size=2, output_ratio=True), TypeError, "output_ratio"),
    (dict(kernel_size=2, output_size=3, random_samples=np.zeros((2, 3, 3))), ValueError,
     "random_samples"),
    (dict(kernel_size=2, output_size=3, random_samples=np.zeros((2, 4, 2))), ValueError,
     "random_samples"),
    (dict(kernel_size=2, output_size=3, random_samples=np.zeros((1, 3, 2))), ValueError,
     "random_samples"),
    (dict(kernel_size=2, output_size=3, random_samples=np.zeros((3, 2))), ValueError,
     "random_samples"),
    (dict(kernel_size=2, output_size=3, random_samples=np.zeros((2, 3, 2), np.int64)),
     TypeError, "random_samples"),
    (dict(kernel_size=2, output_size=3, random_samples=np.ones((2, 3, 2))), ValueError,
     r"\[0, 1\)"),
    (dict(kernel_size=2, output_size=3, random_samples=np.full((2, 3, 2), -0.1)), ValueError,
     r"\[0, 1\)"),
    (dict(kernel_size=2, output_size=3, random_samples=np.full((2, 3, 2), np.nan)),
     ValueError, r"\[0, 1\)"),
    (dict(kernel_size=2, output_size=3, random_samples=np.zeros((2, 3, 2)), seed=1),
     ValueError, "seed"),
    (dict(kernel_size=2, output_size=3, seed=1.5), TypeError, "seed"),
    (dict(kernel_size=2, output_size=3, seed=-1), ValueError, "seed"),
    (dict(kernel_size=2, output_size=3, return_indices=1), TypeError, "return_indices"),
    (dict(kernel_size=2, output_size=3, channels_last="no"), TypeError, "channels_last"),
])
def test_errors(each_backend, kwargs, exc, word):
    x = np.zeros((2, 3, 10, 10), np.float32)
    with pytest.raises(exc, match=word):
        cypool.fractional_max_pool2d(x, **kwargs)


def test_errors_input(each_backend):
    with pytest.raises(ValueError, match="input"):
        cypool.fractional_max_pool2d(np.zeros((10, 10)), 2, output_size=3)
    with pytest.raises(ValueError, match="zero-size"):
        cypool.fractional_max_pool2d(np.zeros((1, 1, 0, 10)), 1, output_size=0)
    with pytest.raises(TypeError, match="dtype"):
        cypool.fractional_max_pool2d(np.zeros((1, 1, 4, 4), bool), 2, output_size=2)
    with pytest.raises(TypeError, match="dtype"):
        cypool.fractional_max_pool3d(np.zeros((1, 1, 4, 4, 4), np.complex64), 2,
                                     output_size=2)


def test_3d_window_rule_is_pytorchs_strict_rule(each_backend):
    x = np.zeros((1, 1, 5, 6, 7))
    with pytest.raises(ValueError, match="pool|too large"):
        cypool.fractional_max_pool3d(x, (5, 1, 1), output_size=1)
    with pytest.raises(ValueError, match="too large"):
        cypool.fractional_max_pool3d(x, (2, 1, 1), output_size=(4, 1, 1))
    assert cypool.fractional_max_pool3d(x, (2, 1, 1), output_size=(3, 1, 1)).shape == \
        (1, 1, 3, 1, 1)
    # 2-d allows equality
    assert cypool.fractional_max_pool2d(np.zeros((1, 1, 5, 6)), (5, 6), output_size=1).shape \
        == (1, 1, 1, 1)


def test_backward_errors(each_backend):
    y, idx = cypool.fractional_max_pool2d(np.zeros((2, 3, 10, 10)), 2, output_size=4,
                                          return_indices=True, seed=0)
    bwd = cypool.fractional_max_pool2d_backward
    with pytest.raises(ValueError, match="indices"):
        bwd(y, idx + 1000, (2, 3, 10, 10))
    with pytest.raises(ValueError, match="indices"):
        bwd(y, idx - 5, (2, 3, 10, 10))
    with pytest.raises(ValueError, match="indices"):
        bwd(y, idx[:, :, :3], (2, 3, 10, 10))
    with pytest.raises(TypeError, match="indices"):
        bwd(y, idx.astype(np.float64), (2, 3, 10, 10))
    with pytest.raises(ValueError, match="grad_output"):
        bwd(y, idx, (2, 4, 10, 10))
    with pytest.raises(ValueError, match="grad_output"):
        bwd(y, idx, (2, 3, 3, 10))
    with pytest.raises(TypeError, match="grad_output"):
        bwd(y.astype(np.int32), idx, (2, 3, 10, 10))
    with pytest.raises(ValueError, match="input_shape"):
        bwd(y, idx, (3, 10, 10, 1, 1))
    with pytest.raises(TypeError, match="input_shape"):
        bwd(y, idx, "shape")
    # unbatched backward
    yu, iu = cypool.fractional_max_pool2d(np.arange(100.0).reshape(1, 10, 10), 2,
                                          output_size=4, return_indices=True, seed=0)
    dx = bwd(np.ones_like(yu), iu, (1, 10, 10))
    assert dx.shape == (1, 10, 10) and dx.sum() == 16


@requires_compiled
def test_kernel_rejects_unsafe_arguments():
    from cypool import _compiled
    k = _compiled.family("_fractional").fractional_max_pool_forward
    x = np.zeros((1, 1, 1, 4, 4), np.float32)
    out = np.zeros((1, 1, 1, 2, 2), np.float32)
    u = np.zeros((1, 1, 3))
    with pytest.raises(ValueError):
        k(x, np.zeros((1, 1, 1, 4, 4), np.float32), None, u, (1, 2, 2), True, 1)
    with pytest.raises(ValueError):
        k(x, out, None, np.full((1, 1, 3), 1.5), (1, 2, 2), True, 1)
    with pytest.raises(ValueError):
        k(x, out, None, np.full((1, 1, 3), np.nan), (1, 2, 2), True, 1)
    with pytest.raises(ValueError):
        k(x, out, None, np.zeros((1, 2, 3)), (1, 2, 2), True, 1)
    with pytest.raises(TypeError):
        k(x, out.astype(np.float64), None, u, (1, 2, 2), True, 1)
    with pytest.raises(ValueError):
        k(x, out, np.zeros((1, 1, 1, 2, 3), np.int64), u, (1, 2, 2), True, 1)


@pytest.mark.parametrize("in_w,out_w,k", [(64, 32, 2), (40, 37, 4), (17, 17, 1), (30, 10, 3)])
def test_integer_alpha_rows(each_backend, in_w, out_w, k):
    # (In - k) / (Out - 1) an integer: the W starts step evenly (the
    # compiled kernel copies such rows with a constant stride)
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(in_w)
    x = _random_input(rng, (2, 3, 9, in_w), np.float32, nan=True)
    u = rng.random((2, 3, 2))
    y, idx = cypool.fractional_max_pool2d(x, (2, k), output_size=(4, out_w), random_samples=u,
                                          return_indices=True)
    yt, it = F.fractional_max_pool2d(torch.from_numpy(x), (2, k), output_size=(4, out_w),
                                     return_indices=True,
                                     _random_samples=torch.from_numpy(u.astype(np.float32)))
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())


def test_sample_rounding_up_to_one(each_backend):
    # a float64 sample just below 1 becomes 1.0 in float32: still valid windows,
    # PyTorch's for that float32 sample
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(21)
    x = _random_input(rng, (1, 2, 30, 31), np.float32)
    u = np.full((1, 2, 2), 1 - 1e-12)
    y, idx = cypool.fractional_max_pool2d(x, 2, output_size=(11, 13), random_samples=u,
                                          return_indices=True)
    yt, it = F.fractional_max_pool2d(torch.from_numpy(x), 2, output_size=(11, 13),
                                     return_indices=True,
                                     _random_samples=torch.from_numpy(u.astype(np.float32)))
    assert (u.astype(np.float32) == 1).all()
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())


# ------------------------------------------- windows that tile the input
# With In - k == k * (Out - 1) PyTorch's starts are usually i * k in every
# plane, and the compiled backend then runs max pooling's kernels; a sample
# near 1 can move a start through float rounding, and that call must keep
# the fractional kernel.

@pytest.mark.skipif("compiled" not in cypool.available_backends(),
                    reason="the compiled extension is not available")
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("nd,k", [(2, 2), (2, 3), (3, 2)])
def test_tiling_windows_match_the_reference(dtype, nd, k):
    from cypool import _fractional
    rng = np.random.default_rng([nd, k])
    spatial = (4 * k, 5 * k) if nd == 2 else (3 * k, 2 * k, 4 * k)
    x = rng.choice(np.array([-2, -1, 0, 1, 3], dtype=dtype), (2, 3) + spatial)
    if np.dtype(dtype).kind == "f":
        x[0, 1, ...].flat[5] = np.nan
    samples = rng.random((2, 3, nd)).astype(dtype if np.dtype(dtype).kind == "f" else np.float64)
    ftype = np.float32 if dtype == np.float32 else np.float64
    out = tuple(s // k for s in spatial)
    assert _fractional._tiles(samples[..., ::-1] if nd == 2 else samples, spatial, out,
                              (k,) * nd, ftype)
    pool = cypool.fractional_max_pool2d if nd == 2 else cypool.fractional_max_pool3d
    with cypool.backend("reference"):
        want = pool(x, k, output_size=out, random_samples=samples, return_indices=True)
    got = pool(x, k, output_size=out, random_samples=samples, return_indices=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.skipif("compiled" not in cypool.available_backends(),
                    reason="the compiled extension is not available")
def test_sample_near_one_moves_a_start():
    """u = 1 - 2**-24 in float32: 1 + u rounds to 2, so the second window
    starts at 3, not 2; the call must not take the tiling shortcut."""
    from cypool import _fractional
    u = np.float32(1 - 2.0 ** -24)
    samples = np.array([[[0.25, u]]], np.float32)      # PyTorch's (W, H) order
    assert not _fractional._tiles(samples[..., ::-1], (8, 8), (4, 4), (2, 2), np.float32)
    x = np.arange(64, dtype=np.float32).reshape(1, 1, 8, 8)[:, :, ::-1].copy()
    with cypool.backend("reference"):
        want = cypool.fractional_max_pool2d(x, 2, output_size=4, random_samples=samples,
                                            return_indices=True)
    got = cypool.fractional_max_pool2d(x, 2, output_size=4, random_samples=samples,
                                       return_indices=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    with cypool.backend("reference"):
        tiled = cypool.max_pool2d(x, 2, return_indices=True)
    assert not np.array_equal(want[1], tiled[1])      # the windows did move


@pytest.mark.parametrize("ftype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("o", [2, 56, 1000, 70000])
def test_tiling_shortcut_agrees_with_the_sequences(ftype, k, o):
    """The shortcut's cheap test for power-of-two kernels (no sample within
    an ulp of Out below a multiple of 1/k) must never accept a sample whose
    sequence moves: samples at and around every multiple of 1/k, at
    distances from 1e-17 to 1e-3, each against its own sequence."""
    from cypool import _fractional
    deltas = np.concatenate([-np.logspace(-17, -3, 25), [0.0], np.logspace(-17, -3, 25)])
    us = (np.arange(k + 1)[:, None] / k + deltas[None, :]).ravel()
    us = us[(us >= 0) & (us < 1)].astype(ftype)
    for u in us:
        s = np.array([[[u]]], ftype)
        want = bool((intervals(s[..., 0], k * o, o, k, ftype) == k * np.arange(o)).all())
        assert _fractional._tiles(s, (k * o,), (o,), (k,), ftype) == want, (u, k, o)
