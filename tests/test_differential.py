"""The compiled backend against the reference backend (the oracle).

Max pooling must agree bit for bit (values, NaN payloads included, and
indices), and so must its backward (same accumulation order).  Average
pooling must agree within float rounding.
"""

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import cypool
from cypool._params import pool_geometry
from cases import FLOATS, cases, grad_like, random_values, with_layout
from conftest import requires_compiled, small_planes

pytestmark = requires_compiled


def _run(backend, fn, *args, **kwargs):
    with cypool.backend(backend):
        return fn(*args, **kwargs)


def _both(fn, *args, **kwargs):
    return (_run("reference", fn, *args, **kwargs),
            _run("compiled", fn, *args, **kwargs))


def assert_bits_equal(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    if a.dtype.kind == "f":
        a = a.view(np.uint32 if a.itemsize == 4 else np.uint64)
        b = b.view(a.dtype)
    np.testing.assert_array_equal(a, b)


def _rtol(dtype):
    return 2e-6 if np.dtype(dtype) == np.float32 else 1e-13


# Planar calls with short output rows take the small-plane path (most of
# these random cases); "off" keeps the row kernels covered on the same
# cases, "on" and "wide" send every planar call they can take through the
# small-plane paths (see conftest.small_planes).
PATHS = pytest.mark.parametrize("path", ["auto", "off", "on", "wide"])


@PATHS
@given(cases())
def test_max_pool_forward(path, case):
    f = getattr(cypool, f"max_pool{case.nd}d")
    with small_planes(path):
        (ref, ref_idx), (got, got_idx) = _both(f, case.x, *case.max_args(),
                                               return_indices=True)
        values = _run("compiled", f, case.x, *case.max_args())
    assert_bits_equal(ref, got)
    np.testing.assert_array_equal(ref_idx, got_idx)
    assert got.flags.c_contiguous and got_idx.dtype == np.int64
    # the path without indices gives the same values
    assert_bits_equal(got, values)


@given(cases(dtypes=FLOATS), st.integers(0, 2**32 - 1))
def test_max_pool_backward(case, seed):
    f = getattr(cypool, f"max_pool{case.nd}d")
    b = getattr(cypool, f"max_pool{case.nd}d_backward")
    out, idx = _run("reference", f, case.x, *case.max_args(), return_indices=True)
    g = grad_like(np.random.default_rng(seed), out.shape, out.dtype)
    ref, got = _both(b, g, idx, case.x.shape, *case.max_args())
    assert_bits_equal(ref, got)


@PATHS
@given(cases(dtypes=FLOATS, dilation=False))
def test_avg_pool_forward(path, case):
    f = getattr(cypool, f"avg_pool{case.nd}d")
    for include_pad in (True, False):
        with small_planes(path):
            ref, got = _both(f, case.x, *case.avg_args(), count_include_pad=include_pad)
        np.testing.assert_allclose(got, ref, rtol=_rtol(case.x.dtype), atol=0)
        assert got.dtype == case.x.dtype and got.flags.c_contiguous


@pytest.mark.parametrize("path", ["auto", "off", "on"])
@given(cases(dtypes=FLOATS, dilation=False, special=False),
       st.sampled_from([None, 1, 3, -2, 7]), st.booleans(), st.integers(0, 2**32 - 1))
def test_avg_pool_backward(path, case, divisor, include_pad, seed):
    f = getattr(cypool, f"avg_pool{case.nd}d")
    b = getattr(cypool, f"avg_pool{case.nd}d_backward")
    out = _run("reference", f, case.x, *case.avg_args(), include_pad, divisor)
    g = grad_like(np.random.default_rng(seed), out.shape, out.dtype)
    with small_planes(path):
        ref, got = _both(b, g, case.x.shape, *case.avg_args(), include_pad, divisor)
    # The two backends add a position's contributions in different orders;
    # the difference is bounded by (terms) * eps * (sum of |contributions|),
    # the latter being the backward of |g|.  (A relative tolerance alone
    # fails where contributions cancel.)
    mag = np.abs(_run("reference", b, np.abs(g), case.x.shape, *case.avg_args(),
                      include_pad, divisor))
    terms = int(np.prod(case.kernel))
    bound = 2 * terms * np.finfo(g.dtype).eps * mag + np.finfo(g.dtype).tiny
    assert got.shape == ref.shape and got.dtype == ref.dtype
    bad = ~(np.abs(got.astype(np.float64) - ref) <= bound)
    assert not bad.any(), (got[bad], ref[bad], bound[bad])


@PATHS
@given(cases(dtypes=FLOATS, dilation=False), st.sampled_from([1, 2, 3, -2, 9]))
def test_avg_pool_divisor_override(path, case, divisor):
    f = getattr(cypool, f"avg_pool{case.nd}d")
    with small_planes(path):
        ref, got = _both(f, case.x, *case.avg_args(), divisor_override=divisor)
    np.testing.assert_allclose(got, ref, rtol=_rtol(case.x.dtype), atol=0)


@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("shape,kernel,stride,padding", [
    ((1, 1, 300, 257), 3, 2, 1),       # N = C = 1: rows are split across threads
    ((2, 3, 65, 70), (2, 3), (2, 1), (1, 0)),
    ((1, 1, 5000), 4, 3, 2),            # one long 1-d row: split into chunks
    ((2, 2, 9, 40, 33), 3, 2, 1),
])
def test_parallel_splits_agree(nthreads, shape, kernel, stride, padding):
    """Work split over rows and chunks (N=1 inputs) gives the oracle's result."""
    rng = np.random.default_rng(0)
    x = random_values(rng, shape, np.float32)
    nd = len(shape) - 2
    mp = getattr(cypool, f"max_pool{nd}d")
    ap = getattr(cypool, f"avg_pool{nd}d")
    ab = getattr(cypool, f"avg_pool{nd}d_backward")
    mb = getattr(cypool, f"max_pool{nd}d_backward")
    ref_out, ref_idx = _run("reference", mp, x, kernel, stride, padding, return_indices=True)
    ref_avg = _run("reference", ap, x, kernel, stride, padding, ceil_mode=True)
    g = rng.standard_normal(ref_avg.shape).astype(np.float32)
    gm = rng.standard_normal(ref_out.shape).astype(np.float32)
    ref_ab = _run("reference", ab, g, x.shape, kernel, stride, padding, ceil_mode=True)
    ref_mb = _run("reference", mb, gm, ref_idx, x.shape, kernel, stride, padding)
    with cypool.num_threads(nthreads):
        out, idx = _run("compiled", mp, x, kernel, stride, padding, return_indices=True)
        avg = _run("compiled", ap, x, kernel, stride, padding, ceil_mode=True)
        gab = _run("compiled", ab, g, x.shape, kernel, stride, padding, ceil_mode=True)
        gmb = _run("compiled", mb, gm, idx, x.shape, kernel, stride, padding)
    assert_bits_equal(ref_out, out)
    np.testing.assert_array_equal(ref_idx, idx)
    np.testing.assert_allclose(avg, ref_avg, rtol=2e-6)
    np.testing.assert_allclose(gab, ref_ab, rtol=2e-6, atol=1e-6)
    assert_bits_equal(ref_mb, gmb)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
def test_big_kernels_beyond_small_dtype_tags(dtype):
    """Kernels with more taps than a small dtype can count (int64 index path)."""
    rng = np.random.default_rng(1)
    x = random_values(rng, (2, 2, 40, 300), dtype)
    for kernel in [(16, 17), (1, 257), (3, 100)]:
        ref, got = _both(cypool.max_pool2d, x, kernel, (3, 5), 0, 1, True, True)
        assert_bits_equal(ref[0], got[0])
        np.testing.assert_array_equal(ref[1], got[1])


@settings(max_examples=60)
@given(cases(dtypes=(np.float32,), layouts=("C",)), st.sampled_from(["step", "reversed", "F"]))
def test_layouts_do_not_change_results(case, layout):
    """A strided view gives exactly the contiguous array's result."""
    f = getattr(cypool, f"max_pool{case.nd}d")
    a = _run("compiled", f, case.x, *case.max_args(), return_indices=True)
    b = _run("compiled", f, with_layout(case.x, layout), *case.max_args(), return_indices=True)
    assert_bits_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@st.composite
def giant_geometry(draw):
    """Kernels, strides, dilations and explicit paddings up to 2**61 on tiny
    inputs: windows far larger than the input, scattered taps (the compiled
    kernels' sparse path), one window per output."""
    nd = draw(st.integers(1, 2))
    big = st.sampled_from([2**20, 2**40, 2**61])
    kernel = tuple(draw(st.one_of(st.integers(1, 6), big)) for _ in range(nd))
    stride = tuple(draw(st.one_of(st.integers(1, 5), big)) for _ in range(nd))
    dil = tuple(draw(st.sampled_from([1, 1, 2, 3, 2**10])) for _ in range(nd))
    pads = []
    for k, d in zip(kernel, dil):
        keff = d * (k - 1) + 1
        side = st.one_of(st.integers(0, min(keff - 1, 4)),
                         st.integers(0, keff - 1))
        pads.append((draw(side), draw(side)))
    size = tuple(draw(st.integers(1, 6)) for _ in range(nd))
    seed = draw(st.integers(0, 2**32 - 1))
    x = random_values(np.random.default_rng(seed), (2, 2) + size, np.float32)
    return nd, x, kernel, stride, tuple(pads), dil, draw(st.booleans())


@settings(max_examples=400)
@given(giant_geometry(), st.integers(0, 2**32 - 1))
def test_giant_windows(geometry, seed):
    nd, x, kernel, stride, pads, dil, ceil_mode = geometry
    mp = getattr(cypool, f"max_pool{nd}d")
    try:
        geom = pool_geometry(nd, x.shape[2:], kernel, stride, pads, dil, ceil_mode)
    except ValueError:
        pass
    else:
        # the reference visits every useful tap with a slice operation: keep
        # the (padding-made) outputs few enough for it to stay fast
        assume(np.prod(geom.out_size) <= 4096)
    try:
        with cypool.backend("reference"):
            ref, ref_idx = mp(x, kernel, stride, pads, dil, ceil_mode, return_indices=True)
    except ValueError:
        event("rejected geometry")
        return  # an empty or unallocatable output: rejected by both backends alike
    event(f"output size {ref.shape[2:]}")
    with cypool.backend("compiled"):
        got, got_idx = mp(x, kernel, stride, pads, dil, ceil_mode, return_indices=True)
    assert_bits_equal(ref, got)
    np.testing.assert_array_equal(ref_idx, got_idx)
    xcl = np.moveaxis(x, 1, -1)
    with cypool.backend("compiled"):
        got, got_idx = mp(xcl, kernel, stride, pads, dil, ceil_mode, return_indices=True,
                          channels_last=True)
        got_values = mp(xcl, kernel, stride, pads, dil, ceil_mode, channels_last=True)
    assert_bits_equal(ref, np.moveaxis(got, -1, 1))
    assert_bits_equal(ref, np.moveaxis(got_values, -1, 1))
    np.testing.assert_array_equal(ref_idx, np.moveaxis(got_idx, -1, 1))
    g = np.random.default_rng(seed).standard_normal(ref.shape).astype(np.float32)
    mb = getattr(cypool, f"max_pool{nd}d_backward")
    assert_bits_equal(*_both(mb, g, ref_idx, x.shape, kernel, stride, pads, dil, ceil_mode))
    if all(d == 1 for d in dil):
        ap = getattr(cypool, f"avg_pool{nd}d")
        ab = getattr(cypool, f"avg_pool{nd}d_backward")
        for include_pad in (True, False):
            largest = np.prod([min(k, L + b + a) if include_pad else min(k, L)
                               for k, L, (b, a) in zip(kernel, x.shape[2:], pads)],
                              dtype=object)
            if largest > 2**62:  # the divisor would overflow: rejected by both
                for name in ("reference", "compiled"):
                    with cypool.backend(name), pytest.raises(ValueError, match="divisor"):
                        ap(x, kernel, stride, pads, ceil_mode, include_pad)
                continue
            ref, got = _both(ap, x, kernel, stride, pads, ceil_mode, include_pad)
            np.testing.assert_allclose(got, ref, rtol=2e-6)
            ref, got = _both(ab, g, x.shape, kernel, stride, pads, ceil_mode, include_pad)
            np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-6)
            xi = np.nan_to_num(x, posinf=9, neginf=-9).astype(np.int16)
            for rounding in ("truncate", "nearest"):
                ref, got = _both(ap, xi, kernel, stride, pads, ceil_mode, include_pad,
                                 rounding=rounding)
                np.testing.assert_array_equal(got, ref)
                ref, got = _both(ap, np.moveaxis(xi, 1, -1), kernel, stride, pads, ceil_mode,
                                 include_pad, rounding=rounding, channels_last=True)
                np.testing.assert_array_equal(got, ref)


@st.composite
def square_windows(draw):
    """2x2 and 3x3 windows with unit dilation and W stride 1 or 2 on wider
    inputs: the compiled whole-window row pass, its border columns and rows,
    its NaN-free fast mode and the exact recompute."""
    k = draw(st.sampled_from([2, 3]))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 2)))
    pad = (draw(st.integers(0, k // 2)), draw(st.integers(0, k // 2)))
    ceil_mode = draw(st.booleans())
    h = draw(st.integers(max(1, k - 2 * pad[0]), 12))
    w = draw(st.integers(max(1, k - 2 * pad[1]), 70))
    dtype = draw(st.sampled_from(FLOATS + (np.int8, np.uint8, np.int32, np.int64)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_values(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w),
                      dtype, special=draw(st.booleans()))
    x = with_layout(x, draw(st.sampled_from(["C", "F", "reversed", "step"])))
    return x, k, stride, pad, ceil_mode


@given(square_windows())
def test_square_window_rows(args):
    x, k, stride, pad, ceil_mode = args
    ref, got = _both(cypool.max_pool2d, x, k, stride, pad, 1, ceil_mode)
    assert_bits_equal(ref, got)
