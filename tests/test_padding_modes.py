"""TensorFlow/ONNX padding forms: ``"same"``, ``"valid"`` and explicit
``(before, after)`` pairs.

The sizes are checked against TensorFlow's formula on many random shapes, and
the results (both backends) against PyTorch applied to an input padded by
``F.pad`` (``-inf`` for max, zeros for averages), where torch is installed."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cypool
from cases import random_values


@given(st.integers(1, 3).flatmap(lambda nd: st.tuples(
    st.just(nd),
    st.lists(st.integers(1, 40), min_size=nd, max_size=nd),
    st.lists(st.integers(1, 6), min_size=nd, max_size=nd),
    st.lists(st.integers(1, 5), min_size=nd, max_size=nd),
    st.lists(st.integers(1, 3), min_size=nd, max_size=nd))))
def test_same_and_valid_sizes_follow_tensorflow(args):
    nd, size, kernel, stride, dil = args
    x = np.zeros((1, 1) + tuple(size), np.float32)
    f = getattr(cypool, f"max_pool{nd}d")
    same = f(x, kernel, stride, "same", dil)
    assert same.shape[2:] == tuple(-(-L // s) for L, s in zip(size, stride))
    k_eff = [d * (k - 1) + 1 for k, d in zip(kernel, dil)]
    if all(L >= ke for L, ke in zip(size, k_eff)):
        valid = f(x, kernel, stride, "valid", dil)
        assert valid.shape[2:] == tuple((L - ke) // s + 1
                                        for L, ke, s in zip(size, k_eff, stride))
    else:
        with pytest.raises(ValueError, match="empty"):
            f(x, kernel, stride, "valid", dil)
    # and "same" is exactly TensorFlow's split, the odd element at the end
    pairs = []
    for L, s, ke in zip(size, stride, k_eff):
        total = max((-(-L // s) - 1) * s + ke - L, 0)
        pairs.append((total // 2, total - total // 2))
    np.testing.assert_array_equal(f(x, kernel, stride, tuple(pairs), dil), same)


def _torch_pad(nd, pairs):
    flat = []
    for b, a in reversed(pairs):  # F.pad lists the last dimension first
        flat += [b, a]
    return flat


@st.composite
def padded_cases(draw):
    nd = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    size = tuple(draw(st.integers(k, k + 6)) for k in kernel)
    mode = draw(st.sampled_from(["same", "pairs"]))
    if mode == "same":
        padding = "same"
    else:
        padding = tuple((draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1)))
                        for k in kernel)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = random_values(rng, (2, 3) + size, np.float64, special=False)
    # no ceil_mode: torch cannot tell padding from data in a pre-padded input,
    # so it keeps windows that start in the right padding, which the drop rule
    # removes (SEMANTICS.md sections 1 and 3; tested in test_semantics_examples)
    return nd, x, kernel, stride, padding, False


@given(padded_cases())
def test_padding_forms_match_torch_on_padded_input(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    nd, x, kernel, stride, padding, ceil_mode = case
    mp = getattr(cypool, f"max_pool{nd}d")
    ap = getattr(cypool, f"avg_pool{nd}d")
    if padding == "same":
        pairs = []
        for L, k, s in zip(x.shape[2:], kernel, stride):
            total = max((-(-L // s) - 1) * s + k - L, 0)
            pairs.append((total // 2, total - total // 2))
        ceil_mode = False  # "same" fixes the output size
    else:
        pairs = list(padding)
    tx = torch.from_numpy(x)
    pad = _torch_pad(nd, pairs)
    xp_inf = F.pad(tx, pad, value=float("-inf"))
    xp_zero = F.pad(tx, pad, value=0.0)
    mask = F.pad(torch.ones_like(tx), pad, value=0.0)
    tmax = getattr(F, f"max_pool{nd}d")
    tavg = getattr(F, f"avg_pool{nd}d")
    want_max = tmax(xp_inf, kernel, stride, ceil_mode=ceil_mode).numpy()
    # count_include_pad=True: padding counts, the ceil-mode overhang does not
    want_incl = tavg(xp_zero, kernel, stride, ceil_mode=ceil_mode).numpy()
    # count_include_pad=False: sum over the input / number of input elements
    # (TensorFlow's SAME average never counts padding)
    if nd == 1:  # torch's avg_pool1d has no divisor_override
        n_out = want_incl.shape[-1]
        sums = _window_sums_1d(xp_zero.numpy(), kernel[0], stride[0], n_out)
        counts = _window_sums_1d(mask.numpy(), kernel[0], stride[0], n_out)
    else:
        sums = tavg(xp_zero, kernel, stride, divisor_override=1).numpy()
        counts = tavg(mask, kernel, stride, divisor_override=1).numpy()
    want_excl = sums / counts
    for name in cypool.available_backends():
        with cypool.backend(name):
            np.testing.assert_array_equal(mp(x, kernel, stride, padding, 1, ceil_mode), want_max)
            np.testing.assert_allclose(ap(x, kernel, stride, padding, ceil_mode, True),
                                       want_incl, rtol=1e-12)
            np.testing.assert_allclose(ap(x, kernel, stride, padding, ceil_mode, False),
                                       want_excl, rtol=1e-12)


def _window_sums_1d(a, k, s, n):
    return np.stack([a[..., i * s:i * s + k].sum(axis=-1) for i in range(n)], axis=-1)
