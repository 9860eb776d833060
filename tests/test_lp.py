"""Lp pooling: PyTorch 2.13's composite, forward and backward, both backends."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from cases import with_layout
from conftest import requires_compiled

NORMS = (1, 2, 3, -1, -2, 0.5, -0.5, 1.5, 4, 5, -3, 2.5, math.inf, -math.inf)
BACKENDS = cypool.available_backends()
LAYOUTS = ("C", "F", "step", "reversed", "channels_last_storage", "channels_last")


def lp(nd):
    return getattr(cypool, f"lp_pool{nd}d")


def lp_bwd(nd):
    return getattr(cypool, f"lp_pool{nd}d_backward")


@st.composite
def lp_cases(draw, dtypes=(np.float32, np.float64), norms=NORMS, max_nd=3,
             special=True, allow_empty=True):
    """(x, p, kernel, stride, ceil_mode, channels_last): x is (N, C, *spatial)
    unless channels_last."""
    nd = draw(st.integers(1, max_nd))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = draw(st.one_of(st.none(),
                            st.tuples(*[st.integers(1, 3) for _ in range(nd)])))
    ceil_mode = draw(st.booleans())
    size = tuple(draw(st.integers(k, k + 5 if nd < 3 else k + 3)) for k in kernel)
    n = draw(st.integers(0 if allow_empty else 1, 2))
    c = draw(st.integers(0 if allow_empty else 1, 3))
    dtype = draw(st.sampled_from(dtypes))
    p = draw(st.sampled_from(norms))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + size).astype(dtype)
    if draw(st.booleans()):
        x = np.abs(x)
    if special and x.size and draw(st.booleans()):
        flat = x.reshape(-1)
        for v in draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0]),
                               max_size=3)):
            flat[rng.integers(flat.size)] = v
    layout = draw(st.sampled_from(LAYOUTS))
    channels_last = layout == "channels_last"
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    else:
        x = with_layout(x, layout)
    return x, p, kernel, stride, ceil_mode, channels_last


def nd_of(x, channels_last):
    return x.ndim - 2


def tolerances(dtype):
    return (2e-5, 1e-6) if dtype == np.float32 else (1e-11, 1e-13)


def assert_close(actual, expected, dtype, scale=1.0):
    rtol, atol = tolerances(dtype)
    np.testing.assert_allclose(actual, expected, rtol=rtol * scale, atol=atol * scale,
                               equal_nan=True)


# ---------------------------------------------------- worked examples (torch)

def test_ceil_mode_edge_window_rescaled(each_backend):
    x = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    y = cypool.lp_pool1d(x, 2, 2, ceil_mode=True)
    np.testing.assert_allclose(y, [[math.sqrt(5), 5.0, math.sqrt(50)]])
    x2 = np.arange(1.0, 26.0).reshape(1, 5, 5)
    y2 = cypool.lp_pool2d(x2, 2, 2, ceil_mode=True)
    assert y2.shape == (1, 3, 3)
    assert y2[0, 2, 2] == pytest.approx(50.0)     # sqrt(4 * 25**2)


def test_no_abs_on_signed_input(each_backend):
    assert cypool.lp_pool1d(np.array([[-1.0, -2.0]]), 1, 2)[0, 0] == -3.0
    assert np.isnan(cypool.lp_pool1d(np.array([[-1.0, -2.0]]), 3, 2)[0, 0])
    assert np.isnan(cypool.lp_pool1d(np.array([[-1.0, 2.0]]), 1.5, 2)[0, 0])
    # odd p with a positive window sum stays real: (-1 + 8) ** (1/3)
    assert cypool.lp_pool1d(np.array([[-1.0, 2.0]]), 3, 2)[0, 0] == pytest.approx(7 ** (1 / 3))


def test_infinite_norms(each_backend):
    x = np.array([[[0.0, -0.0, np.nan, 2.0, 1.0, -3.0]]])
    np.testing.assert_array_equal(cypool.lp_pool1d(x, math.inf, 2), [[[0.0, np.nan, 3.0]]])
    np.testing.assert_array_equal(cypool.lp_pool1d(x, -math.inf, 2), [[[0.0, np.nan, 1.0]]])
    g = np.ones((1, 1, 3))
    y = cypool.lp_pool1d(x, math.inf, 2)
    # to the first largest |x|, times sign(x) (0 for NaN and 0)
    np.testing.assert_array_equal(cypool.lp_pool1d_backward(g, x, y, math.inf, 2),
                                  [[[0, 0, 0, 0, 0, -1]]])
    y = cypool.lp_pool1d(x, -math.inf, 2)
    np.testing.assert_array_equal(cypool.lp_pool1d_backward(g, x, y, -math.inf, 2),
                                  [[[0, 0, 0, 0, 1, 0]]])


def test_zero_window_sum_has_zero_gradient(each_backend):
    x = np.array([[0.0, 0.0, 3.0, 4.0]])
    y = cypool.lp_pool1d(x, 2, 2)
    np.testing.assert_allclose(y, [[0.0, 5.0]])
    gi = cypool.lp_pool1d_backward(np.ones_like(y), x, y, 2, 2)
    np.testing.assert_allclose(gi, [[0.0, 0.0, 0.6, 0.8]])
    # p < 1: 0 * 0**(p-1) = 0 * inf is NaN where no window passes a gradient
    gi = cypool.lp_pool1d_backward(np.ones((1, 1)), np.array([[0.0, 0.0, 1.0]]),
                                   np.zeros((1, 1)), 0.5, 2)
    assert np.isnan(gi[0, :2]).all() and gi[0, 2] == 0


def test_negative_zero_rectified(each_backend):
    # the window sum -0 becomes +0 (sign(a) * relu(|a|)), so 1/+0 = +inf
    y = cypool.lp_pool1d(np.array([[-0.0, -0.0]]), 1, 2)
    assert y[0, 0] == 0 and not np.signbit(y[0, 0])


# ------------------------------------------------------------- vs torch

def torch_lp(x, p, kernel, stride, ceil_mode, channels_last, g):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    nd = x.ndim - 2
    a = np.moveaxis(x, -1, 1) if channels_last else x
    t = torch.tensor(np.ascontiguousarray(a), requires_grad=True)
    k = kernel if nd > 1 else kernel[0]
    y = getattr(F, f"lp_pool{nd}d")(t, p, k, stride, ceil_mode)
    gt = torch.tensor(np.ascontiguousarray(np.moveaxis(g, -1, 1) if channels_last else g))
    y.backward(gt)
    yn, gn = y.detach().numpy(), t.grad.numpy()
    if channels_last:
        yn, gn = np.moveaxis(yn, 1, -1), np.moveaxis(gn, 1, -1)
    return yn, gn


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=120)
@given(lp_cases(allow_empty=False))
def test_matches_torch(backend, case):
    with cypool.backend(backend):
        _check_torch(case)


def _check_torch(case):
    x, p, kernel, stride, ceil_mode, cl = case
    nd = nd_of(x, cl)
    try:
        y = lp(nd)(x, p, kernel, stride, ceil_mode, channels_last=cl)
    except ValueError:
        return  # an empty output; the error rules have their own tests
    g = np.random.default_rng(0).standard_normal(y.shape).astype(x.dtype)
    yt, gt = torch_lp(x, p, kernel, stride, ceil_mode, cl, g)
    assert y.dtype == x.dtype and y.shape == yt.shape
    # torch's pow for general exponents (Sleef) is accurate to about 1 ulp
    assert_close(y, yt, x.dtype, scale=10)
    gi = lp_bwd(nd)(g, x, y, p, kernel, stride, ceil_mode, channels_last=cl)
    assert gi.shape == x.shape and gi.dtype == x.dtype
    assert_close(gi, gt, x.dtype, scale=10 if abs(p) < 4 else 100)


def test_benchmark_shape_matches_torch_bitwise_or_ulp():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)
    expected = torch.nn.functional.lp_pool2d(torch.from_numpy(x), 2, 2).numpy()
    for name in cypool.available_backends():
        with cypool.backend(name):
            np.testing.assert_allclose(cypool.lp_pool2d(x, 2, 2), expected,
                                       rtol=3e-7, atol=0)


# -------------------------------------------------- compiled vs reference

@requires_compiled
@settings(max_examples=150)
@given(lp_cases(), st.sampled_from([1, 2]))
def test_compiled_matches_reference(case, threads):
    x, p, kernel, stride, ceil_mode, cl = case
    nd = nd_of(x, cl)
    with cypool.backend("reference"):
        try:
            ref = lp(nd)(x, p, kernel, stride, ceil_mode, channels_last=cl)
        except ValueError:
            with cypool.backend("compiled"), pytest.raises(ValueError):
                lp(nd)(x, p, kernel, stride, ceil_mode, channels_last=cl)
            return
        g = np.random.default_rng(1).standard_normal(ref.shape).astype(x.dtype)
        gref = lp_bwd(nd)(g, x, ref, p, kernel, stride, ceil_mode, channels_last=cl)
    with cypool.backend("compiled"), cypool.num_threads(threads):
        got = lp(nd)(x, p, kernel, stride, ceil_mode, channels_last=cl)
        ggot = lp_bwd(nd)(g, x, ref, p, kernel, stride, ceil_mode, channels_last=cl)
    assert_close(got, ref, x.dtype, scale=4)
    assert_close(ggot, gref, x.dtype, scale=40)
    if p in (1, 2, math.inf, -math.inf):  # no pow: same operations, same order
        np.testing.assert_array_equal(got, ref)


@requires_compiled
@pytest.mark.parametrize("shape", [(1, 1, 3, 700), (1, 1, 64, 64), (2, 1, 9, 9, 9)])
@pytest.mark.parametrize("p", [1, 2, 3, math.inf])
def test_compiled_few_planes_long_rows(shape, p):
    """Few (n, c) planes: rows and chunks of rows are split across threads."""
    nd = len(shape) - 2
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    with cypool.backend("reference"):
        ref = lp(nd)(x, p, 3, 2, True)
        g = np.ones_like(ref)
        gref = lp_bwd(nd)(g, x, ref, p, 3, 2, True)
    for threads in (1, 2):
        with cypool.backend("compiled"), cypool.num_threads(threads):
            assert_close(lp(nd)(x, p, 3, 2, True), ref, np.float32, scale=4)
            assert_close(lp_bwd(nd)(g, x, ref, p, 3, 2, True), gref, np.float32,
                         scale=40)


# ---------------------------------------------------- finite differences

def numeric_grad(f, x, g, eps=1e-4):
    """The gradient of sum(f(x) * g) by the five-point central difference
    (error of order eps**4), each difference taken per output before the
    weighted sum (outputs the element does not reach cancel exactly).  A
    two-point difference at eps=1e-6 had rounding errors near 1e-6 where
    window sums reach the thousands (p=0.5, 3x3x3 windows), and at larger
    eps its eps**2 error showed."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        vals = []
        for k in (-2, -1, 1, 2):
            flat[i] = old + k * eps
            vals.append(f(x))
        flat[i] = old
        diff = (vals[0] - vals[3]) + 8 * (vals[2] - vals[1])
        gflat[i] = np.sum(diff * g) / (12 * eps)
    return grad


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25)
@given(st.integers(1, 3), st.sampled_from([1, 2, 3, 1.5, -1, 0.5, math.inf, -math.inf]),
       st.integers(1, 3), st.integers(1, 3), st.booleans(), st.integers(0, 2**32 - 1))
