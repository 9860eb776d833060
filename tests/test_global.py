"""Global max and average pooling (SEMANTICS.md section 8): one value per
(n, c) plane, equal to adaptive pooling to size 1, with keepdims and the
channels-last layouts; the dedicated kernels against the reference."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from cases import FLOATS, INTS, LAYOUTS, random_values, with_layout
from conftest import requires_compiled

BACKENDS = cypool.available_backends()


def same_bits(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype.kind == "f":
        a = a.view(f"u{a.dtype.itemsize}")
        b = b.view(f"u{b.dtype.itemsize}")
    np.testing.assert_array_equal(a, b)


def scan_max(plane):
    """PyTorch's scan of section 4, written out: first maximum, last NaN."""
    flat = plane.ravel()
    best, bi = flat[0], 0
    for k, v in enumerate(flat):
        if v > best or v != v:
            best, bi = v, k
    return best, bi


@pytest.mark.parametrize("name", BACKENDS)
def test_examples(name):
    with cypool.backend(name):
        x = np.array([[[[1, 7], [7, 2]]]], dtype=np.uint8)
        y, i = cypool.global_max_pool(x, return_indices=True)
        assert y.tolist() == [[7]] and i.tolist() == [[1]] and y.dtype == np.uint8
        x = np.arange(8.).reshape(1, 2, 2, 2)
        np.testing.assert_array_equal(cypool.global_avg_pool(x), [[1.5, 5.5]])
        k = cypool.global_avg_pool(x, keepdims=True)
        assert k.shape == (1, 2, 1, 1)
        k = cypool.global_max_pool(np.moveaxis(x, 1, -1), keepdims=True, channels_last=True)
        assert k.shape == (1, 1, 1, 2) and k.ravel().tolist() == [3, 7]
        # NaN: the last one; ties: the first; all -inf: the first element
        for vals, idx in [([np.nan, 9, 9, 1, np.nan, np.nan], 5), ([5, 5, 5], 0),
                          ([-np.inf] * 6, 0), ([1, 3, 3, np.nan, 3, 2], 3)]:
            row = np.array(vals)[None, None]
            y, i = cypool.global_max_pool(row, return_indices=True)
            assert i.tolist() == [[idx]]
        # signed zero: the first in scan order, bit for bit (a long plane:
        # the vectorised path)
        z = np.zeros((1, 1, 40), np.float32)
        z[0, 0, :7] = -0.0
        assert np.signbit(cypool.global_max_pool(z)).tolist() == [[True]]
        z[0, 0, 0] = 0.0
        assert np.signbit(cypool.global_max_pool(z)).tolist() == [[False]]
        assert cypool.global_avg_pool(np.zeros((0, 3, 4))).shape == (0, 3)
        assert cypool.global_max_pool(np.zeros((2, 0, 4)), keepdims=True).shape == (2, 0, 1)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("P", [1, 7, 15, 16, 17, 49, 64, 200])
def test_long_planes_nan_and_ties(name, P):
    rng = np.random.default_rng(P)
    x = rng.integers(-3, 4, (3, 4, P)).astype(np.float32)
    x[0, 0, rng.integers(P)] = np.nan
    x[0, 1, :] = np.nan
    x[1, 2, :] = -np.inf
    x[2, 3, rng.integers(P)] = np.inf
    x[1, 3, -1] = np.nan
    with cypool.backend(name):
        y, i = cypool.global_max_pool(x, return_indices=True)
        y2 = cypool.global_max_pool(x)
    for n in range(3):
        for c in range(4):
            best, bi = scan_max(x[n, c])
            assert i[n, c] == bi
            same_bits(y[n, c], best)
            same_bits(y2[n, c], best)


@settings(max_examples=60)
@given(st.integers(1, 3), st.sampled_from(FLOATS), st.integers(0, 2**32 - 1), st.booleans())
def test_reference_against_torch(nd, dtype, seed, keepdims):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    size = tuple(rng.integers(1, {1: 40, 2: 9, 3: 5}[nd], nd))
    x = random_values(rng, (2, 3) + size, dtype)
    t = torch.from_numpy(x).requires_grad_()
    y_t, i_t = getattr(F, f"adaptive_max_pool{nd}d")(t, 1, return_indices=True)
    a_t = getattr(F, f"adaptive_avg_pool{nd}d")(t, 1)
    for name in BACKENDS:
        with cypool.backend(name):
            y, i = cypool.global_max_pool(x, return_indices=True, keepdims=keepdims)
            a = cypool.global_avg_pool(x, keepdims=keepdims)
        shape = (2, 3) + (1,) * nd if keepdims else (2, 3)
        same_bits(y, y_t.detach().numpy().reshape(shape))
        np.testing.assert_array_equal(i, i_t.numpy().reshape(shape))
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(a, a_t.detach().numpy().reshape(shape), rtol=tol,
                                   atol=tol, equal_nan=True)


