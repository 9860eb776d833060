"""The small-plane path of planar max and average pooling.

Planar calls with short output rows take one of two paths: windows that
tile the planes (2x2, 3x3, 2x2x2, 3x3x3 or 1xKxK, stride = kernel, no
padding; rows under 128 bytes, values only) run through row kernels with a
NaN alarm, and other geometries with rows of up to 8 outputs (15 with
indices) pool each (n, c) volume as one unit through a per-call table of
tap offsets.  Each result here is checked
against the reference backend; ``test_differential`` runs its random cases
with this path on, off and at the built-in thresholds.
"""

import numpy as np
import pytest

import cypool
from conftest import requires_compiled, small_planes

pytestmark = requires_compiled


def bits(a):
    a = np.ascontiguousarray(a)
    if a.dtype.kind == "f":
        return a.view(np.uint32 if a.itemsize == 4 else np.uint64)
    return a


def same_sums(a, b):
    """Equal bit for bit except NaN payloads (which NaN an addition of two
    NaNs returns depends on the operand order the compiler picks: addition
    commutes), NaN positions equal."""
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    np.testing.assert_array_equal(bits(a)[ok], bits(b)[ok])


def _ref(fn, *args, **kw):
    with cypool.backend("reference"):
        return fn(*args, **kw)


def _compiled(fn, *args, **kw):
    with cypool.backend("compiled"):
        return fn(*args, **kw)


def _values(rng, shape, dtype, special):
    """Few distinct values (ties), with NaN, +-inf and +-0 when ``special``."""
    if np.dtype(dtype).kind == "f":
        pool = np.array([-2.5, -1, -0.0, 0.0, 1, 3, 3.5], dtype)
        if special:
            pool = np.concatenate([pool, np.array([np.nan, np.inf, -np.inf], dtype)])
        return rng.choice(pool, size=shape)
    info = np.iinfo(dtype)
    return rng.choice(np.array([info.min, info.min + 1, 0, 1, 5, info.max], dtype),
                      size=shape)


TILES = [
    # (nd, spatial, kernel): windows that tile the plane, with leftover rows
    # and columns (odd sizes), 3-d with a unit depth kernel, 1-row planes
    (2, (14, 14), 2), (2, (15, 13), 2), (2, (13, 13), 3), (2, (6, 17), 3),
    (2, (2, 30), 2), (3, (3, 8, 8), (1, 2, 2)), (3, (2, 9, 10), (1, 3, 3)),
    (3, (4, 6, 6), 2), (3, (5, 4, 7), 2), (3, (6, 7, 6), 3),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.uint16,
                                   np.int32, np.int64])