def test_backward_finite_differences(backend, nd, p, k, s, ceil_mode, seed):
    with cypool.backend(backend):
        _check_finite_differences(nd, p, k, s, ceil_mode, seed)


def _check_finite_differences(nd, p, k, s, ceil_mode, seed):
    rng = np.random.default_rng(seed)
    size = (k + 2,) * nd if nd < 3 else (k + 1,) * nd
    # positive, well separated values: smooth for every p, unique extremes
    x = (rng.permutation(math.prod(size)).reshape((1,) + size) + 1.0) / 7.0
    f = lp(nd)
    y = f(x, p, k, s, ceil_mode)
    g = rng.standard_normal(y.shape)
    expected = numeric_grad(lambda a: f(a, p, k, s, ceil_mode), x.copy(), g)
    got = lp_bwd(nd)(g, x, y, p, k, s, ceil_mode)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------ arrays, out=

def test_unbatched_out_and_empty(each_backend):
    x = np.random.default_rng(0).random((3, 6, 6))
    y = cypool.lp_pool2d(x, 2, (2, 3), stride=(2, 1))
    np.testing.assert_allclose(y, cypool.lp_pool2d(x[None], 2, (2, 3), (2, 1))[0])
    buf = np.full(y.shape, 7.0)
    assert cypool.lp_pool2d(x, 2, (2, 3), (2, 1), out=buf) is buf
    np.testing.assert_array_equal(buf, y)
    gbuf = np.full(x.shape, 7.0)
    gi = cypool.lp_pool2d_backward(np.ones_like(y), x, y, 2, (2, 3), (2, 1), out=gbuf)
    assert gi is gbuf
    np.testing.assert_allclose(
        gi, cypool.lp_pool2d_backward(np.ones_like(y)[None], x[None], y[None], 2,
                                      (2, 3), (2, 1))[0])
    for shape in [(0, 3, 4, 4), (2, 0, 4, 4)]:
        e = np.zeros(shape)
        assert cypool.lp_pool2d(e, 2, 2).shape == shape[:2] + (2, 2)
        assert cypool.lp_pool2d_backward(np.zeros(shape[:2] + (2, 2)), e,
                                         np.zeros(shape[:2] + (2, 2)), 2, 2).shape == shape


