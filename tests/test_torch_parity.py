"""The reference backend against PyTorch 2.13 (CPU), where torch is installed.

Same outputs, same indices, same gradients (through torch.autograd), over the
same random generator as the differential tests.  Cases where cypool
deliberately differs (SEMANTICS.md, "Decisions") are excluded explicitly:
the dilation hole (torch returns an out-of-plane index), C = 0 (torch
rejects it), avg_pool3d inputs smaller than the kernel (torch rejects them),
divisor_override in 1-d (torch has none).
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import cypool
from cases import FLOATS, INTS, cases, grad_like

torch = pytest.importorskip("torch")
F = torch.nn.functional

torch.set_num_threads(1)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def assert_bits_equal(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    if a.dtype.kind == "f":
        # NaN payloads may differ only if the inputs' did; compare NaN-aware
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        a, b = np.where(np.isnan(a), 0, a), np.where(np.isnan(b), 0, b)
    np.testing.assert_array_equal(a, b)


def _ref(fn, *args, **kwargs):
    with cypool.backend("reference"):
        return fn(*args, **kwargs)


# torch has no uint16 pooling kernels; cypool's uint16 is checked against the
# reference backend (and that against torch on the other dtypes)
TORCH_DTYPES = FLOATS + tuple(d for d in INTS if d != np.uint16)


@given(cases(dtypes=TORCH_DTYPES, allow_empty=True))
def test_max_pool_matches_torch(case):
    assume(case.x.ndim == case.nd + 1 or case.x.shape[1] > 0)
    assume(case.x.shape[-case.nd - 1] > 0)  # C = 0: torch rejects, cypool returns empty
    f = getattr(cypool, f"max_pool{case.nd}d")
    out, idx = _ref(f, case.x, *case.max_args(), return_indices=True)
    assume(not (idx == -1).any())  # dilation hole: a deliberate difference
    tf = getattr(F, f"max_pool{case.nd}d")
    tout, tidx = tf(t(case.x), case.kernel, case.stride, case.padding, case.dilation,
                    case.ceil_mode, return_indices=True)
    assert_bits_equal(out, tout.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())


@given(cases(dtypes=FLOATS), st.integers(0, 2**32 - 1))
def test_max_pool_gradient_matches_torch(case, seed):
    assume(case.x.shape[-case.nd - 1] > 0)
    f = getattr(cypool, f"max_pool{case.nd}d")
    b = getattr(cypool, f"max_pool{case.nd}d_backward")
    out, idx = _ref(f, case.x, *case.max_args(), return_indices=True)
    assume(not (idx == -1).any())
    g = grad_like(np.random.default_rng(seed), out.shape, out.dtype)
    grad = _ref(b, g, idx, case.x.shape, *case.max_args())
    xt = t(case.x).requires_grad_()
    tf = getattr(F, f"max_pool{case.nd}d")
    tf(xt, case.kernel, case.stride, case.padding, case.dilation, case.ceil_mode).backward(t(g))
    np.testing.assert_array_equal(grad, xt.grad.numpy())


def _torch_avg_ok(case, divisor):
    if case.x.shape[-case.nd - 1] == 0:
        return False
    if case.nd == 1 and divisor is not None:
        return False
    if case.nd == 3 and any(L < k for L, k in zip(case.x.shape[-3:], case.kernel)):
        return False
    return True


@given(cases(dtypes=FLOATS, dilation=False), st.booleans(),
       st.sampled_from([None, None, 1, 3, -2]), st.integers(0, 2**32 - 1))
def test_avg_pool_and_gradient_match_torch(case, include_pad, divisor, seed):
    assume(_torch_avg_ok(case, divisor))
    f = getattr(cypool, f"avg_pool{case.nd}d")
    b = getattr(cypool, f"avg_pool{case.nd}d_backward")
    out = _ref(f, case.x, *case.avg_args(), include_pad, divisor)
    g = grad_like(np.random.default_rng(seed), out.shape, out.dtype)
    grad = _ref(b, g, case.x.shape, *case.avg_args(), include_pad, divisor)
    xt = t(case.x).requires_grad_()
    tf = getattr(F, f"avg_pool{case.nd}d")
    extra = {} if case.nd == 1 else {"divisor_override": divisor}
    tout = tf(xt, case.kernel, case.stride, case.padding, case.ceil_mode, include_pad, **extra)
    tout.backward(t(g))
    rtol = 2e-6 if case.x.dtype == np.float32 else 1e-13
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=rtol, atol=0)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=rtol, atol=1e-6 if rtol > 1e-10 else 1e-13)



@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("out_size", [1, 2, 3])
def test_adaptive_avg_backward_zero_sign(nd, out_size):
    """The sign of zero in adaptive average gradients: PyTorch takes the
    mean for one bin per plane (a -0 output gradient stays -0) and adds into
    zeros otherwise (+0)."""
    rng = np.random.default_rng(nd * 10 + out_size)
    shape = (2, 3) + (5, 6, 4)[:nd]
    x = rng.standard_normal(shape).astype(np.float32)
    osz = (out_size,) * nd
    # zeros and the smallest subnormals: quotients that round to zeros of
    # either sign, and exact sums (the sign is the question here)
    go = rng.choice(np.array([-0.0, 0.0, -1e-45, -3e-45, 1e-45], np.float32),
                    (2, 3) + osz)
    with cypool.backend("reference"):
        got = getattr(cypool, f"adaptive_avg_pool{nd}d_backward")(go, shape)
    t = torch.tensor(x, requires_grad=True)
    getattr(F, f"adaptive_avg_pool{nd}d")(t, osz).backward(torch.tensor(go))
    np.testing.assert_array_equal(got.view(np.uint32), t.grad.numpy().view(np.uint32))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 3, 1), (3, 2, 1)])
def test_avg_backward_zero_sign(nd, kernel, stride, padding):
    """avg_pool's gradient adds each quotient into zeros: a -0 lands as +0,
    also where windows do not overlap."""
    rng = np.random.default_rng(nd * 100 + kernel * 10 + stride)
    shape = (2, 3) + (7, 6, 5)[:nd]
    x = rng.standard_normal(shape).astype(np.float32)
    with cypool.backend("reference"):
        oshape = getattr(cypool, f"avg_pool{nd}d")(x, kernel, stride, padding).shape
        go = rng.choice(np.array([-0.0, 0.0, -1e-45, -3e-45, 1e-45], np.float32),
                        oshape)
        got = getattr(cypool, f"avg_pool{nd}d_backward")(go, shape, kernel, stride,
                                                          padding)
    t = torch.tensor(x, requires_grad=True)
    getattr(F, f"avg_pool{nd}d")(t, kernel, stride, padding).backward(torch.tensor(go))
    np.testing.assert_array_equal(got.view(np.uint32), t.grad.numpy().view(np.uint32))
