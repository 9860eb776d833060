"""Adaptive max and average pooling (SEMANTICS.md sections 4, 6, 7, 11, 13-16):
PyTorch's bins, NaN and tie rules, indices, integer averages, gradients, the
compiled backend against the reference, and the error rules."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from cypool import _reference_adaptive as ref
from cases import FLOATS, INTS, LAYOUTS, random_values, with_layout
from conftest import requires_compiled

BACKENDS = cypool.available_backends()


def amax(nd):
    return getattr(cypool, f"adaptive_max_pool{nd}d")


def aavg(nd):
    return getattr(cypool, f"adaptive_avg_pool{nd}d")


def bins_by_hand(n_in, n_out):
    """SEMANTICS.md section 7 with Fractions (independent of the code)."""
    import math
    return [(math.floor(Fraction(i * n_in, n_out)), math.ceil(Fraction((i + 1) * n_in, n_out)))
            for i in range(n_out)]


def same_bits(a, b):
    """Bit-identical arrays (NaN payloads and signed zeros included)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype.kind == "f":
        a = a.view(f"u{a.dtype.itemsize}")
        b = b.view(f"u{b.dtype.itemsize}")
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ bins

@pytest.mark.parametrize("n_in,n_out", [(10, 3), (5, 7), (7, 4), (3, 5), (1, 3),
                                        (14, 7), (13, 1), (6, 6)])
def test_bins_match_the_rule(n_in, n_out):
    lo, hi = ref.bins(n_in, n_out)
    assert list(zip(lo.tolist(), hi.tolist())) == bins_by_hand(n_in, n_out)


@pytest.mark.parametrize("n_in,n_out", [(2**40 + 7, 3), (2**61 + 12345, 1000),
                                        (3, 2000), (2**62, 7)])