def test_read_only_and_broadcast_input(each_backend):
    x = np.broadcast_to(np.arange(1.0, 9.0), (2, 3, 8))
    y = cypool.lp_pool1d(x, 2, 4)
    np.testing.assert_allclose(y[1, 2], [math.sqrt(1 + 4 + 9 + 16), math.sqrt(25 + 36 + 49 + 64)])
    gi = cypool.lp_pool1d_backward(np.ones_like(y), x, y, 2, 4)
    np.testing.assert_allclose(gi[0, 0, :4], np.arange(1.0, 5.0) / y[0, 0, 0])


def test_channels_last_equals_transposed(each_backend):
    x = np.random.default_rng(2).random((2, 7, 5, 3)).astype(np.float32)
    y = cypool.lp_pool2d(x, 3, 2, 1, True, channels_last=True)
    yt = cypool.lp_pool2d(np.moveaxis(x, -1, 1), 3, 2, 1, True)
    np.testing.assert_array_equal(y, np.moveaxis(yt, 1, -1))
    assert y.flags.c_contiguous


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("p, exc", [(0, ValueError), (0.0, ValueError),
                                    (float("nan"), ValueError), (True, TypeError),
                                    ("2", TypeError), (None, TypeError),
                                    (1 + 2j, TypeError)])