@settings(max_examples=40)
@given(st.integers(1, 3), st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
def test_gradients_against_torch(nd, seed, keepdims, channels_last):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    size = tuple(rng.integers(1, {1: 30, 2: 8, 3: 5}[nd], nd))
    x = rng.standard_normal((2, 3) + size)
    t = torch.from_numpy(x).requires_grad_()
    y_t, i_t = getattr(F, f"adaptive_max_pool{nd}d")(t, 1, return_indices=True)
    g = rng.standard_normal((2, 3))
    gt = torch.from_numpy(g.reshape((2, 3) + (1,) * nd))
    (gm_t,) = torch.autograd.grad(y_t, t, gt)
    (ga_t,) = torch.autograd.grad(getattr(F, f"adaptive_avg_pool{nd}d")(t, 1), t, gt)
    xu = np.moveaxis(x, 1, -1) if channels_last else x
    back = (lambda a: np.moveaxis(a, -1, 1)) if channels_last else (lambda a: a)
    gu = g
    if keepdims:
        gu = g.reshape((2,) + (1,) * nd + (3,)) if channels_last else g.reshape(
            (2, 3) + (1,) * nd)
    for name in BACKENDS:
        with cypool.backend(name):
            _, i = cypool.global_max_pool(xu, return_indices=True, keepdims=keepdims,
                                          channels_last=channels_last)
            gm = cypool.global_max_pool_backward(gu, i, xu.shape, keepdims=keepdims,
                                                 channels_last=channels_last)
            ga = cypool.global_avg_pool_backward(gu, xu.shape, keepdims=keepdims,
                                                 channels_last=channels_last)
        np.testing.assert_allclose(back(gm), gm_t.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(back(ga), ga_t.numpy(), rtol=1e-12, atol=1e-12)


@st.composite
def global_cases(draw):
    nd = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, {1: 70, 2: 12, 3: 6}[nd])) for _ in range(nd))
    n = draw(st.integers(0, 3))
    c = draw(st.sampled_from([0, 1, 2, 5, 33]))
    dtype = draw(st.sampled_from(FLOATS + INTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_values(rng, (n, c) + size, dtype)
    channels_last = draw(st.booleans())
    if channels_last:
        x = np.moveaxis(x, 1, -1)
    layout = draw(st.sampled_from(LAYOUTS + ("broadcast",)))
    if layout == "broadcast":
        x = np.broadcast_to(x[:1], x.shape)
    else:
        x = with_layout(x, layout)
    return x, channels_last, draw(st.booleans()), draw(st.sampled_from(["truncate",
                                                                          "nearest"]))


@requires_compiled
@settings(max_examples=200)
@given(global_cases())
def test_compiled_matches_reference(case):
    x, cl, keepdims, rounding = case
    res = {}
    for name in ("compiled", "reference"):
        with cypool.backend(name):
            y, i = cypool.global_max_pool(x, return_indices=True, keepdims=keepdims,
                                          channels_last=cl)
            y2 = cypool.global_max_pool(x, keepdims=keepdims, channels_last=cl)
            a = cypool.global_avg_pool(x, keepdims=keepdims, rounding=rounding,
                                       channels_last=cl)
            g = np.random.default_rng(1).standard_normal(a.shape)
            ga = cypool.global_avg_pool_backward(g, x.shape, keepdims=keepdims,
                                                 channels_last=cl)
            gm = cypool.global_max_pool_backward(g, i, x.shape, keepdims=keepdims,
                                                 channels_last=cl)
            res[name] = (y, i, y2, a, ga, gm)
    c, r = res["compiled"], res["reference"]
    same_bits(c[0], r[0])
    np.testing.assert_array_equal(c[1], r[1])
    same_bits(c[2], r[2])
    if x.dtype.kind == "f":
        tol = 1e-5 if x.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(c[3], r[3], rtol=tol, atol=tol, equal_nan=True)
    else:
        np.testing.assert_array_equal(c[3], r[3])
    np.testing.assert_allclose(c[4], r[4], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c[5], r[5], rtol=1e-12, atol=1e-12)


@requires_compiled
@pytest.mark.parametrize("threads", [1, 2, 4])
def test_compiled_threads(threads):
    rng = np.random.default_rng(2)
    for shape in [(32, 256, 7, 7), (1, 3, 200, 300), (2, 64, 5, 6, 7), (1, 1, 100000)]:
        x = rng.standard_normal(shape).astype(np.float32)
        for cl in (False, True):
            xx = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if cl else x
            out = {}
            for name in ("compiled", "reference"):
                with cypool.backend(name), cypool.num_threads(threads):
                    out[name] = (cypool.global_max_pool(xx, return_indices=True,
                                                        channels_last=cl),
                                 cypool.global_avg_pool(xx, channels_last=cl))
            c, r = out["compiled"], out["reference"]
            np.testing.assert_array_equal(c[0][0], r[0][0])
            np.testing.assert_array_equal(c[0][1], r[0][1])
            np.testing.assert_allclose(c[1], r[1], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(c[1], x.mean(axis=tuple(range(2, x.ndim))),
                                       rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("rounding", ["truncate", "nearest"])
@pytest.mark.parametrize("dtype", INTS)
def test_integer_average(name, rounding, dtype):
    rng = np.random.default_rng(4)
    info = np.iinfo(dtype)
    x = rng.integers(max(info.min, -500), min(info.max, 500), (3, 4, 5, 7)).astype(dtype)
    sums = x.astype(np.int64).sum(axis=(2, 3))
    q = [Fraction(int(s), 35) for s in sums.ravel()]
    want = np.array([int(v) if rounding == "truncate" else round(v) for v in q])
    with cypool.backend(name):
        got = cypool.global_avg_pool(x, rounding=rounding)
        got_cl = cypool.global_avg_pool(np.moveaxis(x, 1, -1), rounding=rounding,
                                        channels_last=True)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.ravel(), want.astype(dtype))
    np.testing.assert_array_equal(got_cl.ravel(), want.astype(dtype))


@pytest.mark.parametrize("name", BACKENDS)
def test_finite_difference(name):
    rng = np.random.default_rng(8)
    x = rng.permutation(2 * 3 * 20).reshape(2, 3, 4, 5).astype(np.float64) / 7
    g = rng.standard_normal((2, 3))
    eps = 1e-6
    with cypool.backend(name):
        _, i = cypool.global_max_pool(x, return_indices=True)
        an = {"max": cypool.global_max_pool_backward(g, i, x.shape),
              "avg": cypool.global_avg_pool_backward(g, x.shape)}
        for kind, f in (("max", cypool.global_max_pool), ("avg", cypool.global_avg_pool)):
            num = np.empty_like(x)
            for p in np.ndindex(*x.shape):
                xp = x.copy()
                xp[p] += eps
                xm = x.copy()
                xm[p] -= eps
                num[p] = np.sum(g * (f(xp) - f(xm))) / (2 * eps)
            np.testing.assert_allclose(an[kind], num, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_out_and_errors(name):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    with cypool.backend(name):
        o = np.empty((2, 3), np.float32)
        oi = np.empty((2, 3), np.int64)
        r = cypool.global_max_pool(x, return_indices=True, out=(o, oi))
        assert r[0] is o and r[1] is oi
        np.testing.assert_array_equal(o, x.max(axis=(2, 3)))
        ok = np.empty((2, 3, 1, 1), np.float32)
        assert cypool.global_avg_pool(x, keepdims=True, out=ok) is ok
        gi = np.empty(x.shape, np.float32)
        assert cypool.global_avg_pool_backward(o, x.shape, out=gi) is gi
        np.testing.assert_allclose(gi, np.broadcast_to(o[:, :, None, None] / 20, x.shape))
        assert cypool.global_max_pool_backward(o, oi, x.shape, out=gi) is gi
        with pytest.raises(ValueError, match="out"):
            cypool.global_avg_pool(x, out=ok)          # keepdims shape without keepdims
        with pytest.raises(TypeError, match="out"):
            cypool.global_avg_pool(x, out=o.astype(np.float64))
        with pytest.raises(ValueError, match="input"):
            cypool.global_avg_pool(x[0, 0])            # 2-d: no spatial dimension
        with pytest.raises(ValueError, match="input"):
            cypool.global_max_pool(x[None, None])      # 6-d
        with pytest.raises(ValueError, match="spatial"):
            cypool.global_max_pool(np.zeros((2, 3, 0)))
        with pytest.raises(TypeError, match="dtype"):
            cypool.global_max_pool(x.astype(np.complex64))
        with pytest.raises(TypeError, match="keepdims"):
            cypool.global_max_pool(x, keepdims=None)
        with pytest.raises(ValueError, match="rounding"):
            cypool.global_avg_pool(x, rounding="up")
        with pytest.raises(ValueError, match="grad_output"):
            cypool.global_avg_pool_backward(o, x.shape, keepdims=True)
        with pytest.raises(ValueError, match="grad_output"):
            cypool.global_avg_pool_backward(o[:1], x.shape)
        with pytest.raises(ValueError, match="input_shape"):
            cypool.global_avg_pool_backward(o, (2, 3))
        with pytest.raises(ValueError, match="indices"):
            cypool.global_max_pool_backward(o, oi[:1], x.shape)
        with pytest.raises(ValueError, match="indices"):
            cypool.global_max_pool_backward(o, oi + 20, x.shape)
        with pytest.raises(TypeError, match="indices"):
            cypool.global_max_pool_backward(o, o, x.shape)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True], ids=["planar", "cl"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_bin_backward_keeps_negative_zero(nd, channels_last, backend):
    """One bin per plane is PyTorch's mean, whose gradient is the quotient
    itself: a -0 output gradient gives -0 (and a tiny negative one a -0 by
    underflow), where bins that share elements add into zeros and give +0.
    Global pooling and adaptive pooling to size 1 agree, in both backends."""
    shape = (2, 5) + (3, 4, 2)[:nd]
    go = np.full((2, 5) + (1,) * nd, -0.0, np.float32)
    go[0, 1] = -1e-45
    go[1, 2] = 3.0
    shape_in = shape
    if channels_last:
        go = np.ascontiguousarray(np.moveaxis(go, 1, -1))
        shape_in = (shape[0],) + shape[2:] + (shape[1],)
    with cypool.backend(backend):
        ga = getattr(cypool, f"adaptive_avg_pool{nd}d_backward")(
            go, shape_in, channels_last=channels_last)
        gg = cypool.global_avg_pool_backward(go, shape_in, keepdims=True,
                                             channels_last=channels_last)
    want = np.broadcast_to(go / np.float32(np.prod(shape[2:])), ga.shape)
    same_bits(ga, np.ascontiguousarray(want))
    same_bits(gg, np.ascontiguousarray(want))
    assert np.signbit(ga).sum() == ga.size - np.prod(shape[2:])   # all but go[1, 2]
    # two bins per dimension add into zeros: +0
    go2 = np.full((2, 5) + (2,) * nd, -0.0, np.float32)
    if channels_last:
        go2 = np.ascontiguousarray(np.moveaxis(go2, 1, -1))
    with cypool.backend(backend):
        g2 = getattr(cypool, f"adaptive_avg_pool{nd}d_backward")(
            go2, shape_in, channels_last=channels_last)
    assert not np.signbit(g2).any()


def lane_mean(x):
    """The compiled planar kernel's order, written out in numpy: eight lanes
    over the flat scan position (lane j sums elements j, j+8, ... of the
    whole groups of eight, in order), combined as
    ((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7)), then the tail left to right, then
    divided by the plane size; in the input's dtype throughout."""
    planes = x.reshape(x.shape[0] * x.shape[1], -1)
    P = planes.shape[1]
    full = P // 8 * 8
    dt = x.dtype.type
    if full:
        a = planes[:, 0:8].copy()
        for k in range(8, full, 8):
            a = a + planes[:, k:k + 8]
        s = ((a[:, 0] + a[:, 4]) + (a[:, 2] + a[:, 6])) + ((a[:, 1] + a[:, 5])
                                                          + (a[:, 3] + a[:, 7]))
    else:
        s = np.zeros(planes.shape[0], x.dtype)
    for k in range(full, P):
        s = s + planes[:, k]
    return (s / dt(P)).reshape(x.shape[:2])


@requires_compiled
@pytest.mark.parametrize("ahead", [0, 1, 64, 100, 8192, 1 << 20])
@pytest.mark.parametrize("dtype", FLOATS)
def test_average_hints(ahead, dtype):
    """The contiguous global average hints its input ahead for large inputs
    (``_gavg_hints``); here on small ones, at odd distances (the hints run
    past the array's end near the last plane), bit for bit the kernel's
    documented order computed in numpy."""
    from cypool._compiled import family
    k = family("_adaptive")
    rng = np.random.default_rng(ahead)
    old = k._gavg_hints(ahead, 0)
    try:
        for shape in [(3, 70, 7, 7), (1, 130, 3, 5), (2, 65, 1, 1), (4, 64, 16, 16),
                      (1, 3, 2, 3, 7)]:
            x = rng.standard_normal(shape).astype(dtype)
            want = lane_mean(x)
            for th in (1, 2):
                with cypool.num_threads(th):
                    same_bits(cypool.global_avg_pool(x), want)
    finally:
        k._gavg_hints(*old)
