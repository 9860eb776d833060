"""Max unpooling and its backward (a gather), both backends."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cypool
from cases import with_layout
from conftest import requires_compiled

DTYPES = (np.float32, np.float64, np.int8, np.uint8, np.int16, np.uint16,
          np.int32, np.int64)
BACKENDS = cypool.available_backends()
LAYOUTS = ("C", "F", "step", "reversed", "channels_last_storage", "channels_last")


def unpool(nd):
    return getattr(cypool, f"max_unpool{nd}d")


def unpool_bwd(nd):
    return getattr(cypool, f"max_unpool{nd}d_backward")


def loop_unpool(x, idx, out_spatial):
    """The rule written as a plain loop over (n, c) planes and positions in C
    order: zeros, then out[n, c].flat[i] = x (later positions overwrite)."""
    n, c = x.shape[:2]
    out = np.zeros((n, c) + tuple(out_spatial), dtype=x.dtype)
    for a in range(n):
        for b in range(c):
            plane = out[a, b].reshape(-1)
            for v, i in zip(x[a, b].reshape(-1).tolist(), idx[a, b].reshape(-1).tolist()):
                if i != -1:
                    plane[i] = v
    return out


def loop_gather(grad_output, idx):
    n, c = idx.shape[:2]
    out = np.zeros(idx.shape, dtype=grad_output.dtype)
    for a in range(n):
        for b in range(c):
            plane = grad_output[a, b].reshape(-1)
            dst = out[a, b].reshape(-1)
            for j, i in enumerate(idx[a, b].reshape(-1).tolist()):
                dst[j] = 0 if i == -1 else plane[i]
    return out


@st.composite
def unpool_cases(draw, dtypes=DTYPES, allow_empty=True, minus_one=True):
    """(x, idx, kernel, stride, padding, out_spatial, layout), x and idx as
    (N, C, *spatial) arrays (before the layout is applied)."""
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    size = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    default = tuple((i - 1) * s - 2 * p + k
                    for i, s, p, k in zip(size, stride, padding, kernel))
    if any(d < 1 for d in default):
        padding = (0,) * nd
        default = tuple((i - 1) * s + k for i, s, k in zip(size, stride, kernel))
    out_spatial = tuple(draw(st.integers(max(1, d - s + 1), d + s - 1))
                        for d, s in zip(default, stride))
    n = draw(st.integers(0 if allow_empty else 1, 2))
    c = draw(st.integers(0 if allow_empty else 1, 4))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    plane = math.prod(out_spatial)
    # small planes and many positions: repeated indices are common
    idx = rng.integers(-1 if minus_one else 0, plane, (n, c) + size)
    if dtype.kind == "f":
        x = rng.standard_normal((n, c) + size).astype(dtype)
    else:
        info = np.iinfo(dtype)
        x = rng.integers(info.min, info.max, (n, c) + size, endpoint=True).astype(dtype)
    layout = draw(st.sampled_from(LAYOUTS))
    return x, idx, kernel, stride, padding, out_spatial, layout


def apply_layout(a, layout):
    if layout == "channels_last":
        return np.ascontiguousarray(np.moveaxis(a, 1, -1))
    return with_layout(a, layout)


def to_user(a, layout):
    return np.moveaxis(a, 1, -1) if layout == "channels_last" else a


# ------------------------------------------------------- the rule, exactly

@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=120)
@given(unpool_cases(), st.sampled_from([1, 2]), st.booleans())
def test_matches_loop_oracle(backend, case, threads, give_size):
    x, idx, kernel, stride, padding, out_spatial, layout = case
    nd = len(kernel)
    cl = layout == "channels_last"
    if not give_size:  # the default size; indices into its plane
        out_spatial = tuple((i - 1) * s - 2 * p + k for i, s, p, k in
                            zip(x.shape[2:], stride, padding, kernel))
        idx = np.where(idx >= 0, idx % math.prod(out_spatial), -1)
    xu, iu = apply_layout(x, layout), apply_layout(idx, layout)
    with cypool.backend(backend), cypool.num_threads(threads):
        y = unpool(nd)(xu, iu, kernel, stride, padding,
                       out_spatial if give_size else None, channels_last=cl)
        expected = loop_unpool(x, idx, out_spatial)
        assert y.dtype == x.dtype and y.flags.c_contiguous
        np.testing.assert_array_equal(y, to_user(expected, layout))
        go = (np.arange(math.prod(expected.shape)) % 97).reshape(expected.shape)
        go = go.astype(x.dtype)
        gi = unpool_bwd(nd)(apply_layout(go, layout), iu, channels_last=cl)
        np.testing.assert_array_equal(gi, to_user(loop_gather(go, idx), layout))


@requires_compiled
@settings(max_examples=100)
@given(unpool_cases(), st.sampled_from([1, 2]))
def test_compiled_matches_reference(case, threads):
    x, idx, kernel, stride, padding, out_spatial, layout = case
    nd = len(kernel)
    cl = layout == "channels_last"
    xu, iu = apply_layout(x, layout), apply_layout(idx, layout)
    results = []
    for name in ("reference", "compiled"):
        with cypool.backend(name), cypool.num_threads(threads):
            y = unpool(nd)(xu, iu, kernel, stride, padding, out_spatial, channels_last=cl)
            results.append((y, unpool_bwd(nd)(y, iu, channels_last=cl)))
    (y0, g0), (y1, g1) = results
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(g0, g1)


def test_repeated_indices_last_wins_in_both_layouts(each_backend):
    x = np.array([[[7.0, 8.0]]])
    idx = np.array([[[1, 1]]])
    np.testing.assert_array_equal(cypool.max_unpool1d(x, idx, 2), [[[0, 8, 0, 0]]])
    # channels-last: the order is the NCHW view's, per plane
    x2 = np.arange(1, 9, dtype=np.int16).reshape(1, 2, 2, 2)   # (N, C, H, W)
    i2 = np.array([[[[3, 3], [0, 3]], [[1, 1], [1, 2]]]])
    a = cypool.max_unpool2d(x2, i2, 1, 1)
    b = cypool.max_unpool2d(np.moveaxis(x2, 1, -1), np.moveaxis(i2, 1, -1), 1, 1,
                            channels_last=True)
    np.testing.assert_array_equal(a, [[[[3, 0], [0, 4]], [[0, 7], [8, 0]]]])
    np.testing.assert_array_equal(np.moveaxis(b, -1, 1), a)
    # the backward gives each repeated index the full gradient (as torch)
    np.testing.assert_array_equal(
        cypool.max_unpool1d_backward(np.array([[[1.0, 2.0, 3.0, 4.0]]]), idx),
        [[[2.0, 2.0]]])


def test_overlapping_max_pool_roundtrip(each_backend):
    x = np.array([[1.0, 9.0, 2.0, 3.0, 0.0]])
    y, idx = cypool.max_pool1d(x, 3, 1, return_indices=True)
    np.testing.assert_array_equal(idx, [[1, 1, 3]])
    np.testing.assert_array_equal(cypool.max_unpool1d(y, idx, 3, 1),
                                  [[0.0, 9.0, 0.0, 3.0, 0.0]])


def test_minus_one_skipped(each_backend):
    x = np.array([[[5, 6, 7]]], dtype=np.uint8)
    idx = np.array([[[-1, 2, -1]]])
    np.testing.assert_array_equal(cypool.max_unpool1d(x, idx, 2),
                                  np.array([[[0, 0, 6, 0, 0, 0]]], dtype=np.uint8))
    g = np.arange(6.0).reshape(1, 1, 6)
    np.testing.assert_array_equal(cypool.max_unpool1d_backward(g, idx), [[[0, 2, 0]]])


# ---------------------------------------------------------------- vs torch

@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=60)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.booleans(),
       st.sampled_from([np.float32, np.float64]), st.integers(0, 2**32 - 1))
def test_matches_torch(backend, nd, k, s, with_size, dtype, seed):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    p = int(rng.integers(0, k // 2 + 1))
    size = tuple(int(v) for v in rng.integers(k, k + 4, nd)) if nd < 3 else (k + 1,) * 3
    x = rng.standard_normal((2, 3) + size).astype(dtype)
    xt = torch.from_numpy(x)
    pooled, idx = getattr(F, f"max_pool{nd}d")(xt, k, s, p, return_indices=True)
    default = [(o - 1) * s - 2 * p + k for o in pooled.shape[2:]]
    fits = all(d - s < o < d + s for d, o in zip(default, size))
    covers = math.prod(default) > int(idx.max())
    assume(fits or covers)
    output_size = size if (with_size and fits) or not covers else None
    pt = pooled.clone().requires_grad_(True)
    yt = getattr(F, f"max_unpool{nd}d")(pt, idx, k, s, p, output_size)
    g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    yt.backward(torch.from_numpy(g))
    with cypool.backend(backend):
        y = unpool(nd)(pooled.detach().numpy(), idx.numpy(), k, s, p, output_size)
        np.testing.assert_array_equal(y, yt.detach().numpy())
        gi = unpool_bwd(nd)(g, idx.numpy())
        np.testing.assert_array_equal(gi, pt.grad.numpy())


def test_torch_output_size_rule(each_backend):
    x = np.ones((1, 1, 2))
    idx = np.array([[[0, 2]]])
    # default 4, stride 2: sizes strictly between 2 and 6
    for size in (3, 4, 5):
        assert cypool.max_unpool1d(x, idx, 2, output_size=(size,)).shape == (1, 1, size)
    for size in (2, 6):
        with pytest.raises(ValueError, match="output_size"):
            cypool.max_unpool1d(x, idx, 2, output_size=(size,))
    # a whole shape: the (N, C) entries are ignored, as in torch
    assert cypool.max_unpool1d(x, idx, 2, output_size=(9, 9, 5)).shape == (1, 1, 5)
    xc = np.ones((1, 2, 2, 1))
    ic = np.zeros((1, 2, 2, 1), dtype=np.int64)
    y = cypool.max_unpool2d(xc, ic, 2, output_size=(1, 5, 3, 1), channels_last=True)
    assert y.shape == (1, 5, 3, 1)
    with pytest.raises(ValueError, match="output_size"):
        cypool.max_unpool1d(x, idx, 2, output_size=(4, 4))
    with pytest.raises(TypeError, match="output_size"):
        cypool.max_unpool1d(x, idx, 2, output_size=(4.0,))
    with pytest.raises(TypeError, match="output_size"):
        cypool.max_unpool1d(x, idx, 2, output_size=4)


# ------------------------------------------------------------ safety, errors

@pytest.mark.parametrize("bad", [4, 5, -2, 2**40, -(2**63)])
@pytest.mark.parametrize("layout", ["C", "channels_last"])
def test_out_of_range_index_rejected(each_backend, bad, layout):
    x = np.ones((1, 2, 2)) * 3
    idx = np.array([[[0, 3], [1, bad]]])
    cl = layout == "channels_last"
    xu, iu = apply_layout(x, layout), apply_layout(idx, layout)
    with pytest.raises(ValueError, match="indices"):
        cypool.max_unpool1d(xu, iu, 2, channels_last=cl)
    out = np.full((1, 4, 2) if cl else (1, 2, 4), 9.0)
    with pytest.raises(ValueError, match="indices"):
        cypool.max_unpool1d(xu, iu, 2, channels_last=cl, out=out)
    np.testing.assert_array_equal(out, 0)   # no partial scatter left behind
    with pytest.raises(ValueError, match="indices"):
        cypool.max_unpool1d_backward(np.ones(out.shape), iu, channels_last=cl)


def test_argument_errors(each_backend):
    x = np.ones((1, 1, 2, 2))
    idx = np.zeros((1, 1, 2, 2), dtype=np.int64)
    with pytest.raises(TypeError, match="indices"):
        cypool.max_unpool2d(x, idx.astype(np.int32), 2)
    with pytest.raises(TypeError, match="indices"):
        cypool.max_unpool2d(x, idx.astype(np.float64), 2)
    with pytest.raises(ValueError, match="indices"):
        cypool.max_unpool2d(x, idx[..., :1], 2)
    with pytest.raises(ValueError, match="kernel_size"):
        cypool.max_unpool2d(x, idx, 0)
    with pytest.raises(ValueError, match="stride"):
        cypool.max_unpool2d(x, idx, 2, 0)
    with pytest.raises(ValueError, match="padding"):
        cypool.max_unpool2d(x, idx, 2, 2, -1)
    with pytest.raises(ValueError, match="empty"):
        cypool.max_unpool2d(x, idx, 1, 1, 1)
    with pytest.raises(ValueError, match="input"):
        cypool.max_unpool2d(np.ones((2, 2)), idx[0, 0], 2)
    with pytest.raises(TypeError, match="dtype"):
        cypool.max_unpool2d(x.astype(np.complex128), idx, 2)
    with pytest.raises(TypeError):
        cypool.max_unpool2d(x, idx, 2, None, 0, None, True)  # keyword-only
    with pytest.raises(ValueError, match="out"):
        cypool.max_unpool2d(x, idx, 2, out=np.empty((1, 1, 3, 3)))
    with pytest.raises(TypeError, match="out"):
        cypool.max_unpool2d(x, idx, 2, out=np.empty((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="grad_output"):
        cypool.max_unpool2d_backward(np.ones((1, 2, 4, 4)), idx)
    with pytest.raises(ValueError, match="grad_output"):
        cypool.max_unpool2d_backward(np.ones((2, 4, 4)), idx)
    with pytest.raises(TypeError, match="indices"):
        cypool.max_unpool2d_backward(np.ones((1, 1, 4, 4)), idx.astype(np.uint64))


def test_unbatched_empty_out_and_readonly(each_backend):
    x = np.broadcast_to(np.array([4.0, 5.0]), (3, 2))          # read-only (C, L)
    idx = np.broadcast_to(np.array([1, 2]), (3, 2))
    y = cypool.max_unpool1d(x, idx, 2)
    np.testing.assert_array_equal(y, np.tile([0.0, 4.0, 5.0, 0.0], (3, 1)))
    buf = np.full((3, 4), -1.0)
    assert cypool.max_unpool1d(x, idx, 2, out=buf) is buf
    np.testing.assert_array_equal(buf, y)
    gbuf = np.empty((3, 2))
    assert cypool.max_unpool1d_backward(y, idx, out=gbuf) is gbuf
    np.testing.assert_array_equal(gbuf, x)
    for shape in [(0, 2, 3, 3), (2, 0, 3, 3)]:
        e = np.zeros(shape, np.uint16)
        ei = np.zeros(shape, np.int64)
        assert cypool.max_unpool2d(e, ei, 2).shape == shape[:2] + (6, 6)
        assert cypool.max_unpool2d_backward(np.zeros(shape[:2] + (6, 6)), ei).shape == shape


def test_backward_is_the_transpose_for_distinct_indices(each_backend):
    """With distinct indices the unpooling is linear and injective: the
    gather is exactly its adjoint, <unpool(x), g> == <x, gather(g)>."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 3, 4))
    idx = np.stack([rng.permutation(6 * 8)[:12].reshape(3, 4) for _ in range(6)])
    idx = idx.reshape(2, 3, 3, 4)
    g = rng.standard_normal((2, 3, 6, 8))
    y = cypool.max_unpool2d(x, idx, 2)
    gi = cypool.max_unpool2d_backward(g, idx)
    assert np.sum(y * g) == pytest.approx(np.sum(x * gi), rel=1e-12)


