"""Work split of rows longer than one chunk (2048 outputs): such rows are cut
into chunks, and the rows into bands of a few rows (``_chunk_band``) so that
a band's next chunk reads rows still in the caches.  The split must not
change any result: max (with indices), average and integer average against
the reference, for band heights from 1 row to the whole plane, planar and
channels-last, at 1 and 2 threads."""

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled


@pytest.fixture(params=[1, 3, 8, 1 << 30])
def band(request):
    from cypool._compiled import _kernels
    old = _kernels._chunk_band(request.param)
    yield request.param
    _kernels._chunk_band(old)


def _ref(fn, *args, **kw):
    with cypool.backend("reference"):
        return fn(*args, **kw)


@pytest.mark.parametrize("shape", [(1, 1, 21, 4200), (2, 1, 9, 4500), (1, 1, 7, 8193)])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_long_rows(threads, band, shape, k, s, p):
    rng = np.random.default_rng(sum(shape) + k + s + p)
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::97] = np.nan
    got = cypool.max_pool2d(x, k, s, p, return_indices=True)
    want = _ref(cypool.max_pool2d, x, k, s, p, return_indices=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(cypool.avg_pool2d(x, k, s, p),
                               _ref(cypool.avg_pool2d, x, k, s, p), rtol=2e-6)
    xi = rng.integers(-500, 500, shape).astype(np.int16)
    np.testing.assert_array_equal(cypool.avg_pool2d(xi, k, s, p),
                                  _ref(cypool.avg_pool2d, xi, k, s, p))


@pytest.mark.parametrize("shape", [(1, 6, 4400, 3), (1, 5, 4099, 2)])
def test_long_rows_channels_last(threads, band, shape):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, shape).astype(np.uint8)
    np.testing.assert_array_equal(cypool.max_pool2d(x, 2, 2, channels_last=True),
                                  _ref(cypool.max_pool2d, x, 2, 2, channels_last=True))
    np.testing.assert_array_equal(cypool.avg_pool2d(x, 2, 2, channels_last=True),
                                  _ref(cypool.avg_pool2d, x, 2, 2, channels_last=True))


def test_long_rows_1d(threads, band):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 9001)).astype(np.float64)
    got = cypool.max_pool1d(x, 3, 2, 1, return_indices=True)
    want = _ref(cypool.max_pool1d, x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
