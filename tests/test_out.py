"""``out=``: results written into preallocated arrays, with the rules checked."""

import numpy as np
import pytest

import cypool

BACKENDS = cypool.available_backends()


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    with cypool.backend(request.param):
        yield request.param


def _x(shape=(2, 3, 9, 8), dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_out_forward_and_backward(backend_name, channels_last, batched):
    x = _x()
    if channels_last:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    if not batched:
        x = x[0]
    kw = dict(channels_last=channels_last)
    y, idx = cypool.max_pool2d(x, 3, 2, 1, return_indices=True, **kw)
    out = np.full_like(y, 7)
    assert cypool.max_pool2d(x, 3, 2, 1, out=out, **kw) is out
    np.testing.assert_array_equal(out, y)
    vals, ids = np.empty_like(y), np.empty_like(idx)
    r = cypool.max_pool2d(x, 3, 2, 1, return_indices=True, out=(vals, ids), **kw)
    assert r[0] is vals and r[1] is ids
    np.testing.assert_array_equal(ids, idx)
    r = cypool.max_pool2d(x, 3, 2, 1, return_indices=True, out=vals, **kw)
    assert r[0] is vals
    np.testing.assert_array_equal(r[1], idx)
    a = cypool.avg_pool2d(x, 2, **kw)
    out = np.empty_like(a)
    assert cypool.avg_pool2d(x, 2, out=out, **kw) is out
    np.testing.assert_array_equal(out, a)
    g = np.ones_like(y)
    gi = cypool.max_pool2d_backward(g, idx, x.shape, 3, 2, 1, **kw)
    out = np.full_like(x, np.nan)
    assert cypool.max_pool2d_backward(g, idx, x.shape, 3, 2, 1, out=out, **kw) is out
    np.testing.assert_array_equal(out, gi)
    ga = np.ones_like(a)
    gi = cypool.avg_pool2d_backward(ga, x.shape, 2, **kw)
    out = np.full_like(x, np.nan)
    assert cypool.avg_pool2d_backward(ga, x.shape, 2, out=out, **kw) is out
    np.testing.assert_array_equal(out, gi)


def test_out_rules(backend_name):
    x = _x()
    y = cypool.max_pool2d(x, 2)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        cypool.max_pool2d(x, 2, out=np.empty(y.shape, np.float64))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 3, 4, 4\)"):
        cypool.max_pool2d(x, 2, out=np.empty((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        cypool.max_pool2d(x, 2, out=np.empty((2, 3, 4, 8), np.float32)[..., ::2])
    ro = np.empty(y.shape, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        cypool.max_pool2d(x, 2, out=ro)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        cypool.avg_pool2d(x, 2, out=[0.0] * 96)
    with pytest.raises(TypeError, match="pair only"):
        cypool.max_pool2d(x, 2, out=(np.empty_like(y), np.empty(y.shape, np.int64)))
    with pytest.raises(ValueError, match="pair"):
        cypool.max_pool2d(x, 2, return_indices=True, out=(y,))
    with pytest.raises(TypeError, match="int64"):
        cypool.max_pool2d(x, 2, return_indices=True,
                          out=(np.empty_like(y), np.empty(y.shape, np.int32)))


def test_out_must_not_overlap_inputs(backend_name):
    buf = _x((2, 3, 8, 8))
    with pytest.raises(ValueError, match="overlap"):
        cypool.max_pool2d(buf, (1, 1), out=buf)  # same shape, same memory
    with pytest.raises(ValueError, match="overlap"):
        cypool.avg_pool2d(buf, 2, out=buf.reshape(-1)[:96].reshape(2, 3, 4, 4))
    y, idx = cypool.max_pool2d(buf, 2, return_indices=True)
    raw = np.empty(2 * idx.nbytes, np.uint8)
    vals = raw[:y.nbytes].view(np.float32).reshape(y.shape)
    ids = raw[y.nbytes // 2:y.nbytes // 2 + idx.nbytes].view(np.int64).reshape(idx.shape)
    with pytest.raises(ValueError, match="overlap"):
        cypool.max_pool2d(buf, 2, return_indices=True, out=(vals, ids))
    g = np.ones_like(y)
    with pytest.raises(ValueError, match="overlap"):
        cypool.max_pool2d_backward(g, idx, (2, 3, 4, 4), 1, out=g)