@requires_compiled
@pytest.mark.parametrize("shape", [(1, 1, 300, 300), (1, 3, 64, 64), (2, 70, 9, 9)])
@pytest.mark.parametrize("cl", [False, True])
def test_compiled_large_planes_and_few_planes(shape, cl):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape).astype(np.float32)
    pooled, idx = cypool.max_pool2d(x, 2, return_indices=True)
    pu, iu = (np.ascontiguousarray(np.moveaxis(a, 1, -1)) if cl else a
              for a in (pooled, idx))
    with cypool.backend("reference"):
        ref = cypool.max_unpool2d(pu, iu, 2, output_size=shape[2:], channels_last=cl)
        gref = cypool.max_unpool2d_backward(ref, iu, channels_last=cl)
    for threads in (1, 2):
        with cypool.backend("compiled"), cypool.num_threads(threads):
            np.testing.assert_array_equal(
                cypool.max_unpool2d(pu, iu, 2, output_size=shape[2:], channels_last=cl),
                ref)
            np.testing.assert_array_equal(
                cypool.max_unpool2d_backward(ref, iu, channels_last=cl), gref)


def test_hostile_arguments_raise_cleanly(each_backend):
    x = np.ones((1, 1, 2, 2), dtype=np.int8)
    idx = np.zeros((1, 1, 2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="too large"):
        cypool.max_unpool2d(x, idx, 2**40)
    with pytest.raises(ValueError):
        cypool.max_unpool2d(x, idx, 2**63)
    with pytest.raises(ValueError, match="output_size"):
        cypool.max_unpool2d(x, idx, 2, output_size=(-1, 4))
    swapped = np.array([[[1, 3]]], dtype=">i8")
    np.testing.assert_array_equal(cypool.max_unpool1d(np.ones((1, 1, 2)), swapped, 2),
                                  [[[0, 1, 0, 1]]])
    # an unpooled gradient with odd strides is read correctly
    g = np.arange(32.0).reshape(1, 1, 4, 8)[:, :, :, ::2]
    idx2 = np.array([[[[0, 5], [15, 10]]]])
    np.testing.assert_array_equal(cypool.max_unpool2d_backward(g, idx2),
                                  [[[[0.0, 10.0], [30.0, 20.0]]]])


@pytest.mark.parametrize("layout", ["C", "channels_last"])
def test_fresh_results_and_out_filled_with_garbage(threads, layout):
    """A fresh result is allocated zeroed and the compiled kernel skips its
    zero fill; a caller's ``out=`` holding other values is zeroed first.
    Both equal the reference backend's result."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 12, 14)).astype(np.float32)
    cl = layout == "channels_last"
    xl = apply_layout(x, layout)
    y, idx = cypool.max_pool2d(xl, 2, channels_last=cl, return_indices=True)
    with cypool.backend("reference"):
        want = cypool.max_unpool2d(y, idx, 2, channels_last=cl)
    fresh = cypool.max_unpool2d(y, idx, 2, channels_last=cl)
    np.testing.assert_array_equal(fresh, want)
    out = np.full(want.shape, np.nan, np.float32)
    assert cypool.max_unpool2d(y, idx, 2, channels_last=cl, out=out) is out
    np.testing.assert_array_equal(out, want)
