"""Scatters streamed while they are built (``scatter_stream.h``): the max
pooling backward (into a caller's ``out=`` or a fresh result) and max
unpooling (into a caller's ``out=``).  Each contiguous plane is built in a
per-thread buffer, and after each row of sources the part of the plane that
no later window reaches (from the windows' stride and leading padding) is
written out with non-temporal stores and zeroed in the buffer.

An index that lands in a part already written (only indices outside their
own window can) is stored into the destination itself; sources are still
taken in order, so every element receives its gradients in PyTorch's order
(and the last of repeated unpooling indices wins), and the result equals
the reference backend's bit for bit.

These tests lower the streaming threshold to 0 (every call streams) and
compare with the reference: indices from the forward over many geometries
(padding, dilation, ceil mode, overlapping and gapped windows), indices
drawn anywhere in the plane, ``out`` at every element offset from a 64-byte
line with guard elements around it, and bad indices.
"""

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled


def _ref(fn, *args, **kw):
    with cypool.backend("reference"):
        return fn(*args, **kw)


def _guarded(shape, dtype, off):
    """An ``out`` of ``shape`` that starts ``off`` elements into a buffer
    whose 64-byte-aligned start is known, with guard elements around it."""
    n = int(np.prod(shape))
    item = np.dtype(dtype).itemsize
    raw = np.full(n + off + 64 + 64 // item, 7.0, dtype)
    lead = (-raw.ctypes.data % 64) // item
    buf = raw[lead:lead + n + off + 32]
    return buf, buf[off:off + n].reshape(shape)


def _check(bwd, g, idx, shape, args, kw, dtype, off):
    want = _ref(bwd, g, idx, shape, *args, **kw)
    buf, out = _guarded(shape, dtype, off)
    got = bwd(g, idx, shape, *args, out=out, **kw)
    assert got is out
    np.testing.assert_array_equal(out, want)
    n = out.size
    assert (buf[:off] == 7).all() and (buf[off + n:] == 7).all()


# nd, spatial size, kernel, stride, padding, dilation, ceil_mode
_GEOMS = [
    (2, (112, 112), 3, 2, 1, 1, False),
    (2, (40, 37), 2, 2, 0, 1, False),
    (2, (33, 29), 3, 2, 1, 1, True),
    (2, (30, 31), 3, 1, 1, 1, False),      # heavy overlap: bound lags a row
    (2, (31, 40), (2, 3), (3, 2), (1, 1), 1, True),  # gaps between windows
    (2, (25, 26), 3, 2, 1, 2, False),      # dilation
    (2, (17, 300), (4, 2), (1, 2), (2, 1), 1, False),
    (2, (1, 200), (1, 3), (1, 2), 0, 1, False),
    (2, (9, 1), (3, 1), (2, 1), (1, 0), 1, True),
    (1, (5000,), 2, 2, 0, 1, False),       # one output row cut into parts
    (1, (4099,), 5, 3, 2, 1, True),
    (1, (3000,), 3, 1, 1, 2, False),
    (3, (9, 14, 15), 2, 2, 0, 1, False),
    (3, (8, 13, 12), 3, 2, 1, 1, True),    # depth padding: bound from next slice
    (3, (7, 9, 20), (3, 1, 2), (1, 1, 2), (1, 0, 0), 1, False),
    (3, (5, 6, 7), (2, 3, 3), (2, 1, 2), (1, 1, 1), (2, 1, 1), False),
]


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("geom", _GEOMS, ids=[str(g) for g in _GEOMS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_indices(threads, geom, dtype):
    """Ties (several outputs share an argmax and accumulate), NaN, and out at
    three element offsets from a line boundary."""
    nd, size, k, s, p, d, ceil = geom
    rng = np.random.default_rng(zlib.crc32(repr((geom, np.dtype(dtype).str)).encode()))
    shape = (2, 3) + size if np.prod(size) < 20000 else (1, 2) + size
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::29] = 2.5
    x.flat[::61] = np.nan
    fwd = getattr(cypool, f"max_pool{nd}d")
    bwd = getattr(cypool, f"max_pool{nd}d_backward")
    with cypool.backend("reference"):
        _, idx = fwd(x, k, s, p, d, ceil, return_indices=True)
    g = rng.standard_normal(idx.shape).astype(dtype)
    for off in (0, 1, 64 // np.dtype(dtype).itemsize - 1):
        _check(bwd, g, idx, shape, (k, s, p, d, ceil), {}, dtype, off)


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("geom", _GEOMS[:9:2] + _GEOMS[12:], ids=str)
def test_fresh_results(threads, geom):
    """Fresh results stream as well (no ``out=``)."""
    nd, size, k, s, p, d, ceil = geom
    rng = np.random.default_rng(zlib.crc32(repr(geom).encode()))
    shape = (2, 3) + size
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::13] = -1.0
    fwd = getattr(cypool, f"max_pool{nd}d")
    bwd = getattr(cypool, f"max_pool{nd}d_backward")
    _, idx = fwd(x, k, s, p, d, ceil, return_indices=True)
    g = rng.standard_normal(idx.shape).astype(np.float32)
    np.testing.assert_array_equal(bwd(g, idx, shape, k, s, p, d, ceil),
                                  _ref(bwd, g, idx, shape, k, s, p, d, ceil))


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spread", ["anywhere", "earlier", "later"])
def test_indices_outside_their_windows(threads, dtype, spread):
    """Indices not from the forward: "earlier" ones point into rows that are
    already written when their output comes (the destination is updated in
    place), "later" ones far ahead; many outputs share each target, with
    values whose sum depends on the order of addition."""
    rng = np.random.default_rng({"anywhere": 1, "earlier": 2, "later": 3}[spread])
    shape = (2, 3, 40, 44)
    P = 40 * 44
    oshape = (2, 3, 20, 22)
    if spread == "anywhere":
        idx = rng.integers(0, P, oshape)
    else:
        start = (np.arange(20) * 2 * 44)[:, None]        # each window's first tap
        span = rng.integers(1, 400, oshape)
        idx = start - span if spread == "earlier" else start + 3 * 44 + span
        idx = np.clip(idx, 0, P - 1)
    idx = idx.astype(np.int64)
    idx.flat[::17] = idx.flat[0]        # a heavily shared target
    idx.flat[5::23] = -1                # a dilation hole: skipped
    g = (rng.standard_normal(oshape) * 10.0 ** rng.integers(-8, 9, oshape)).astype(dtype)
    for off in (0, 3):
        _check(cypool.max_pool2d_backward, g, idx, shape, (2, 2), {}, dtype, off)


@pytest.mark.usefixtures("stream_everything")
def test_bad_index_reported_nothing_written_outside(threads):
    rng = np.random.default_rng(9)
    shape = (2, 2, 30, 30)
    x = rng.standard_normal(shape).astype(np.float32)
    _, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = rng.standard_normal(idx.shape).astype(np.float32)
    for bad in (900, -2, 2**40):
        i = idx.copy()
        i[1, 0, 7, 3] = bad
        buf, out = _guarded(shape, np.float32, 5)
        with pytest.raises(ValueError, match="indices must lie in"):
            cypool.max_pool2d_backward(g, i, shape, 3, 2, 1, out=out)
        assert (buf[:5] == 7).all() and (buf[5 + out.size:] == 7).all()


@pytest.mark.usefixtures("stream_everything")
def test_hint_distance_does_not_change_results(threads):
    """The hints reach past the end of the last plane's indices; any
    distance gives the same result."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(11)
    shape = (3, 2, 50, 64)
    x = rng.standard_normal(shape).astype(np.float32)
    _, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = rng.standard_normal(idx.shape).astype(np.float32)
    want = _ref(cypool.max_pool2d_backward, g, idx, shape, 3, 2, 1)
    old = _kernels._bwd_stream_tuning()
    try:
        for pf in (0, 1, 7, 4096, 1 << 20):
            _kernels._bwd_stream_tuning(pf=pf)
            out = np.full(shape, 5.0, np.float32)
            cypool.max_pool2d_backward(g, idx, shape, 3, 2, 1, out=out)
            np.testing.assert_array_equal(out, want)
    finally:
        _kernels._bwd_stream_tuning(*old)


@st.composite
def _cases(draw):
    nd = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, {1: 3000, 2: 40, 3: 12}[nd])) for _ in range(nd))
    k = tuple(draw(st.integers(1, min(4, sz))) for sz in size)
    s = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    ceil = draw(st.booleans())
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**32 - 1))
    off = draw(st.integers(0, 64 // np.dtype(dtype).itemsize - 1))
    scramble = draw(st.sampled_from([0.0, 0.05, 1.0]))
    return nd, size, k, s, p, ceil, dtype, seed, off, scramble


@pytest.mark.usefixtures("stream_everything")
@settings(max_examples=150, deadline=None)
@given(_cases())
def test_random_geometries(case):
    """Random geometries; a fraction of the indices (none, some, all) moved
    anywhere in the plane."""
    nd, size, k, s, p, ceil, dtype, seed, off, scramble = case
    rng = np.random.default_rng(seed)
    shape = (2, 2) + size
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = 1.5
    fwd = getattr(cypool, f"max_pool{nd}d")
    bwd = getattr(cypool, f"max_pool{nd}d_backward")
    with cypool.backend("reference"):
        _, idx = fwd(x, k, s, p, 1, ceil, return_indices=True)
    if idx.size == 0:
        return
    moved = rng.random(idx.shape) < scramble
    idx = np.where(moved, rng.integers(0, int(np.prod(size)), idx.shape), idx)
    g = rng.standard_normal(idx.shape).astype(dtype)
    _check(bwd, g, idx, shape, (k, s, p, 1, ceil), {}, dtype, off)


# ------------------------------------------------------------- unpooling

_UNPOOL = [  # nd, pooled spatial size, kernel, stride, padding, output_size delta
    (2, (56, 56), 2, 2, 0, 0),
    (2, (17, 23), 3, 2, 1, 1),
    (2, (9, 30), (2, 3), (3, 2), (1, 1), -1),
    (2, (20, 1), 3, 1, 1, 0),
    (2, (6, 7), 2, 3, 5, 0),          # padding beyond the kernel
    (3, (4, 6, 7), 2, 2, 0, 0),
    (3, (5, 4, 9), 3, 2, 1, 1),       # depth padding: bound from next slice
    (1, (500,), 2, 2, 0, 0),          # one row: not streamed
]


def _unpool_case(case, dtype, rng):
    nd, psize, k, s, p, delta = case
    shape = (2, 3) + psize
    kk, ss, pp = (np.broadcast_to(v, nd) for v in (k, s, p))
    size = tuple(int((i - 1) * a - 2 * b + c + delta)
                 for i, a, b, c in zip(psize, ss, pp, kk))
    P = int(np.prod(size))
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    # indices inside each window where the geometry allows, else anywhere
    idx = np.empty(shape, np.int64)
    grids = np.meshgrid(*[np.arange(n) for n in psize], indexing="ij")
    flat = np.zeros(psize, np.int64)
    for d in range(nd):
        start = grids[d] * ss[d] - pp[d] + rng.integers(0, kk[d], psize)
        start = np.clip(start, 0, size[d] - 1)
        flat = flat * size[d] + start
    idx[...] = flat
    return x, idx, size, P


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("case", _UNPOOL, ids=str)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
def test_unpool_into_out(threads, case, dtype):
    nd, _, k, s, p, _ = case
    rng = np.random.default_rng(zlib.crc32(repr((case, np.dtype(dtype).str)).encode()))
    x, idx, size, P = _unpool_case(case, dtype, rng)
    idx.flat[::11] = idx.flat[0]        # repeated: the last in C order wins
    idx.flat[4::19] = -1
    f = getattr(cypool, f"max_unpool{nd}d")
    want = _ref(f, x, idx, k, s, p, output_size=size)
    for off in (0, 1, 5):
        buf, out = _guarded(x.shape[:2] + size, dtype, off)
        got = f(x, idx, k, s, p, output_size=size, out=out)
        assert got is out
        np.testing.assert_array_equal(out, want)
        assert (buf[:off] == 7).all() and (buf[off + out.size:] == 7).all()


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("spread", ["anywhere", "earlier", "later"])
def test_unpool_indices_outside_windows(threads, spread):
    rng = np.random.default_rng({"anywhere": 4, "earlier": 5, "later": 6}[spread])
    x = rng.standard_normal((2, 3, 20, 22)).astype(np.float32)
    P = 40 * 44
    if spread == "anywhere":
        idx = rng.integers(0, P, x.shape)
    else:
        start = (np.arange(20) * 2 * 44)[:, None]
        span = rng.integers(1, 400, x.shape)
        idx = np.clip(start - span if spread == "earlier" else start + 3 * 44 + span,
                      0, P - 1)
    idx = idx.astype(np.int64)
    want = _ref(cypool.max_unpool2d, x, idx, 2, 2)
    buf, out = _guarded((2, 3, 40, 44), np.float32, 3)
    cypool.max_unpool2d(x, idx, 2, 2, out=out)
    np.testing.assert_array_equal(out, want)
    assert (buf[:3] == 7).all() and (buf[3 + out.size:] == 7).all()


@pytest.mark.usefixtures("stream_everything")
def test_unpool_bad_index(threads):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 2, 10, 12)).astype(np.float32)
    _, idx = cypool.max_pool2d(np.zeros((2, 2, 20, 24), np.float32), 2, 2,
                               return_indices=True)
    idx = idx.copy()
    idx[1, 1, 9, 11] = 20 * 24
    buf, out = _guarded((2, 2, 20, 24), np.float32, 2)
    with pytest.raises(ValueError, match="indices must lie in"):
        cypool.max_unpool2d(x, idx, 2, 2, out=out)
    assert (out == 0).all()         # never a partial scatter left behind
    assert (buf[:2] == 7).all() and (buf[2 + out.size:] == 7).all()


def test_row_bounds_against_windows():
    """Every bound is at most the first tap of every later row's windows,
    and the last is the volume's size (brute force over small geometries,
    large paddings and strides included)."""
    from cypool._compiled import row_bounds
    rng = np.random.default_rng(13)
    for _ in range(300):
        pooled = tuple(int(v) for v in rng.integers(1, 6, 3))
        full = tuple(int(v) for v in rng.integers(1, 12, 3))
        stride = tuple(int(v) for v in rng.integers(1, 5, 3))
        pad = tuple(int(v) for v in rng.integers(0, 7, 3))
        b = row_bounds(pooled, full, stride, pad)
        D, H, W = full
        first = [max(0, min(d * stride[0] - pad[0], D - 1)) * H * W
                 + max(0, min(h * stride[1] - pad[1], H)) * W
                 for d in range(pooled[0]) for h in range(pooled[1])]
        assert b.dtype == np.int64 and b.shape == (pooled[0] * pooled[1],)
        assert b[-1] == D * H * W
        for r in range(len(first) - 1):
            assert 0 <= b[r] <= min(first[r + 1:])
    assert row_bounds((2, 2, 1), (4, 4, 4), (2**31, 1, 1), (0, 0, 0)) is None


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("limit", [0, 1 << 20, 4 << 20])
def test_large_planes_into_out(threads, limit):
    """Planes over 256 KiB are streamed while built into a caller's out= up
    to ``_bwd_stream_tuning()[1]`` bytes (fresh results only up to 256 KiB); above
    the limit, and into fresh memory, they are scattered directly."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(21)
    shape = (1, 2, 9, 70, 66)           # float64 planes of 333 KiB
    x = rng.standard_normal(shape)
    x.flat[::31] = 0.25
    _, idx = cypool.max_pool3d(x, 3, 2, 1, return_indices=True)
    g = rng.standard_normal(idx.shape)
    want = _ref(cypool.max_pool3d_backward, g, idx, shape, 3, 2, 1)
    old = _kernels._bwd_stream_tuning(plane_max=limit)
    try:
        buf, out = _guarded(shape, np.float64, 3)
        cypool.max_pool3d_backward(g, idx, shape, 3, 2, 1, out=out)
        np.testing.assert_array_equal(out, want)
        assert (buf[:3] == 7).all() and (buf[3 + out.size:] == 7).all()
        np.testing.assert_array_equal(cypool.max_pool3d_backward(g, idx, shape, 3, 2, 1),
                                      want)
    finally:
        _kernels._bwd_stream_tuning(*old)
