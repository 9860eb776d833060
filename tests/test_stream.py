"""Streaming output of the backward kernels: into a caller's ``out=`` of
at least ``_stream_min()`` bytes (16 MiB by default), output is built in a
per-thread buffer and written with non-temporal stores.

- Max: each plane of up to 256 KiB is zeroed and accumulated in the buffer,
  then copied out whole.
- Average: each planar input row (or chunk of one) is built in the buffer
  and appended to the thread's stream, which holds back a row's last partial
  64-byte line until the next row completes it (``cypool_stream_put``); a
  row that does not continue the previous one flushes the held line first.

These tests lower the threshold to 0 so that every such call streams, and
compare with the reference backend at 1 and 2 threads: planes and rows
adjacent in memory, at every 4-byte offset from a line boundary, with gaps
between them (each copied to its own place, nothing written outside),
planes too large for the buffer (stored directly), channels-last
gradients (never streamed), and fresh results (never streamed)."""

import subprocess
import sys
import zlib

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled


def _ref(fn, *args, **kw):
    with cypool.backend("reference"):
        return fn(*args, **kw)


def test_default_threshold():
    code = ("from cypool._compiled import _kernels; import platform; "
            "print(_kernels._stream_min(), platform.machine())")
    got, machine = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True, check=True).stdout.split()
    if machine.lower() in ("x86_64", "amd64", "i686", "x86"):
        assert int(got) == 16 << 20
    else:
        assert int(got) in (0, 16 << 20)


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 3, 17, 23), (1, 2, 300, 300),
                                   (1, 1, 200, 400), (3, 4, 3, 3)])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_backward_into_out(threads, shape, k, s, p, dtype):
    """(1, 1, 200, 400) float64 planes are 640 KB, more than a streamed plane
    may take: that call stores directly."""
    rng = np.random.default_rng(abs(hash((shape, k, s, p))) % 2**32)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::37] = 0.5        # ties: several outputs share an argmax
    v, idx = cypool.max_pool2d(x, k, s, p, return_indices=True)
    g = rng.standard_normal(v.shape).astype(dtype)
    out = np.full(x.shape, 99, dtype)
    got = cypool.max_pool2d_backward(g, idx, x.shape, k, s, p, out=out)
    assert got is out
    np.testing.assert_allclose(out, _ref(cypool.max_pool2d_backward, g, idx, x.shape,
                                         k, s, p), rtol=1e-6, atol=1e-6)


@pytest.mark.usefixtures("stream_everything")
def test_max_backward_fresh_and_channels_last(threads):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 20, 22)).astype(np.float32)
    v, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True)
    g = rng.standard_normal(v.shape).astype(np.float32)
    want = _ref(cypool.max_pool2d_backward, g, idx, x.shape, 3, 2, 1)
    np.testing.assert_allclose(cypool.max_pool2d_backward(g, idx, x.shape, 3, 2, 1), want)
    gl, il = np.moveaxis(g, 1, -1).copy(), np.moveaxis(idx, 1, -1).copy()
    out = np.full((2, 20, 22, 3), 99, np.float32)
    cypool.max_pool2d_backward(gl, il, (2, 20, 22, 3), 3, 2, 1, channels_last=True,
                               out=out)
    np.testing.assert_allclose(np.moveaxis(out, -1, 1), want)