def test_bad_norm_type(each_backend, p, exc):
    with pytest.raises(exc, match="norm_type"):
        cypool.lp_pool1d(np.ones((1, 4)), p, 2)
    with pytest.raises(exc, match="norm_type"):
        cypool.lp_pool1d_backward(np.ones((1, 2)), np.ones((1, 4)), np.ones((1, 2)), p, 2)


def test_numpy_and_huge_norm_types(each_backend):
    x = np.array([[3.0, 4.0]], dtype=np.float32)
    assert cypool.lp_pool1d(x, np.float64(2), 2).dtype == np.float32
    assert cypool.lp_pool1d(x, np.int64(2), 2)[0, 0] == pytest.approx(5.0)
    assert cypool.lp_pool1d(x, 10**400, 2)[0, 0] == 4.0   # overflows to +inf


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, np.complex64])
def test_integer_input_rejected(each_backend, dtype):
    with pytest.raises(TypeError, match="dtype"):
        cypool.lp_pool2d(np.ones((1, 4, 4), dtype=dtype), 2, 2)


def test_geometry_and_shape_errors(each_backend):
    x = np.ones((1, 1, 4, 4))
    with pytest.raises(ValueError, match="empty"):
        cypool.lp_pool2d(x, 2, 5)
    with pytest.raises(ValueError, match="kernel_size"):
        cypool.lp_pool2d(x, 2, 0)
    with pytest.raises(ValueError, match="stride"):
        cypool.lp_pool2d(x, 2, 2, -1)
    with pytest.raises(TypeError, match="kernel_size"):
        cypool.lp_pool2d(x, 2, 1.5)
    with pytest.raises(ValueError, match="input"):
        cypool.lp_pool2d(np.ones(4), 2, 2)
    with pytest.raises(TypeError, match="ceil_mode"):
        cypool.lp_pool2d(x, 2, 2, None, "yes")
    with pytest.raises(TypeError):
        cypool.lp_pool2d(x, 2, 2, None, False, True)  # channels_last is keyword-only
    y = cypool.lp_pool2d(x, 2, 2)
    with pytest.raises(ValueError, match="grad_output"):
        cypool.lp_pool2d_backward(np.ones((1, 1, 3, 3)), x, y, 2, 2)
    with pytest.raises(TypeError, match="grad_output"):
        cypool.lp_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), x, y, 2, 2)
    with pytest.raises(ValueError, match="output"):
        cypool.lp_pool2d_backward(np.ones_like(y), x, y[..., :1], 2, 2)
    with pytest.raises(ValueError, match="out"):
        cypool.lp_pool2d(x, 2, 2, out=np.empty((1, 1, 3, 3)))
    with pytest.raises(TypeError, match="out"):
        cypool.lp_pool2d(x, 2, 2, out=np.empty((1, 1, 2, 2), np.float32))
    buf = np.ones(18)
    with pytest.raises(ValueError, match="overlap"):
        cypool.lp_pool2d(buf[:16].reshape(1, 1, 4, 4), 2, 2, 1,
                         out=buf[9:].reshape(1, 1, 3, 3))


