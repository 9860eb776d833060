"""Finite-difference checks of the backward passes (float64).

Average pooling is linear, so central differences match its gradient to
rounding.  Max pooling is piecewise linear; on inputs with well separated,
distinct values a small step never changes the argmax, so the same check
applies.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from cases import cases


def numeric_grad(f, x, g, eps=1e-6):
    """d/dx of sum(f(x) * g), by central differences."""
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = np.sum(f(x) * g)
        flat[i] = old - eps
        down = np.sum(f(x) * g)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


BACKENDS = cypool.available_backends()


def one_plane(case):
    """The first (n, c) plane of a case, unbatched with one channel."""
    lead = case.x.ndim - case.nd
    return np.array(case.x[(0,) * lead][None], dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30)
@given(cases(dtypes=(np.float64,), dilation=False, special=False, layouts=("C",),
             allow_empty=False, max_nd=2),
       st.booleans(), st.sampled_from([None, None, 2, -3]), st.integers(0, 2**32 - 1))
def test_avg_pool_backward_finite_differences(backend, case, include_pad, divisor, seed):
    with cypool.backend(backend):
        _check_avg(case, include_pad, divisor, seed)


def _check_avg(case, include_pad, divisor, seed):
    x = one_plane(case)
    f = getattr(cypool, f"avg_pool{case.nd}d")
    b = getattr(cypool, f"avg_pool{case.nd}d_backward")

    def fwd(a):
        return f(a, *case.avg_args(), include_pad, divisor)

    g = np.random.default_rng(seed).standard_normal(fwd(x).shape)
    analytic = b(g, x.shape, *case.avg_args(), include_pad, divisor)
    np.testing.assert_allclose(analytic, numeric_grad(fwd, x, g), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=30)
@given(cases(dtypes=(np.float64,), special=False, layouts=("C",), allow_empty=False,
             max_nd=2),
       st.integers(0, 2**32 - 1))
def test_max_pool_backward_finite_differences(backend, case, seed):
    with cypool.backend(backend):
        _check_max(case, seed)


def _check_max(case, seed):
    rng = np.random.default_rng(seed)
    # distinct values at least 1/size apart: a 1e-6 step never moves an argmax
    shape = one_plane(case).shape
    size = int(np.prod(shape))
    x = (rng.permutation(size) / size).astype(np.float64).reshape(shape)
    f = getattr(cypool, f"max_pool{case.nd}d")
    b = getattr(cypool, f"max_pool{case.nd}d_backward")
    out, idx = f(x, *case.max_args(), return_indices=True)
    if (idx == -1).any():  # dilation hole: -inf outputs have no gradient
        return

    def fwd(a):
        return f(a, *case.max_args())

    g = rng.standard_normal(out.shape)
    analytic = b(g, idx, x.shape, *case.max_args())
    np.testing.assert_allclose(analytic, numeric_grad(fwd, x, g), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_3d_backward_finite_differences(backend):
    rng = np.random.default_rng(3)
    x = (rng.permutation(5 * 6 * 4) / 120.0).reshape(1, 5, 6, 4)
    with cypool.backend(backend):
        args = ((3, 2, 2), (2, 2, 1), (1, 1, 0))
        out, idx = cypool.max_pool3d(x, *args, ceil_mode=True, return_indices=True)
        g = rng.standard_normal(out.shape)
        np.testing.assert_allclose(
            cypool.max_pool3d_backward(g, idx, x.shape, *args, ceil_mode=True),
            numeric_grad(lambda a: cypool.max_pool3d(a, *args, ceil_mode=True), x, g),
            rtol=1e-6, atol=1e-7)
        g = rng.standard_normal(cypool.avg_pool3d(x, *args, ceil_mode=True).shape)
        np.testing.assert_allclose(
            cypool.avg_pool3d_backward(g, x.shape, *args, ceil_mode=True,
                                       count_include_pad=False),
            numeric_grad(lambda a: cypool.avg_pool3d(a, *args, ceil_mode=True,
                                                     count_include_pad=False), x, g),
            rtol=1e-6, atol=1e-7)