@pytest.mark.usefixtures("stream_everything")
def test_kernel_into_planes_with_gaps(threads):
    """The public function takes a C-contiguous ``out`` only; the kernel takes
    any grad_in whose planes have uniform strides: each plane's copy must
    land on that plane only."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 20, 20)).astype(np.float32)
    v, idx = cypool.max_pool2d(x, 2, 2, return_indices=True)
    g = rng.standard_normal(v.shape).astype(np.float32)
    big = np.full((2, 5, 1, 20, 20), 3.0, np.float32)
    gin = big[:, 1:4]
    assert _kernels.max_pool_backward(g[:, :, None], idx[:, :, None], gin, threads,
                                      stream=True)
    np.testing.assert_allclose(gin[:, :, 0],
                               _ref(cypool.max_pool2d_backward, g, idx, x.shape, 2, 2))
    assert (big[:, 0] == 3).all() and (big[:, 4] == 3).all()
    # a bad index is still reported, and nothing is written out of bounds
    bad = idx.copy()
    bad[1, 2, 3, 4] = 400
    assert not _kernels.max_pool_backward(g[:, :, None], bad[:, :, None], gin, threads,
                                          stream=True)
    assert (big[:, 0] == 3).all() and (big[:, 4] == 3).all()


_AVG = [  # nd, kernel, stride, padding, ceil_mode, count_include_pad
    (2, 2, 2, 0, False, True), (2, 3, 2, 1, False, True), (2, 3, 3, 1, True, False),
    (2, (1, 2), (1, 2), 0, False, True), (1, 2, 2, 0, False, True),
    (1, 5, 3, 2, True, False), (3, 2, 2, 0, False, True), (3, 3, 2, 1, True, False)]


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("case", _AVG, ids=[str(c) for c in _AVG])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_backward_into_out(threads, case, dtype):
    """Row widths of 1 to 300 elements, and ``out`` placed at every 4-byte
    offset from a 64-byte line inside a larger buffer whose other elements
    must stay as they were."""
    nd, k, s, p, ceil, incl = case
    rng = np.random.default_rng(zlib.crc32(repr((case, np.dtype(dtype).str)).encode()))
    fwd = getattr(cypool, f"avg_pool{nd}d")
    bwd = getattr(cypool, f"avg_pool{nd}d_backward")
    # the long rows are cut into chunks where there are few rows per thread
    sizes = [(1,), (7,), (16,), (17,), (23,), (300,), (400001,)] if nd == 1 else \
        [(5, 1), (6, 7), (4, 16), (9, 17), (3, 300), (2, 200001)] if nd == 2 else \
        [(3, 4, 5), (2, 6, 17)]
    overlap = any(kk > ss for kk, ss in zip(np.broadcast_to(k, nd),
                                           np.broadcast_to(s, nd)))
    for i, sp in enumerate(sizes):
        shape = ((1, 1) if sp[-1] > 10000 else (2, 3)) + sp
        kw = dict(ceil_mode=ceil, count_include_pad=incl)
        try:
            with cypool.backend("reference"):
                oshape = fwd(np.zeros(shape, dtype), k, s, p, **kw).shape
        except ValueError:
            continue                     # kernel larger than the padded input
        g = rng.standard_normal(oshape).astype(dtype)
        want = _ref(bwd, g, shape, k, s, p, **kw)
        n = int(np.prod(shape))
        off = (i * 4) % 64 // np.dtype(dtype).itemsize + 3
        buf = np.full(n + 64, 7.0, dtype)
        out = buf[off:off + n].reshape(shape)
        got = bwd(g, shape, k, s, p, out=out, **kw)
        assert got is out
        if overlap:   # the backends add overlapping windows in different orders
            np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-7)
        else:
            np.testing.assert_array_equal(out, want)
        assert (buf[:off] == 7).all() and (buf[off + n:] == 7).all()


@pytest.mark.usefixtures("stream_everything")
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1)])
def test_avg_kernel_rows_with_gaps(threads, k, s, p):
    """Rows that are not adjacent (a grad_in view with gaps after each row
    and each plane): every row's held line is flushed to its own place."""
    from cypool._compiled import _kernels
    rng = np.random.default_rng(8)
    H, W = 10, 21
    x = np.zeros((2, 3, H, W), np.float32)
    g = rng.standard_normal(cypool.avg_pool2d(x, k, s, p).shape).astype(np.float32)
    big = np.full((2, 5, 1, H, W + 3), 3.0, np.float32)
    gin = big[:, 1:4, :, :, :W]
    _kernels.avg_pool_backward(g[:, :, None], gin, (1, k, k), (1, s, s), (0, p, p),
                               (0, p, p), True, 0, threads, stream=True)
    want = _ref(cypool.avg_pool2d_backward, g, x.shape, k, s, p)
    if k == s:
        np.testing.assert_array_equal(gin[:, :, 0], want)
    else:
        np.testing.assert_allclose(gin[:, :, 0], want, rtol=1e-6, atol=1e-7)
    assert (big[:, 0] == 3).all() and (big[:, 4] == 3).all()
    assert (big[..., W:] == 3).all()