def test_hostile_arguments_raise_cleanly(each_backend):
    x = np.ones((1, 1, 5, 5), dtype=np.float32)
    for kernel in (2**62, 2**63, -(2**63)):
        with pytest.raises((ValueError, OverflowError)):
            cypool.lp_pool2d(x, 2, kernel)
    with pytest.raises(ValueError):
        cypool.lp_pool2d(x, 2, 2, 2**63)
    with pytest.raises(ValueError):
        cypool.lp_pool2d(np.ones((1, 1, 0, 5)), 2, 1)
    swapped = np.arange(1.0, 5.0).astype(">f8").reshape(1, 4)
    np.testing.assert_allclose(cypool.lp_pool1d(swapped, 2, 2), [[math.sqrt(5), 5.0]])


# The compiled forward divides each window sum by its count, except a
# power-of-two count, which it multiplies by the exact reciprocal: both round
# the same real number, so the result is the reference's bit for bit.  Every
# count below (1, 2, 4, 8 and, as a control, 3, 6, 9) against the reference,
# bit for bit, also with squares in the subnormal range.
@pytest.mark.parametrize("dtype,scale", [(np.float32, 1.0), (np.float32, 1e-20),
                                         (np.float64, 1.0), (np.float64, 1e-160)])
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("k,s,ceil", [(2, 2, False), (2, 2, True), ((2, 4), (2, 4), True),
                                      ((1, 2), (1, 2), True), (3, 2, True), (3, 3, True),
                                      (2, 1, False), ((2, 2), (2, 1), True)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_window_counts_bitwise(dtype, scale, p, k, s, ceil, channels_last):
    if "compiled" not in cypool.available_backends():
        pytest.skip("the compiled extension is not available")
    x = (np.random.default_rng(11).standard_normal((2, 3, 17, 19)) * scale).astype(dtype)
    with cypool.backend("reference"):
        want = cypool.lp_pool2d(x, p, k, s, ceil_mode=ceil)
    xin = np.ascontiguousarray(np.moveaxis(x, 1, -1)) if channels_last else x
    with cypool.backend("compiled"):
        got = cypool.lp_pool2d(xin, p, k, s, ceil_mode=ceil, channels_last=channels_last)
    if channels_last:
        got = np.ascontiguousarray(np.moveaxis(got, -1, 1))
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


@requires_compiled
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("nd,kernel,stride", [
    (2, 2, 1), (2, 2, 2), (2, 2, (1, 2)), (2, 2, (2, 1)), (2, 2, 3), (2, 2, (1, 3)),
    (3, (2, 1, 2), 1), (3, (2, 1, 2), 2), (3, (2, 1, 2), (2, 1, 2)),
    (3, (1, 2, 2), 1), (3, (1, 2, 2), 2), (3, (1, 2, 2), (1, 2, 2))])
@pytest.mark.parametrize("ceil", [False, True])
def test_pairs_bitwise(p, nd, kernel, stride, ceil):
    """2 x 2 windows at W stride 1 or 2 (one fused loop per output row,
    float32; stride 3, a control, takes the passes): the reference's bits,
    with NaN, infinities, signed zeros and subnormal squares among the
    values, rows of odd and even length (the ceil-mode edge window takes the
    passes) and of more than one block of 256 outputs, at 1 and 2 threads."""
    rng = np.random.default_rng(17)
    for shape in ([(2, 3, 17, 41), (1, 2, 6, 1100)] if nd == 2
                  else [(2, 2, 4, 9, 37), (1, 1, 2, 3, 64)]):
        x = rng.choice(np.array([-3.0, -1.5, -0.0, 0.0, 1e-23, 2.0, 7.0, np.inf, -np.inf,
                                 np.nan], np.float32), shape,
                       p=[.15, .15, .1, .1, .1, .15, .15, .03, .03, .04])
        with cypool.backend("reference"):
            want = lp(nd)(x, p, kernel, stride, ceil)
        for th in (1, 2):
            with cypool.backend("compiled"), cypool.num_threads(th):
                got = lp(nd)(x, p, kernel, stride, ceil)
            np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@requires_compiled
def test_stride2_pairs_hint_distance():
    """The stride-2 fused loop's hints reach past the last rows of the input
    (at any distance), and change no result."""
    from cypool._compiled import family
    rng = np.random.default_rng(19)
    x = rng.standard_normal((3, 2, 10, 64)).astype(np.float32)
    with cypool.backend("reference"):
        want = cypool.lp_pool2d(x, 2, 2, 2)
    mod = family("_lp")
    old = mod._s2_hint()
    try:
        for nbytes in (0, 1, 64, 8192, 1 << 30):
            mod._s2_hint(nbytes)
            with cypool.backend("compiled"):
                got = cypool.lp_pool2d(x, 2, 2, 2)
            np.testing.assert_array_equal(got, want)
    finally:
        mod._s2_hint(old)


@requires_compiled
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("ceil", [False, True])
def test_stride2_pairs_streamed(p, ceil, stream_everything):
    """The fused stride-2 rows streamed out (``_stream_min(0)``): rows of
    every length mod 16 (a row's last partial line is carried into the
    next row's stream), rows between them that take the passes (ceil-mode
    edges, a one-row window at the bottom), planes shared by two threads,
    fresh results and ``out=`` windows of a larger buffer at every element
    offset from a line, nothing written outside them; the reference's
    bits."""
    rng = np.random.default_rng(23 + p)
    for shape in [(2, 3, 9, 34), (1, 2, 7, 31), (3, 1, 4, 2), (1, 1, 12, 66), (2, 2, 5, 47)]:
        x = rng.choice(np.array([-3.0, -1.5, -0.0, 0.0, 1e-23, 2.0, 7.0, np.inf,
                                 np.nan], np.float32), shape)
        with cypool.backend("reference"):
            want = cypool.lp_pool2d(x, p, 2, 2, ceil)
        n = want.size
        for th in (1, 2):
            with cypool.num_threads(th):
                got = cypool.lp_pool2d(x, p, 2, 2, ceil)
                np.testing.assert_array_equal(got.view(np.uint32),
                                              want.view(np.uint32))
                for off in range(0, 16, 3):
                    buf = np.full(n + 40, -9.0, np.float32)
                    o = buf[off:off + n].reshape(want.shape)
                    cypool.lp_pool2d(x, p, 2, 2, ceil, out=o)
                    np.testing.assert_array_equal(o.view(np.uint32),
                                                  want.view(np.uint32))
                    assert (buf[:off] == -9).all() and (buf[off + n:] == -9).all()