def test_bins_exact_for_huge_sizes(n_in, n_out):
    # i*In beyond int64 for the larger cases: the reference switches to
    # Python integers; checked against the formula in Python integers
    lo, hi = ref.bins(n_in, n_out)
    assert lo.tolist() == [(i * n_in) // n_out for i in range(n_out)]
    assert hi.tolist() == [-((-(i + 1) * n_in) // n_out) for i in range(n_out)]


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("n_in,n_out", [(10, 3), (5, 7), (7, 4), (3, 5), (1, 3), (11, 4)])
def test_bin_membership_through_max_indices(name, n_in, n_out):
    # an increasing ramp: the maximum of bin i is its last element hi-1
    x = np.arange(n_in, dtype=np.float64)[None]
    with cypool.backend(name):
        y, idx = cypool.adaptive_max_pool1d(x, n_out, return_indices=True)
        avg = cypool.adaptive_avg_pool1d(x, n_out)
        # a decreasing ramp: the maximum is the first element lo
        _, idx2 = cypool.adaptive_max_pool1d(-x, n_out, return_indices=True)
    b = bins_by_hand(n_in, n_out)
    assert idx[0].tolist() == [hi - 1 for lo, hi in b]
    assert idx2[0].tolist() == [lo for lo, hi in b]
    np.testing.assert_allclose(avg[0], [(lo + hi - 1) / 2 for lo, hi in b])


@pytest.mark.parametrize("name", BACKENDS)
def test_large_identity(name):
    # SEMANTICS.md section 7: adaptive_avg_pool1d of arange(2**24 + 3) to the
    # same length is the identity (float32 start positions would drift)
    n = 2**24 + 3
    x = np.arange(n, dtype=np.float64)[None]
    with cypool.backend(name):
        y = cypool.adaptive_avg_pool1d(x, n)
        _, idx = cypool.adaptive_max_pool1d(x, n, return_indices=True)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(idx[0], np.arange(n))


@requires_compiled
def test_compiled_bins_long_rows():
    # In and Out in the millions (i*In far beyond 2**32): compiled tables
    # against the reference's
    x = np.arange(3_000_017, dtype=np.int64)[None] % 251
    x = x.astype(np.uint8)
    for n_out in (2_000_003, 4_000_037, 999_983):
        res = {}
        for name in ("compiled", "reference"):
            with cypool.backend(name):
                res[name] = cypool.adaptive_max_pool1d(x, n_out, return_indices=True)
        np.testing.assert_array_equal(res["compiled"][0], res["reference"][0])
        np.testing.assert_array_equal(res["compiled"][1], res["reference"][1])


# -------------------------------------------------------- worked examples

@pytest.mark.parametrize("name", BACKENDS)
def test_semantics_examples(name):
    with cypool.backend(name):
        y, i = cypool.adaptive_max_pool1d(np.array([[1., 3., 2.]]), 5, return_indices=True)
        assert y.tolist() == [[1, 3, 3, 3, 2]] and i.tolist() == [[0, 1, 1, 1, 2]]
        g = cypool.adaptive_max_pool1d_backward(np.ones((1, 5)), i, (1, 3))
        assert g.tolist() == [[1, 3, 1]]
        g = cypool.adaptive_avg_pool1d_backward(np.ones((1, 3)), (1, 5))
        np.testing.assert_allclose(g, [[0.5, 5 / 6, 1 / 3, 5 / 6, 0.5]])
        # NaN wins, the last NaN in scan order; ties keep the first
        y, i = cypool.adaptive_max_pool1d(np.array([[np.nan, 9, 9, 1, np.nan, np.nan]]), 2,
                                          return_indices=True)
        assert np.isnan(y).all() and i.tolist() == [[0, 5]]
        y, i = cypool.adaptive_max_pool2d(np.array([[[0, np.nan], [np.nan, 0]]]), 1,
                                          return_indices=True)
        assert i.tolist() == [[[2]]]
        y, i = cypool.adaptive_max_pool2d(np.array([[[0., 5], [5, 0]]]), 1,
                                          return_indices=True)
        assert i.tolist() == [[[1]]]   # row-major first, not column-major first
        y, i = cypool.adaptive_max_pool1d(np.full((1, 6), -np.inf), 2, return_indices=True)
        assert i.tolist() == [[0, 3]]
        y, i = cypool.adaptive_max_pool1d(np.full((1, 4), -128, np.int8), 2,
                                          return_indices=True)
        assert y.tolist() == [[-128, -128]] and i.tolist() == [[0, 2]]
        # signed zeros tie: the first in scan order is returned, bit for bit
        y = cypool.adaptive_max_pool1d(np.array([[-0.0, 0.0, 0.0, -0.0]]), 2)
        assert np.signbit(y).tolist() == [[True, False]]


@pytest.mark.parametrize("name", BACKENDS)
def test_output_size_forms(name):
    x = np.random.default_rng(0).random((2, 3, 5, 6))
    with cypool.backend(name):
        assert cypool.adaptive_avg_pool2d(x, (None, 3)).shape == (2, 3, 5, 3)
        assert cypool.adaptive_max_pool2d(x, (2, None)).shape == (2, 3, 2, 6)
        assert cypool.adaptive_avg_pool2d(x, 7).shape == (2, 3, 7, 7)
        assert cypool.adaptive_avg_pool2d(x, [4, 2]).shape == (2, 3, 4, 2)
        assert cypool.adaptive_max_pool2d(x, np.int64(2)).shape == (2, 3, 2, 2)
        np.testing.assert_array_equal(cypool.adaptive_max_pool2d(x, None), x)
        e = cypool.adaptive_avg_pool2d(x, 0)
        assert e.shape == (2, 3, 0, 0)
        y, i = cypool.adaptive_max_pool2d(x, (0, 2), return_indices=True)
        assert y.shape == i.shape == (2, 3, 0, 2)
        g = cypool.adaptive_max_pool2d_backward(y, i, x.shape)
        assert g.shape == x.shape and not g.any()
        g = cypool.adaptive_avg_pool2d_backward(e, x.shape)
        assert g.shape == x.shape and not g.any()
        assert cypool.adaptive_avg_pool3d(x, (1, 2, 3)).shape == (2, 1, 2, 3)  # unbatched
        assert cypool.adaptive_max_pool1d(x[0], 4).shape == (3, 5, 4)
        # empty batch / channel dimensions
        assert cypool.adaptive_max_pool2d(np.zeros((0, 3, 4, 4)), 2).shape == (0, 3, 2, 2)
        assert cypool.adaptive_avg_pool2d(np.zeros((2, 0, 4, 4)), 2).shape == (2, 0, 2, 2)
        g = cypool.adaptive_avg_pool2d_backward(np.zeros((2, 0, 2, 2)), (2, 0, 4, 4))
        assert g.shape == (2, 0, 4, 4)


# ----------------------------------------------------- against PyTorch

def _torch_cases(draw, dtypes=FLOATS, special=True):
    nd = draw(st.integers(1, 3))
    side = {1: 20, 2: 9, 3: 6}[nd]
    size = tuple(draw(st.integers(1, side)) for _ in range(nd))
    osz = tuple(draw(st.one_of(st.none(), st.integers(1, side + 3))) for _ in range(nd))
    n = draw(st.integers(1, 3))
    c = draw(st.integers(1, 3))
    batched = draw(st.booleans())
    dtype = draw(st.sampled_from(dtypes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_values(rng, ((n,) if batched else ()) + (c,) + size, dtype, special)
    return nd, x, osz, rng


def for_torch(osz, x):
    """torch's 1-d functions take no None: spell the kept size out."""
    nd = len(osz)
    return tuple(s if o is None else o for s, o in zip(x.shape[-nd:], osz))


torch_cases = st.composite(_torch_cases)


@settings(max_examples=80)
@given(torch_cases())
def test_reference_against_torch(case):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    nd, x, osz, rng = case
    t = torch.from_numpy(x)
    tosz = for_torch(osz, x)
    y_t, i_t = getattr(F, f"adaptive_max_pool{nd}d")(t, tosz, return_indices=True)
    a_t = getattr(F, f"adaptive_avg_pool{nd}d")(t, tosz)
    with cypool.backend("reference"):
        y, i = amax(nd)(x, osz, return_indices=True)
        a = aavg(nd)(x, osz)
    same_bits(y, y_t.numpy())
    np.testing.assert_array_equal(i, i_t.numpy())
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(a, a_t.numpy(), rtol=tol, atol=tol, equal_nan=True)


@settings(max_examples=60)
@given(torch_cases(dtypes=(np.float64,), special=False), st.booleans())
def test_gradients_against_torch(case, channels_last):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    nd, x, osz, rng = case
    t = torch.from_numpy(x).requires_grad_()
    tosz = for_torch(osz, x)
    y_t, i_t = getattr(F, f"adaptive_max_pool{nd}d")(t, tosz, return_indices=True)
    g = rng.standard_normal(y_t.shape)
    (gm_t,) = torch.autograd.grad(y_t, t, torch.from_numpy(g))
    a_t = getattr(F, f"adaptive_avg_pool{nd}d")(t, tosz)
    (ga_t,) = torch.autograd.grad(a_t, t, torch.from_numpy(g))
    c_axis = 1 if x.ndim == nd + 2 else 0
    mv = (lambda a: np.moveaxis(a, c_axis, -1)) if channels_last else (lambda a: a)
    back = (lambda a: np.moveaxis(a, -1, c_axis)) if channels_last else (lambda a: a)
    for name in BACKENDS:
        with cypool.backend(name):
            _, i = amax(nd)(mv(x), osz, return_indices=True, channels_last=channels_last)
            gm = getattr(cypool, f"adaptive_max_pool{nd}d_backward")(
                mv(g), i, mv(x).shape, channels_last=channels_last)
            ga = getattr(cypool, f"adaptive_avg_pool{nd}d_backward")(
                mv(g), mv(x).shape, channels_last=channels_last)
        np.testing.assert_array_equal(back(i), i_t.numpy())
        np.testing.assert_allclose(back(gm), gm_t.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(back(ga), ga_t.numpy(), rtol=1e-12, atol=1e-12)


def test_channels_last_against_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = np.random.default_rng(3).standard_normal((2, 5, 9, 7)).astype(np.float32)
    t = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    xcl = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    for name in BACKENDS:
        with cypool.backend(name):
            for osz in [(3, 4), (7, 7), (9, 7), (2, 11)]:
                y, i = cypool.adaptive_max_pool2d(xcl, osz, True, channels_last=True)
                y_t, i_t = F.adaptive_max_pool2d(t, osz, return_indices=True)
                same_bits(y.transpose(0, 3, 1, 2), y_t.numpy())
                np.testing.assert_array_equal(i.transpose(0, 3, 1, 2), i_t.numpy())
                a = cypool.adaptive_avg_pool2d(xcl, osz, channels_last=True)
                np.testing.assert_allclose(a.transpose(0, 3, 1, 2),
                                           F.adaptive_avg_pool2d(t, osz).numpy(), rtol=1e-5,
                                           atol=1e-6)


# ------------------------------------------------ compiled vs reference

@st.composite
def any_cases(draw):
    nd = draw(st.integers(1, 3))
    side = {1: 30, 2: 11, 3: 6}[nd]
    size = tuple(draw(st.integers(1, side)) for _ in range(nd))
    osz = tuple(draw(st.one_of(st.none(), st.integers(0, side + 3),
                               st.sampled_from([1, 2]))) for _ in range(nd))
    if draw(st.booleans()):  # divisible sizes: the fixed-window paths
        osz = tuple(max(1, s // draw(st.sampled_from([1, 2, 3]))) if s % 2 == 0 or s % 3 == 0
                    else o for s, o in zip(size, osz))
        size = tuple(o * draw(st.sampled_from([1, 2, 3])) if o else s
                     for s, o in zip(size, osz))
    n = draw(st.integers(0, 3))
    c = draw(st.sampled_from([0, 1, 2, 3, 17]))
    batched = draw(st.booleans())
    dtype = draw(st.sampled_from(FLOATS + INTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_values(rng, ((n,) if batched else ()) + (c,) + size, dtype)
    layout = draw(st.sampled_from(LAYOUTS + ("broadcast", "readonly")))
    channels_last = draw(st.booleans())
    c_axis = 1 if batched else 0
    if channels_last:
        x = np.moveaxis(x, c_axis, -1)
    if layout == "broadcast":
        x = np.broadcast_to(x[..., :1], x.shape)
    elif layout == "readonly":
        x = x.copy()
        x.flags.writeable = False
    else:
        x = with_layout(x, layout)
    return nd, x, osz, channels_last, draw(st.sampled_from(["truncate", "nearest"]))


@requires_compiled
@settings(max_examples=250)
@given(any_cases())
def test_compiled_matches_reference(case):
    nd, x, osz, cl, rounding = case
    res = {}
    for name in ("compiled", "reference"):
        with cypool.backend(name):
            y, i = amax(nd)(x, osz, return_indices=True, channels_last=cl)
            y2 = amax(nd)(x, osz, channels_last=cl)
            a = aavg(nd)(x, osz, rounding=rounding, channels_last=cl)
            rng = np.random.default_rng(0)
            g = rng.standard_normal(a.shape)
            ga = getattr(cypool, f"adaptive_avg_pool{nd}d_backward")(g, x.shape,
                                                                       channels_last=cl)
            gm = getattr(cypool, f"adaptive_max_pool{nd}d_backward")(g, i, x.shape,
                                                                       channels_last=cl)
            res[name] = (y, i, y2, a, ga, gm)
    c, r = res["compiled"], res["reference"]
    same_bits(c[0], r[0])
    np.testing.assert_array_equal(c[1], r[1])
    same_bits(c[2], r[2])
    assert c[3].dtype == x.dtype
    if x.dtype.kind == "f":
        tol = 1e-5 if x.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(c[3], r[3], rtol=tol, atol=tol, equal_nan=True)
    else:
        np.testing.assert_array_equal(c[3], r[3])
    np.testing.assert_allclose(c[4], r[4], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c[5], r[5], rtol=1e-12, atol=1e-12)
    for arr in c[:4]:
        assert arr.flags.c_contiguous


@requires_compiled
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_compiled_threads_and_shapes(threads):
    rng = np.random.default_rng(5)
    shapes = [((32, 64, 14, 14), 7), ((1, 1, 300, 301), (7, 13)), ((1, 2, 64, 64), (5, 64)),
              ((4, 3, 6, 8, 10), (3, 2, 5)), ((2, 3, 50), 17)]
    for shape, osz in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        nd = len(shape) - 2
        with cypool.num_threads(threads):
            with cypool.backend("compiled"):
                y, i = amax(nd)(x, osz, True)
                a = aavg(nd)(x, osz)
        with cypool.backend("reference"):
            y_r, i_r = amax(nd)(x, osz, True)
            a_r = aavg(nd)(x, osz)
        same_bits(y, y_r)
        np.testing.assert_array_equal(i, i_r)
        np.testing.assert_allclose(a, a_r, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------- integer averages

@settings(max_examples=60)
@given(st.integers(1, 3), st.sampled_from(INTS), st.sampled_from(["truncate", "nearest"]),
       st.integers(0, 2**32 - 1))
def test_integer_average_exact(nd, dtype, rounding, seed):
    rng = np.random.default_rng(seed)
    size = tuple(rng.integers(1, 7, nd))
    osz = tuple(int(v) for v in rng.integers(1, 8, nd))
    info = np.iinfo(dtype)
    x = rng.integers(max(info.min, -1000), min(info.max, 1000), (2, 3) + size).astype(dtype)
    per_dim = [bins_by_hand(s, o) for s, o in zip(size, osz)]
    want = np.empty((2, 3) + osz, dtype=np.int64)
    for pos in np.ndindex(*osz):
        sl = tuple(slice(*per_dim[k][p]) for k, p in enumerate(pos))
        block = x[(slice(None), slice(None)) + sl].astype(np.int64)
        total = block.sum(axis=tuple(range(2, 2 + nd)))
        cnt = int(np.prod([per_dim[k][p][1] - per_dim[k][p][0] for k, p in enumerate(pos)]))
        q = [Fraction(int(t), cnt) for t in total.ravel()]
        q = [int(v) if rounding == "truncate" else round(v) for v in q]
        want[(slice(None), slice(None)) + pos] = np.array(q).reshape(2, 3)
    for name in BACKENDS:
        with cypool.backend(name):
            got = aavg(nd)(x, osz, rounding=rounding)
            assert got.dtype == x.dtype
            np.testing.assert_array_equal(got, want.astype(dtype))
            cl = aavg(nd)(np.moveaxis(x, 1, -1), osz, rounding=rounding, channels_last=True)
            np.testing.assert_array_equal(np.moveaxis(cl, -1, 1), want.astype(dtype))


@pytest.mark.parametrize("name", BACKENDS)
def test_integer_average_torch_rule(name):
    with cypool.backend(name):
        x = np.array([[-7, -2, 3, -9]], dtype=np.int64)
        assert cypool.adaptive_avg_pool1d(x, 1).tolist() == [[-3]]
        assert cypool.adaptive_avg_pool1d(x, 1, rounding="nearest").tolist() == [[-4]]
        x = np.array([[1, 2, 3, 4]], dtype=np.uint8)   # 2.5 -> 2 both ways (ties to even)
        assert cypool.adaptive_avg_pool1d(x, 1).tolist() == [[2]]
        assert cypool.adaptive_avg_pool1d(x, 1, rounding="nearest").tolist() == [[2]]
        x = np.array([[1, 2, 3, 6]], dtype=np.uint8)   # 3.0
        assert cypool.adaptive_avg_pool1d(x, 1, rounding="nearest").tolist() == [[3]]
        big = np.full((1, 6), 2**62, dtype=np.int64)    # int64 sum wraps
        with cypool.backend("reference"):
            want = cypool.adaptive_avg_pool1d(big, 2)
        np.testing.assert_array_equal(cypool.adaptive_avg_pool1d(big, 2), want)


# --------------------------------------------- finite-difference gradients

@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("nd,shape,osz", [(1, (2, 2, 7), 3), (2, (1, 2, 5, 6), (4, 3)),
                                          (3, (1, 1, 3, 4, 5), (2, 3, 7))])
def test_finite_difference(name, nd, shape, osz):
    rng = np.random.default_rng(11)
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) * 0.1  # no ties
    eps = 1e-6
    with cypool.backend(name):
        for kind in ("avg", "max"):
            if kind == "avg":
                f = lambda v: aavg(nd)(v, osz)  # noqa: E731
            else:
                f = lambda v: amax(nd)(v, osz)  # noqa: E731
            y = f(x)
            g = rng.standard_normal(y.shape)
            if kind == "avg":
                an = getattr(cypool, f"adaptive_avg_pool{nd}d_backward")(g, x.shape)
            else:
                _, i = amax(nd)(x, osz, True)
                an = getattr(cypool, f"adaptive_max_pool{nd}d_backward")(g, i, x.shape)
            num = np.empty_like(x)
            for p in np.ndindex(*x.shape):
                xp = x.copy()
                xp[p] += eps
                xm = x.copy()
                xm[p] -= eps
                num[p] = np.sum(g * (f(xp) - f(xm))) / (2 * eps)
            np.testing.assert_allclose(an, num, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ out=

@pytest.mark.parametrize("name", BACKENDS)
def test_out(name):
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 6)).astype(np.float32)
    with cypool.backend(name):
        o = np.empty((2, 3, 3, 4), np.float32)
        oi = np.empty((2, 3, 3, 4), np.int64)
        r = cypool.adaptive_max_pool2d(x, (3, 4), True, out=(o, oi))
        assert r[0] is o and r[1] is oi
        y, i = cypool.adaptive_max_pool2d(x, (3, 4), True)
        np.testing.assert_array_equal(o, y)
        np.testing.assert_array_equal(oi, i)
        a = np.empty((2, 3, 3, 4), np.float32)
        assert cypool.adaptive_avg_pool2d(x, (3, 4), out=a) is a
        np.testing.assert_array_equal(a, cypool.adaptive_avg_pool2d(x, (3, 4)))
        gi = np.empty(x.shape, np.float32)
        assert cypool.adaptive_avg_pool2d_backward(a, x.shape, out=gi) is gi
        assert cypool.adaptive_max_pool2d_backward(a, oi, x.shape, out=gi) is gi
        with pytest.raises(ValueError):
            cypool.adaptive_avg_pool2d(x, (3, 4), out=np.empty((2, 3, 4, 3), np.float32))
        with pytest.raises(TypeError):
            cypool.adaptive_avg_pool2d(x, (3, 4), out=np.empty((2, 3, 3, 4), np.float64))
        with pytest.raises(ValueError):
            cypool.adaptive_avg_pool2d(x, 2, out=x[:, :, :2, :2])
        with pytest.raises(TypeError):
            cypool.adaptive_avg_pool2d(x, 2, out=(a, a))
        with pytest.raises(ValueError):
            cypool.adaptive_max_pool2d(x, (3, 4), True, out=(o,))


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("name", BACKENDS)
def test_errors(name):
    x = np.zeros((2, 3, 4, 4), np.float32)
    with cypool.backend(name):
        for f in (cypool.adaptive_max_pool2d, cypool.adaptive_avg_pool2d):
            with pytest.raises(ValueError, match="output_size"):
                f(x, (-1, 2))
            with pytest.raises(ValueError, match="output_size"):
                f(x, (2,))
            with pytest.raises(ValueError, match="output_size"):
                f(x, (2, 2, 2))
            with pytest.raises(TypeError, match="output_size"):
                f(x, 2.5)
            with pytest.raises(TypeError, match="output_size"):
                f(x, "2")
            with pytest.raises(TypeError, match="output_size"):
                f(x, (True, 2))
            with pytest.raises(ValueError, match="input"):
                f(x[0, 0], 2)
            with pytest.raises(ValueError, match="input"):
                f(x[None], 2)
            with pytest.raises(ValueError, match="spatial"):
                f(np.zeros((2, 3, 0, 4), np.float32), 2)
            with pytest.raises(TypeError, match="dtype"):
                f(x.astype(np.float16), 2)
            with pytest.raises(TypeError, match="dtype"):
                f(x.astype(bool), 2)
            with pytest.raises(TypeError, match="channels_last"):
                f(x, 2, channels_last=1)
        with pytest.raises(TypeError, match="return_indices"):
            cypool.adaptive_max_pool2d(x, 2, return_indices="yes")
        with pytest.raises(ValueError, match="rounding"):
            cypool.adaptive_avg_pool2d(x, 2, rounding="floor")
        g = np.zeros((2, 3, 2, 2), np.float32)
        i = np.zeros((2, 3, 2, 2), np.int64)
        with pytest.raises(ValueError, match="grad_output"):
            cypool.adaptive_avg_pool2d_backward(g, (2, 4, 4, 4))
        with pytest.raises(ValueError, match="grad_output"):
            cypool.adaptive_avg_pool2d_backward(g[0], (2, 3, 4, 4))
        with pytest.raises(TypeError, match="grad_output"):
            cypool.adaptive_avg_pool2d_backward(g.astype(np.int32), (2, 3, 4, 4))
        with pytest.raises(ValueError, match="input_shape"):
            cypool.adaptive_avg_pool2d_backward(g, (2, 3, 0, 4))
        with pytest.raises(TypeError, match="input_shape"):
            cypool.adaptive_avg_pool2d_backward(g, "abc")
        with pytest.raises(ValueError, match="indices"):
            cypool.adaptive_max_pool2d_backward(g, i[:, :, :1], (2, 3, 4, 4))
        with pytest.raises(TypeError, match="indices"):
            cypool.adaptive_max_pool2d_backward(g, i.astype(np.float64), (2, 3, 4, 4))
        for bad in (16, -2, 2**40, -(2**62)):
            j = i.copy()
            j[1, 2, 1, 0] = bad
            with pytest.raises(ValueError, match="indices"):
                cypool.adaptive_max_pool2d_backward(g, j, (2, 3, 4, 4))
        j = i.copy()
        j[0, 0, 0, 0] = -1   # the dilation-hole index is skipped, as in max_pool
        gi = cypool.adaptive_max_pool2d_backward(g + 1, j, (2, 3, 4, 4))
        assert gi[0, 0, 0, 0] == 3 and gi[0, 1, 0, 0] == 4


@requires_compiled
@settings(max_examples=60)
@given(st.integers(1, 3), st.sampled_from(FLOATS), st.sampled_from([1, 2, 5, 40]),
       st.integers(0, 2**32 - 1))
def test_compiled_average_same_bits_in_every_layout(nd, dtype, c, seed):
    # the compiled kernels sum every bin in one order (rows left to right,
    # rows in scan order; global: eight lanes over the plane, then the tail)
    # whatever the memory layout: channels-last equals transposing, bit for bit
    rng = np.random.default_rng(seed)
    size = tuple(int(v) for v in rng.integers(1, {1: 40, 2: 10, 3: 6}[nd], nd))
    osz = tuple(int(v) for v in rng.integers(1, 8, nd))
    x = rng.standard_normal((2, c) + size).astype(dtype)
    with cypool.backend("compiled"):
        base = aavg(nd)(x, osz)
        gbase = cypool.global_avg_pool(x)
        for layout in LAYOUTS:
            xv = with_layout(x, layout)
            cl = np.moveaxis(xv, 1, -1)
            for got in (aavg(nd)(xv, osz),
                        np.moveaxis(aavg(nd)(cl, osz, channels_last=True), -1, 1)):
                same_bits(np.ascontiguousarray(got), base)
            for got in (cypool.global_avg_pool(xv),
                        cypool.global_avg_pool(cl, channels_last=True)):
                same_bits(got, gbase)


# One bin per plane (every output size 1): the compiled backend runs global
# pooling's kernels.  Against the reference for every layout and dtype kind:
# max values and indices bit for bit (NaN and signed-zero ties included),
# averages within rounding for floats and exactly for integers (both
# rounding rules), and the average equal to global_avg_pool's bit for bit.
@pytest.mark.skipif("compiled" not in cypool.available_backends(),
                    reason="the compiled extension is not available")
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint8, np.int64])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("layout", ["planar", "channels_last", "strided"])
def test_one_bin_uses_global_kernels(dtype, nd, layout):
    rng = np.random.default_rng(nd)
    spatial = (5, 6, 7)[:nd]
    if np.dtype(dtype).kind == "f":
        x = rng.standard_normal((3, 4) + spatial).astype(dtype)
        x[0, 1].flat[3] = np.nan
        x[1, 2] = -1
        x[1, 2].flat[2] = -0.0
        x[1, 2].flat[4] = 0.0
    else:
        info = np.iinfo(dtype)
        x = rng.integers(max(info.min, -100), min(info.max, 100), (3, 4) + spatial,
                         dtype=dtype, endpoint=True)
    cl = layout == "channels_last"
    xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if cl else x
    if layout == "strided":
        big = np.zeros((3, 8) + tuple(2 * s for s in spatial), dtype)
        big[(slice(None), slice(None, None, 2)) + (slice(None, None, 2),) * nd] = x
        xin = big[(slice(None), slice(None, None, 2)) + (slice(None, None, 2),) * nd]
    mp = getattr(cypool, f"adaptive_max_pool{nd}d")
    ap = getattr(cypool, f"adaptive_avg_pool{nd}d")

    def back(a):
        return np.moveaxis(a, -1, 1) if cl else a

    with cypool.backend("reference"):
        want, want_idx = mp(x, 1, return_indices=True)
        want_avg = {r: ap(x, 1, rounding=r) for r in ("truncate", "nearest")}
    with cypool.backend("compiled"):
        got, idx = mp(xin, 1, return_indices=True, channels_last=cl)
        same_bits(back(got), want)
        np.testing.assert_array_equal(back(idx), want_idx)
        same_bits(back(mp(xin, 1, channels_last=cl)), want)
        for r, w in want_avg.items():
            avg = back(ap(xin, 1, rounding=r, channels_last=cl))
            if np.dtype(dtype).kind == "f":
                np.testing.assert_allclose(avg, w, rtol=1e-5, atol=1e-6, equal_nan=True)
                same_bits(avg, cypool.global_avg_pool(x, keepdims=True))
            else:
                np.testing.assert_array_equal(avg, w)
