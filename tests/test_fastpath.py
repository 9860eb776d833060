"""The validated-call cache of the forward functions (``_pooling._PLANS``)
and the kernels' reading of 3-d and 4-d arrays as 5-d.

A repeated call with plain arguments skips validation; these tests make sure
that such a call can never accept what the general path rejects, and that
its results equal the reference backend's."""

import numpy as np
import pytest

import cypool
from cypool import _pooling
from conftest import requires_compiled

pytestmark = requires_compiled


@pytest.fixture(autouse=True)
def _compiled_backend():
    with cypool.backend("compiled"):
        yield


def _ref(fn, *args, **kw):
    with cypool.backend("reference"):
        return fn(*args, **kw)


@pytest.mark.parametrize("fn", [cypool.max_pool2d, cypool.avg_pool2d])
def test_bool_never_stands_in_for_an_int(fn):
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    fn(x, 1)                 # caches the plan for kernel_size=1
    fn(x, (1, 1))
    with pytest.raises(TypeError, match="kernel_size"):
        fn(x, True)
    with pytest.raises(TypeError, match="kernel_size"):
        fn(x, (True, 1))
    fn(x, 2, 2, 0)
    with pytest.raises(TypeError):
        fn(x, 2, 2, False)


def test_ceil_mode_and_flags_still_validated():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    cypool.max_pool2d(x, 3, 2, ceil_mode=True)
    with pytest.raises(TypeError, match="ceil_mode"):
        cypool.max_pool2d(x, 3, 2, ceil_mode=1)
    cypool.max_pool2d(x, 3, 2, return_indices=True)
    with pytest.raises(TypeError, match="return_indices"):
        cypool.max_pool2d(x, 3, 2, return_indices=1)
    cypool.avg_pool2d(x, 3, 2, count_include_pad=False)
    with pytest.raises(TypeError, match="count_include_pad"):
        cypool.avg_pool2d(x, 3, 2, count_include_pad=0)
    cypool.avg_pool2d(x, 2, divisor_override=3)
    with pytest.raises(ValueError, match="divisor_override"):
        cypool.avg_pool2d(x, 2, divisor_override=0)


def test_rejections_are_not_cached():
    x = np.zeros((1, 1, 4, 4), np.float32)
    for _ in range(2):
        with pytest.raises(ValueError, match="padding"):
            cypool.max_pool2d(x, 2, 1, 2)
    # lists (unhashable) take the general path
    assert cypool.max_pool2d(x, [2, 2]).shape == (1, 1, 2, 2)
    with pytest.raises(TypeError, match="kernel_size"):
        cypool.max_pool2d(x, [2.0, 2])


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int64])
def test_repeated_calls_match_reference(nd, dtype):
    rng = np.random.default_rng(nd)
    mx = getattr(cypool, f"max_pool{nd}d")
    av = getattr(cypool, f"avg_pool{nd}d")
    for shape_tail in [(5,) * nd, (7,) * nd, (4,) * nd]:
        x = rng.integers(0, 50, (2, 3) + shape_tail).astype(dtype)
        for args in [(2,), (3, 2, 1), (3, 1, "same"), (2, 1, "valid")]:
            for _ in range(2):           # the second call is served from the cache
                np.testing.assert_array_equal(mx(x, *args), _ref(mx, x, *args))
                np.testing.assert_array_equal(av(x, *args), _ref(av, x, *args))
                got = mx(x, *args, return_indices=True)
                want = _ref(mx, x, *args, return_indices=True)
                assert isinstance(got, tuple) and len(got) == 2
                assert got[1].dtype == np.int64
                np.testing.assert_array_equal(got[0], want[0])
                np.testing.assert_array_equal(got[1], want[1])
        # unbatched input and views never take the cached plan's shape wrongly
        np.testing.assert_array_equal(mx(x[0], 2), _ref(mx, x[0], 2))
        np.testing.assert_array_equal(mx(x[:, :, ::-1], 2), _ref(mx, x[:, :, ::-1], 2))


def test_byte_swapped_and_zero_size():
    x = np.random.default_rng(1).random((2, 3, 6, 6))
    xs = x.astype(">f8")
    for _ in range(2):
        np.testing.assert_array_equal(cypool.max_pool2d(xs, 2), _ref(cypool.max_pool2d, x, 2))
    e = np.zeros((0, 3, 6, 6), np.float32)
    for _ in range(2):
        assert cypool.max_pool2d(e, 2).shape == (0, 3, 3, 3)
        assert cypool.avg_pool2d(e, 2).shape == (0, 3, 3, 3)


def test_cache_is_bounded():
    x = np.random.default_rng(2).random((1, 1, 9, 9)).astype(np.float32)
    for k in range(1, 6):
        for s in range(1, 300):
            cypool.max_pool2d(x, k, s)
    assert len(_pooling._PLANS) <= _pooling._PLAN_LIMIT
    np.testing.assert_array_equal(cypool.max_pool2d(x, 3, 2), _ref(cypool.max_pool2d, x, 3, 2))


def test_kernel_rank_checks():
    """The kernels read 3-, 4- and 5-d arrays; other ranks are refused."""
    from cypool import _compiled
    k = _compiled._kernels
    x4 = np.zeros((1, 1, 4, 4), np.float32)
    o4 = np.empty((1, 1, 2, 2), np.float32)
    k.max_pool_forward(x4, o4, None, (1, 2, 2), (1, 2, 2), (1, 1, 1), (0, 0, 0), 1)
    for bad_x, bad_o in [(np.zeros((4, 4), np.float32), o4),
                         (x4, np.empty((2, 2), np.float32)),
                         (np.zeros((1,) * 6, np.float32), o4),
                         (np.zeros(4, np.float32), o4)]:
        with pytest.raises(ValueError):
            k.max_pool_forward(bad_x, bad_o, None, (1, 2, 2), (1, 2, 2), (1, 1, 1),
                               (0, 0, 0), 1)