@pytest.mark.parametrize("nd,spatial,kernel", TILES)
@pytest.mark.parametrize("special", [False, True])
def test_tiling_windows(dtype, nd, spatial, kernel, special):
    rng = np.random.default_rng(len(spatial) * 100 + spatial[-1])
    x = _values(rng, (3, 5) + spatial, dtype, special)
    mp = getattr(cypool, f"max_pool{nd}d")
    want, want_idx = _ref(mp, x, kernel, return_indices=True)
    for th, mode in ((1, "on"), (2, "on"), (1, "wide")):
        with cypool.num_threads(th), small_planes(mode):
            got = _compiled(mp, x, kernel)
            got2, idx = _compiled(mp, x, kernel, return_indices=True)
        np.testing.assert_array_equal(bits(got), bits(want))
        np.testing.assert_array_equal(bits(got2), bits(want))
        np.testing.assert_array_equal(idx, want_idx)
    if np.dtype(dtype).kind == "f":
        ap = getattr(cypool, f"avg_pool{nd}d")
        for divisor in (None, 3, -4):
            want = _ref(ap, x, kernel, divisor_override=divisor)
            with small_planes("off"):
                rows = _compiled(ap, x, kernel, divisor_override=divisor)
            for mode in ("on", "wide"):
                with small_planes(mode):
                    got = _compiled(ap, x, kernel, divisor_override=divisor)
                np.testing.assert_allclose(got, want, rtol=1e-6, atol=0, equal_nan=True)
                # the same summation order as the row kernels
                same_sums(got, rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_alarm_positions(dtype):
    """A NaN at each tap of a 2x2 and a 3x3 window (the row kernels' alarm
    sends the volume through PyTorch's rule), and windows holding +inf and
    -inf (a false alarm: the sum is NaN, the maximum is not)."""
    for k in (2, 3):
        for tap in range(k * k):
            x = np.arange(2 * 3 * 6 * 6, dtype=dtype).reshape(2, 3, 6, 6)
            x[1, 2, tap // k, tap % k] = np.nan
            x[0, 1, k + tap // k, tap % k] = -np.nan
            x[0, 0, :k, :k] = np.inf
            x[0, 0, 0, 0] = -np.inf
            want, want_idx = _ref(cypool.max_pool2d, x, k, return_indices=True)
            with small_planes("on"):
                got = _compiled(cypool.max_pool2d, x, k)
                _, idx = _compiled(cypool.max_pool2d, x, k, return_indices=True)
            np.testing.assert_array_equal(bits(got), bits(want))
            np.testing.assert_array_equal(idx, want_idx)
    # the last NaN in scan order wins, payload and sign included
    x = np.zeros((1, 1, 2, 2), dtype)
    x[0, 0, 0, 1] = np.nan
    x[0, 0, 1, 0] = -np.nan
    with small_planes("on"):
        got, idx = _compiled(cypool.max_pool2d, x, 2, return_indices=True)
    assert idx.ravel()[0] == 2 and np.signbit(got.ravel()[0])


GEOMETRIES = [
    # (spatial, kernel, stride, padding, dilation, ceil_mode): the table path
    ((14, 14), 3, 2, 1, 1, False), ((13, 13), 3, 2, 0, 1, True),
    ((7, 7), 2, 2, 0, 1, True), ((9, 11), (3, 2), (1, 2), (1, 1), (2, 3), False),
    ((5,), 4, 1, 2, 2, True), ((3, 4, 5), 2, 2, 1, 1, True),
    ((1, 1), 3, 1, 1, 1, False), ((2, 3), 4, 3, 2, 1, True),
    # near-tilings that the row kernels must not take: padding along one
    # axis, a ceil-mode window hanging over the last column, and depth
    # steps of a (1, 2, 2) kernel (which they do take), strides
    # larger than the kernel
    ((6, 9), 3, 3, (1, 0), 1, False), ((9, 6), 3, 3, (0, 1), 1, False),
    ((8, 7), 2, 2, 0, 1, True), ((7, 9), 3, 3, 0, 1, True),
    ((8, 8), 2, (3, 2), 0, 1, False), ((8, 8), 2, (2, 3), 0, 1, False),
    ((5, 6, 6), (1, 2, 2), (2, 2, 2), 0, 1, False),
    ((5, 6, 6), 2, 2, 0, 1, True), ((7, 6, 6), 3, 3, 0, 1, True),
    ((6, 6, 6), 3, (2, 3, 3), 0, 1, False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_table_geometries(dtype, geom):
    spatial, k, s, p, d, ceil = geom
    nd = len(spatial)
    rng = np.random.default_rng(sum(spatial))
    x = _values(rng, (2, 3) + spatial, dtype, True)
    mp = getattr(cypool, f"max_pool{nd}d")
    want, want_idx = _ref(mp, x, k, s, p, d, ceil, return_indices=True)
    for layout in ("C", "reversed", "step"):
        xl = {"C": x, "reversed": np.ascontiguousarray(x[..., ::-1])[..., ::-1],
              "step": np.repeat(x, 2, axis=-1)[..., ::2]}[layout]
        with small_planes("on"):
            got, idx = _compiled(mp, xl, k, s, p, d, ceil, return_indices=True)
            got2 = _compiled(mp, xl, k, s, p, d, ceil)
        np.testing.assert_array_equal(bits(got), bits(want))
        np.testing.assert_array_equal(bits(got2), bits(want))
        np.testing.assert_array_equal(idx, want_idx)
        if np.dtype(dtype).kind == "f" and d == 1:
            ap = getattr(cypool, f"avg_pool{nd}d")
            for include_pad in (True, False):
                want_avg = _ref(ap, x, k, s, p, ceil, include_pad)
                with small_planes("on"):
                    got_avg = _compiled(ap, xl, k, s, p, ceil, include_pad)
                with small_planes("off"):
                    rows = _compiled(ap, xl, k, s, p, ceil, include_pad)
                np.testing.assert_allclose(got_avg, want_avg, rtol=1e-6, atol=0,
                                           equal_nan=True)
                same_sums(got_avg, rows)


def test_dilation_hole_falls_back():
    """A window with no in-bounds tap (L=3, k=2, d=4, p=1): the table path
    declines, and the row kernels give cypool's documented result."""
    x = np.array([[[1.0, 5.0, 2.0]]], np.float32)
    want, want_idx = _ref(cypool.max_pool1d, x, 2, 1, 1, 4, return_indices=True)
    with small_planes("on"):
        got, idx = _compiled(cypool.max_pool1d, x, 2, 1, 1, 4, return_indices=True)
    np.testing.assert_array_equal(bits(got), bits(want))
    np.testing.assert_array_equal(idx, want_idx)


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 3)])
def test_strided_output_volumes(kernel, stride):
    """The kernels write any output strides with contiguous rows: results
    into views of larger arrays (volumes not contiguous) equal the
    reference."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(7)
    x = _values(rng, (2, 3, 1, 12, 12), np.float32, True)
    o = (12 - kernel) // stride + 1
    want, want_idx = _ref(cypool.max_pool2d, x[:, :, 0], kernel, stride,
                          return_indices=True)
    want_avg = _ref(cypool.avg_pool2d, x[:, :, 0], kernel, stride)
    big = np.full((2, 3, 1, o + 2, o + 3), 7.0, np.float32)
    bigi = np.full((2, 3, 1, o + 1, o + 5), -5, np.int64)
    out, idx = big[:, :, :, 1:o + 1, 2:o + 2], bigi[:, :, :, :o, 3:o + 3]
    with small_planes("on"):
        _kernels.max_pool_forward(x, out, idx, (1, kernel, kernel), (1, stride, stride),
                                  (1, 1, 1), (0, 0, 0), 2)
        np.testing.assert_array_equal(bits(out[:, :, 0]), bits(want))
        np.testing.assert_array_equal(idx[:, :, 0], want_idx)
        out[...] = 0
        _kernels.max_pool_forward(x, out, None, (1, kernel, kernel), (1, stride, stride),
                                  (1, 1, 1), (0, 0, 0), 1)
        np.testing.assert_array_equal(bits(out[:, :, 0]), bits(want))
        _kernels.avg_pool_forward(x, out, (1, kernel, kernel), (1, stride, stride),
                                  (0, 0, 0), (0, 0, 0), True, 0, False, 1)
        np.testing.assert_allclose(out[:, :, 0], want_avg, rtol=1e-6, equal_nan=True)
    # nothing outside the views was written
    big[:, :, :, 1:o + 1, 2:o + 2] = 7.0
    bigi[:, :, :, :o, 3:o + 3] = -5
    assert (big == 7.0).all() and (bigi == -5).all()


def test_thresholds():
    """The built-in limits: tiling kernels for output rows under 128 bytes,
    the table for rows of up to 8 outputs (15 with indices), the tiling
    argmax kernel from 16 outputs to 128 bytes; ``_small_rows`` reads and
    sets them."""
    from cypool._compiled import _kernels
    assert _kernels._small_rows() == (128, 9, 16, True, 128)
    old = _kernels._small_rows(10, 20, 30, 0, 40)
    try:
        assert old == (128, 9, 16, True, 128)
        assert _kernels._small_rows() == (10, 20, 30, False, 40)
    finally:
        _kernels._small_rows(*old)


@pytest.mark.parametrize("extra", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 1, 1)])
@pytest.mark.parametrize("kernel", [(1, 2, 2), (2, 2, 2), (1, 3, 3), (1, 3, 2)])
def test_kernel_calls_with_oversized_outputs(extra, kernel):
    """The kernels are also called directly, with any output shape: output
    positions past the input (no in-bounds tap) must never make a kernel
    read past the input (the square row paths once read the depth slices
    past the input).  No public call makes such shapes, so the two paths
    are compared with each other, and the positions past the input with
    the rule for windows without in-bounds taps."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 4, 6, 6)).astype(np.float32)
    shape = tuple(4 // k + e if i == 0 else 6 // k + e
                  for i, (k, e) in enumerate(zip(kernel, extra)))
    results = {}
    for mode in ("on", "off"):
        out = np.full((2, 3) + shape, 9.0, np.float32)
        idx = np.zeros((2, 3) + shape, np.int64)
        avg = np.full((2, 3) + shape, 9.0, np.float32)
        with small_planes(mode):
            _kernels.max_pool_forward(x, out, None, kernel, kernel, (1, 1, 1), (0, 0, 0), 1)
            _kernels.max_pool_forward(x, out.copy(), idx, kernel, kernel, (1, 1, 1),
                                      (0, 0, 0), 1)
            _kernels.avg_pool_forward(x, avg, kernel, kernel, (0, 0, 0), (0, 0, 0), True, 0,
                                      False, 1)
        results[mode] = (out, idx, avg)
    for a, b in zip(results["on"], results["off"]):
        np.testing.assert_array_equal(bits(a), bits(b))
    # past the input (no in-bounds tap): -inf and index -1, cypool's rule
    out, idx, _ = results["on"]
    d = (4 - kernel[0]) // kernel[0] + 1
    assert (out[:, :, d:] == -np.inf).all() and (idx[:, :, d:] == -1).all()


BACKWARD = [
    # (spatial, kernel, stride, padding, ceil_mode): overlapping, clipped and
    # tiling windows, 1-d to 3-d
    ((14, 14), 3, 2, 1, False), ((13, 13), 3, 2, 0, True), ((7, 7), 3, 1, 1, False),
    ((14, 14), 2, 2, 0, False), ((9,), 4, 1, 2, True), ((3, 4, 5), 2, 1, 1, True),
    ((5, 5), (3, 2), (2, 1), (1, 0), False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", BACKWARD)
@pytest.mark.parametrize("include_pad,divisor", [(True, None), (False, None), (True, 3)])
def test_avg_backward_table(dtype, geom, include_pad, divisor):
    """The table path of the average backward against the reference, with
    strided grad_output (which keeps the row kernels) and 2 threads."""
    spatial, k, s, p, ceil = geom
    nd = len(spatial)
    f = getattr(cypool, f"avg_pool{nd}d")
    b = getattr(cypool, f"avg_pool{nd}d_backward")
    x = np.zeros((2, 3) + spatial, dtype)
    out = _ref(f, x, k, s, p, ceil, include_pad, divisor)
    g = np.random.default_rng(5).standard_normal(out.shape).astype(dtype)
    want = _ref(b, g, x.shape, k, s, p, ceil, include_pad, divisor)
    gs = np.repeat(g, 2, axis=-1)[..., ::2]
    for th in (1, 2):
        with small_planes("on"), cypool.num_threads(th):
            got = _compiled(b, g, x.shape, k, s, p, ceil, include_pad, divisor)
            strided = _compiled(b, gs, x.shape, k, s, p, ceil, include_pad, divisor)
        tol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
        np.testing.assert_allclose(strided, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("geom", BACKWARD)
def test_avg_backward_table_matches_torch_bitwise(geom):
    """The table path adds in PyTorch's order (outputs in order, taps in
    scan order into a zeroed gradient): its result equals torch's autograd
    bit for bit."""
    torch = pytest.importorskip("torch")
    spatial, k, s, p, ceil = geom
    nd = len(spatial)
    x = np.random.default_rng(9).random((2, 3) + spatial).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    ty = getattr(torch.nn.functional, f"avg_pool{nd}d")(tx, k, s, p, ceil)
    g = np.random.default_rng(10).standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.from_numpy(g))
    with small_planes("on"):
        got = _compiled(getattr(cypool, f"avg_pool{nd}d_backward"), g, x.shape, k, s, p, ceil)
    np.testing.assert_array_equal(bits(got), bits(tx.grad.numpy()))