@pytest.mark.parametrize("stream", [True, False], ids=["out", "fresh"])
def test_avg_backward_rows_built_once(request, threads, stream):
    """Tiled windows (kernel == stride along W) with one covering output
    row: the input rows under one output row are one row, built once and
    copied (or, streamed, put again from the row buffer).  Rows under no
    window (the last input row of each depth slice here) change the row
    buffer in between, and the next depth slice's first rows, under the
    same output row, are built again.  Bit for bit the reference."""
    if stream:
        request.getfixturevalue("stream_everything")
    rng = np.random.default_rng(21)
    # one output row per slice (H 3 under 2-row windows, 5 under 3-row
    # ones): consecutive slices start under the same output row
    for shape, k, s in [((2, 3, 4, 3, 37), 2, 2), ((1, 2, 6, 5, 40), (3, 3, 2), (3, 3, 2)),
                        ((2, 2, 4, 9, 33), (2, 3, 3), (2, 3, 3))]:
        oshape = cypool.avg_pool3d(np.zeros(shape, np.float32), k, s).shape
        g = rng.standard_normal(oshape).astype(np.float32)
        want = _ref(cypool.avg_pool3d_backward, g, shape, k, s)
        out = np.full(shape, 5.0, np.float32) if stream else None
        got = cypool.avg_pool3d_backward(g, shape, k, s, out=out)
        np.testing.assert_array_equal(got, want)
    x = np.zeros((3, 4, 9, 58), np.float32)
    g = rng.standard_normal((3, 4, 4, 29)).astype(np.float32)
    out = np.full(x.shape, 5.0, np.float32) if stream else None
    np.testing.assert_array_equal(cypool.avg_pool2d_backward(g, x.shape, 2, out=out),
                                  _ref(cypool.avg_pool2d_backward, g, x.shape, 2))


def _avg_bwd_rows_order(g, H, W, kh, sh, ph, pw):
    """The planar row kernels' order for 3-wide windows at W stride 2: each
    input row from +0, covering output rows in order, taps kw = 0, 1, 2 in
    order, each adding its output's quotient (float32 arithmetic; windows
    inside the padded extent, so every divisor is 3 * kh)."""
    OH, OW = g.shape[-2:]
    out = np.zeros(g.shape[:-2] + (H, W), np.float32)
    q = (np.float32(0) + g / np.float32(3 * kh)).astype(np.float32)
    for ih in range(H):
        for oh in range(OH):
            if not oh * sh - ph <= ih <= oh * sh - ph + kh - 1:
                continue
            for kw in range(3):
                ow = np.arange(OW)
                col = 2 * ow + kw - pw
                ok = (col >= 0) & (col < W)
                out[..., ih, col[ok]] = out[..., ih, col[ok]] + q[..., oh, ow[ok]]
    return out


@pytest.mark.parametrize("shape,k,s,p", [((2, 3, 13, 37), 3, 2, 1), ((1, 2, 9, 300), 3, 2, 1),
                                         ((2, 2, 6, 41), (1, 3), (1, 2), (0, 1)),
                                         ((1, 3, 11, 64), 3, 2, 0)])
@pytest.mark.parametrize("into_out", [False, True])
def test_avg_backward_k3_w_stride2_order(threads, shape, k, s, p, into_out):
    """3-wide windows at W stride 2 add the quotients spread over the input
    columns in one pass: the same sums, in the same order, as the tap passes
    (checked bit for bit against that order computed here), NaN, infinities
    and signed zeros included; into fresh results and a streamed out=."""
    from cypool._compiled import _kernels
    kh, sh, ph = (k, s, p) if isinstance(k, int) else (k[0], s[0], p[0])
    pw = p if isinstance(p, int) else p[1]
    rng = np.random.default_rng(sum(shape))
    H, W = shape[2:]
    with cypool.backend("reference"):
        oshape = cypool.avg_pool2d(np.zeros(shape, np.float32), k, s, p).shape
    g = rng.standard_normal(oshape).astype(np.float32)
    g.flat[::23] = -0.0
    g.flat[5::41] = np.inf
    g.flat[9::53] = np.nan
    want = _avg_bwd_rows_order(g, H, W, kh, sh, ph, pw)
    old = _kernels._stream_min(0 if into_out else -1)
    try:
        with cypool.backend("compiled"):
            out = np.full(shape, 3.0, np.float32) if into_out else None
            got = cypool.avg_pool2d_backward(g, shape, k, s, p, out=out)
    finally:
        _kernels._stream_min(old)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
