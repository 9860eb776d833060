"""Argument validation and hostile input (SPEC.md "Errors", SEMANTICS.md 2, 3, 16).

Every invalid-argument rule must raise ``ValueError`` or ``TypeError`` whose
message names the offending argument (checked with ``match=`` on the name, not
the wording).  Hostile but valid input must work; hostile invalid input must be
rejected cleanly, never crash or hang the interpreter.  Everything runs under
every backend that loads.  Expected values are derived by hand or with plain
NumPy reshape-reductions, never with cypool.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cypool

NDS = (1, 2, 3)
FWD = {
    ("max", 1): cypool.max_pool1d, ("max", 2): cypool.max_pool2d,
    ("max", 3): cypool.max_pool3d,
    ("avg", 1): cypool.avg_pool1d, ("avg", 2): cypool.avg_pool2d,
    ("avg", 3): cypool.avg_pool3d,
}
BWD = {
    ("max", 1): cypool.max_pool1d_backward, ("max", 2): cypool.max_pool2d_backward,
    ("max", 3): cypool.max_pool3d_backward,
    ("avg", 1): cypool.avg_pool1d_backward, ("avg", 2): cypool.avg_pool2d_backward,
    ("avg", 3): cypool.avg_pool3d_backward,
}
# every operator that takes window arguments: forward and backward
OPS = ("max", "avg", "max_backward", "avg_backward")
WINDOW_ARGS = ("kernel_size", "stride", "padding", "dilation")


@pytest.fixture(params=cypool.available_backends())
def backend_name(request):
    """Run the test once under every backend that can load."""
    with cypool.backend(request.param):
        yield request.param


def _x(nd, n=1, c=2, size=4, dtype=np.float32):
    shape = (n, c) + (size,) * nd
    return np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape).astype(dtype)


def call(op, nd, x=None, **kw):
    """Call ``op`` (forward or backward) on a small (1, 2, 4, ...) problem.

    ``kw`` are the window arguments; ``kernel_size`` defaults to 2.  For the
    backward operators a grad_output for the default geometry (output size 2
    per dim) is passed: validation of the window arguments comes first, so a
    bad argument is reported before any shape mismatch.
    """
    kw.setdefault("kernel_size", 2)
    x = _x(nd) if x is None else x
    if op in ("max", "avg"):
        return FWD[op, nd](x, **kw)
    kind = op.split("_")[0]
    g = np.zeros(x.shape[:2] + (2,) * nd, dtype=np.float32)
    if kind == "max":
        return BWD[kind, nd](g, np.zeros(g.shape, np.int64), x.shape, **kw)
    return BWD[kind, nd](g, x.shape, **kw)


def _supports(op, arg):
    return not (arg == "dilation" and op.startswith("avg"))


# (operator, window argument) pairs that exist (average pooling has no dilation)
OP_ARGS = [(op, arg) for op in OPS for arg in WINDOW_ARGS if _supports(op, arg)]
# (operator, flag) pairs that exist
OP_FLAGS = [(op, "ceil_mode") for op in OPS] + [("max", "return_indices")] + [
    (op, "count_include_pad") for op in ("avg", "avg_backward")]


def _window_max(x, nd, k):
    """Non-overlapping k-window max over the spatial dims (NaN propagates)."""
    return _windows(x, nd, k).max(axis=-1)


def _windows(x, nd, k):
    """(N, C, *out, k**nd) array of the k-windows (stride k), taps in scan order."""
    n, c = x.shape[:2]
    out = tuple(s // k for s in x.shape[2:])
    shape = (n, c)
    for o in out:
        shape += (o, k)
    w = x.reshape(shape)
    order = [0, 1] + [2 + 2 * i for i in range(nd)] + [3 + 2 * i for i in range(nd)]
    return w.transpose(order).reshape((n, c) + out + (k ** nd,))


def _window_indices(x, nd, k):
    """PyTorch's max index (flat in-plane offset) of each k-window, stride k:
    the last NaN of the window if it holds one, else the first maximum."""
    w = _windows(x, nd, k)
    isnan = np.isnan(w)
    last_nan = w.shape[-1] - 1 - np.argmax(isnan[..., ::-1], axis=-1)
    first_max = np.argmax(np.where(isnan, -np.inf, w), axis=-1)
    tap = np.where(isnan.any(axis=-1), last_nan, first_max)
    # tap number -> offset within the plane
    spatial = x.shape[2:]
    out = tuple(s // k for s in spatial)
    tap_coords = np.unravel_index(tap, (k,) * nd)
    grids = np.meshgrid(*[np.arange(o) for o in out], indexing="ij")
    coords = [g * k + t for g, t in zip(grids, tap_coords)]
    return np.ravel_multi_index(coords, spatial).astype(np.int64)


# ----------------------------------------------------------- input arrays

@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_wrong_input_ndim(backend_name, kind, nd):
    for ndim in sorted({0, 1, nd, nd + 3} - {nd + 1, nd + 2}):
        x = np.zeros((3,) * ndim, dtype=np.float32)
        with pytest.raises(ValueError, match="input"):
            FWD[kind, nd](x, 1)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", [
    np.bool_, np.complex64, np.complex128, object, np.float16, "U3", "S3",
    "datetime64[s]", np.longdouble,
], ids=str)
def test_unsupported_input_dtype(backend_name, kind, nd, dtype):
    x = np.ones((1, 2) + (4,) * nd, dtype=dtype)
    with pytest.raises(TypeError, match="input"):
        FWD[kind, nd](x, 2)


@pytest.mark.parametrize("nd", NDS)
def test_str_list_input_rejected(backend_name, nd):
    x = np.full((1, 1) + (2,) * nd, "a").tolist()
    with pytest.raises(TypeError, match="input"):
        FWD["max", nd](x, 1)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("dtype", [np.uint32, np.uint64], ids=str)
def test_unsupported_integer_input_rejected_by_avg_pool(backend_name, nd, dtype):
    # average pooling takes the max-pooling integer dtypes (SEMANTICS.md,
    # decision 3); uint32/uint64 are not among them
    with pytest.raises(TypeError, match="input"):
        FWD["avg", nd](np.ones((1, 2) + (4,) * nd, dtype=dtype), 2)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("dtype", [np.uint32, np.uint64], ids=str)
def test_unsupported_integer_input_rejected_by_max_pool(backend_name, nd, dtype):
    # max pooling supports int8..int64 and uint8/uint16 only (SPEC.md)
    with pytest.raises(TypeError, match="input"):
        FWD["max", nd](np.ones((1, 2) + (4,) * nd, dtype=dtype), 2)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.bool_,
                                   np.float16, np.complex128, object], ids=str)
def test_unsupported_grad_output_dtype(backend_name, kind, nd, dtype):
    shape = (1, 2) + (4,) * nd
    g = np.ones((1, 2) + (2,) * nd, dtype=dtype)
    with pytest.raises(TypeError, match="grad_output"):
        if kind == "max":
            BWD[kind, nd](g, np.zeros(g.shape, np.int64), shape, 2)
        else:
            BWD[kind, nd](g, shape, 2)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("batched", [True, False])
def test_zero_size_spatial_dim_rejected(backend_name, kind, nd, batched):
    for axis in range(nd):
        spatial = [4] * nd
        spatial[axis] = 0
        shape = ((1, 2) if batched else (2,)) + tuple(spatial)
        with pytest.raises(ValueError, match="input"):
            FWD[kind, nd](np.zeros(shape, np.float32), 1)


# ------------------------------------------------------- window arguments

@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op,arg", [oa for oa in OP_ARGS if oa[1] != "padding"])
@pytest.mark.parametrize("value", [0, -1, -(2**40)])
def test_non_positive_window_argument(backend_name, op, nd, arg, value):
    with pytest.raises(ValueError, match=arg):
        call(op, nd, **{arg: value})
    # one bad entry (the last) in a per-dimension list
    bad = [1] * (nd - 1) + [value]
    with pytest.raises(ValueError, match=arg):
        call(op, nd, **{arg: bad})


WRONG_TYPES = [2.0, 1.5, "2", b"2", True, False, np.True_, None, 1j, object(), {1: 2},
               (2.0,), ("2",), (None,), (True,)]


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op,arg,value", [
    (op, arg, v) for op, arg in OP_ARGS for v in WRONG_TYPES
    # stride=None is the default; a padding string is a mode name (ValueError, below)
    if not (v is None and arg == "stride") and not (v == "2" and arg == "padding")
], ids=repr)
def test_window_argument_of_wrong_type(backend_name, op, nd, arg, value):
    if isinstance(value, tuple):
        value = value * nd
    with pytest.raises(TypeError, match=arg):
        call(op, nd, **{arg: value})


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op,arg", OP_ARGS)
def test_window_tuple_of_wrong_length(backend_name, op, nd, arg):
    ok = {"kernel_size": 2, "stride": 2, "padding": 0, "dilation": 1}[arg]
    lengths = {2, 3, 4} - {nd}
    if arg != "stride":  # stride=() means the default
        lengths.add(0)
    for n in sorted(lengths):
        for seq in (tuple, list):
            with pytest.raises(ValueError, match=arg):
                call(op, nd, **{arg: seq([ok] * n)})


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op", OPS)
def test_negative_padding(backend_name, op, nd):
    for pad in (-1, -(2**40), (-1,) * nd, (0,) * (nd - 1) + (-1,)):
        with pytest.raises(ValueError, match="padding"):
            call(op, nd, kernel_size=3, padding=pad)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("k,p", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (2, 2**40)])
def test_padding_over_half_the_kernel(backend_name, op, nd, k, p):
    with pytest.raises(ValueError, match="padding"):
        call(op, nd, kernel_size=k, padding=p)
    if nd > 1:  # per-dimension: only the last dimension breaks the rule
        kernel = (3,) * (nd - 1) + (k,)
        pad = (1,) * (nd - 1) + (p,)
        with pytest.raises(ValueError, match="padding"):
            call(op, nd, kernel_size=kernel, padding=pad)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op", ["max", "max_backward"])
def test_padding_limit_uses_nominal_kernel_with_dilation(backend_name, op, nd):
    # k=3, d=2: effective kernel 5, but PyTorch's limit is 3 // 2 = 1
    x = _x(nd, size=7)
    with pytest.raises(ValueError, match="padding"):
        call(op, nd, x=x, kernel_size=3, dilation=2, padding=2)
    if op == "max":  # p = 1 is accepted: out = (7 + 2 - 4 - 1) // 1 + 1 = 5
        y = call(op, nd, x=x, kernel_size=3, dilation=2, padding=1, stride=1)
        assert y.shape == (1, 2) + (5,) * nd


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("mode", ["full", "", "causal", "same_upper", "SAME_LOWER",
                                  "same ", " valid", "sam", "2"])
def test_unknown_padding_string(backend_name, op, nd, mode):
    with pytest.raises(ValueError, match="padding"):
        call(op, nd, padding=mode)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op", OPS)
def test_explicit_padding_pairs_invalid(backend_name, op, nd):
    ok = [(1, 1)] * nd

    def with_last(pair):
        return ok[:-1] + [pair]

    bad_values = [with_last((-1, 0)), with_last((0, -1)), with_last((-5, -5)),
                  # not smaller than the effective kernel size 3
                  with_last((3, 0)), with_last((0, 3)), with_last((2**40, 0))]
    for pad in bad_values:
        with pytest.raises(ValueError, match="padding"):
            call(op, nd, x=_x(nd, size=5), kernel_size=3, stride=1, padding=pad)
    bad_counts = [ok + [(1, 1)], with_last((1, 1, 1)), with_last((1,)), with_last(())]
    if nd > 1:
        bad_counts += [ok[:-1], [1] * (nd - 1) + [(1, 1)]]  # mixed int and pair
    for pad in bad_counts:
        with pytest.raises(ValueError, match="padding"):
            call(op, nd, x=_x(nd, size=5), kernel_size=3, stride=1, padding=pad)
    for pair in [(1.0, 1), (1, "1"), (None, 1), (True, 0)]:
        with pytest.raises(TypeError, match="padding"):
            call(op, nd, x=_x(nd, size=5), kernel_size=3, stride=1,
                 padding=with_last(pair))


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op", ["max", "max_backward"])
def test_explicit_padding_pair_limit_uses_effective_kernel(backend_name, op, nd):
    # k=2, d=2: effective kernel 3, so each side may be up to 2 (beyond k // 2 = 1)
    x = _x(nd, size=5)
    with pytest.raises(ValueError, match="padding"):
        call(op, nd, x=x, kernel_size=2, dilation=2, stride=1,
             padding=[(3, 0)] * nd)
    if op == "max":  # (2, 2): out = 5 + 4 - 2 - 1 + 1 = 7
        y = call(op, nd, x=x, kernel_size=2, dilation=2, stride=1,
                 padding=[(2, 2)] * nd)
        assert y.shape == (1, 2) + (7,) * nd


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_empty_output_rejected(backend_name, op, nd, ceil_mode):
    x = _x(nd, size=2)
    # 2x2 input, kernel 3, no padding: floor((2-3)/1) + 1 = 0, ceil(-1/1) + 1 = 0.
    # (With the default stride 3, ceil mode gives ceil(-1/3) + 1 = 1, a valid
    # output, as in torch 2.13.)
    with pytest.raises(ValueError, match="kernel_size"):
        call(op, nd, x=x, kernel_size=3, stride=1, ceil_mode=ceil_mode)
    # one dimension only
    if nd > 1:
        with pytest.raises(ValueError, match="kernel_size"):
            call(op, nd, x=_x(nd, size=4), kernel_size=(2,) * (nd - 1) + (5,),
                 stride=1, ceil_mode=ceil_mode)
    # huge kernels: an empty output, detected without allocating or looping
    for k in (2**31, 2**40, 2**62, 2**100):
        with pytest.raises(ValueError, match="kernel_size"):
            call(op, nd, x=x, kernel_size=k, stride=1, ceil_mode=ceil_mode)
    if not ceil_mode:
        with pytest.raises(ValueError, match="kernel_size"):
            call(op, nd, x=x, kernel_size=2**40)
    if op.startswith("max"):  # dilation makes the window too wide: 1*(2-1)+... = 6 > 4
        with pytest.raises(ValueError, match="kernel_size|dilation"):
            call(op, nd, x=_x(nd, size=4), kernel_size=2, dilation=5, stride=1,
                 ceil_mode=ceil_mode)
        with pytest.raises(ValueError, match="kernel_size|dilation"):
            call(op, nd, x=x, kernel_size=2, dilation=2**62, stride=1,
                 ceil_mode=ceil_mode)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op,flag", OP_FLAGS)
def test_flag_not_bool(backend_name, op, nd, flag):
    for value in (0, 1, None, "True", 1.0, np.int64(1), [True]):
        with pytest.raises(TypeError, match=flag):
            call(op, nd, **{flag: value})


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("op", ["avg", "avg_backward"])
def test_divisor_override_invalid(backend_name, op, nd):
    for value in (0, np.int32(0)):
        with pytest.raises(ValueError, match="divisor_override"):
            call(op, nd, divisor_override=value)
    for value in (2**63, -(2**63), -(2**63) - 1, 2**100):
        with pytest.raises(ValueError, match="divisor_override"):
            call(op, nd, divisor_override=value)
    for value in (2.0, 0.5, True, False, np.True_, "2", 1j, (2,)):
        with pytest.raises(TypeError, match="divisor_override"):
            call(op, nd, divisor_override=value)


# ------------------------------------------------------------- backward

@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_backward_grad_output_shape_mismatch(backend_name, kind, nd):
    shape = (2, 3) + (4,) * nd  # forward output with k=2: (2, 3, 2, ...)
    out = (2, 3) + (2,) * nd
    bad_shapes = [
        (2, 3) + (3,) * nd, (2, 3) + (2,) * (nd - 1) + (1,), (1, 3) + (2,) * nd,
        (2, 4) + (2,) * nd, (3,) + (2,) * nd, out + (1,), (1,) + out, (),
    ]
    for bad in bad_shapes:
        g = np.zeros(bad, np.float64)
        with pytest.raises(ValueError, match="grad_output"):
            if kind == "max":
                BWD[kind, nd](g, np.zeros(bad, np.int64), shape, 2)
            else:
                BWD[kind, nd](g, shape, 2)
    # unbatched input_shape, batched grad
    with pytest.raises(ValueError, match="grad_output"):
        g = np.zeros((1, 3) + (2,) * nd)
        if kind == "max":
            BWD[kind, nd](g, np.zeros(g.shape, np.int64), shape[1:], 2)
        else:
            BWD[kind, nd](g, shape[1:], 2)


@pytest.mark.parametrize("nd", NDS)
def test_backward_indices_shape_mismatch(backend_name, nd):
    shape = (2, 3) + (4,) * nd
    out = (2, 3) + (2,) * nd
    g = np.zeros(out, np.float32)
    for bad in [(2, 3) + (3,) * nd, (1, 3) + (2,) * nd, (2, 3) + (2,) * (nd - 1),
                out + (1,), (2 * 3 * 2**nd,), ()]:
        with pytest.raises(ValueError, match="indices"):
            BWD["max", nd](g, np.zeros(bad, np.int64), shape, 2)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.bool_,
                                   np.complex128, object, "U2"], ids=str)
def test_backward_indices_of_wrong_dtype(backend_name, nd, dtype):
    shape = (1, 2) + (4,) * nd
    g = np.zeros((1, 2) + (2,) * nd, np.float32)
    with pytest.raises(TypeError, match="indices"):
        BWD["max", nd](g, np.zeros(g.shape, dtype=dtype), shape, 2)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("bad", [
    "plane", "plane+1", -2, -3, np.iinfo(np.int64).max, np.iinfo(np.int64).min,
    np.iinfo(np.int32).max, np.iinfo(np.int32).min,
], ids=str)
@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_backward_indices_out_of_range(backend_name, nd, bad, where):
    shape = (2, 3) + (4,) * nd
    plane = 4**nd
    bad = {"plane": plane, "plane+1": plane + 1}.get(bad, bad)
    g = np.ones((2, 3) + (2,) * nd, np.float64)
    idx = np.zeros(g.shape, np.int64)
    flat = idx.reshape(-1)
    flat[{"first": 0, "last": -1, "middle": flat.size // 2 + 1}[where]] = bad
    with pytest.raises(ValueError, match="indices"):
        BWD["max", nd](g, idx, shape, 2)


@pytest.mark.parametrize("nd", NDS)
def test_backward_unsigned_indices_out_of_range(backend_name, nd):
    shape = (1, 2) + (4,) * nd
    g = np.ones((1, 2) + (2,) * nd, np.float32)
    for dtype, value in [(np.uint64, 2**64 - 1), (np.uint64, 2**63), (np.uint8, 255),
                         (np.uint32, 2**32 - 1), (np.int8, -128)]:
        idx = np.zeros(g.shape, dtype)
        idx.reshape(-1)[-1] = value
        with pytest.raises(ValueError, match="indices"):
            BWD["max", nd](g, idx, shape, 2)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_backward_input_shape_invalid(backend_name, kind, nd):
    def run(input_shape):
        g = np.zeros((1, 2) + (2,) * nd, np.float32)
        if kind == "max":
            return BWD[kind, nd](g, np.zeros(g.shape, np.int64), input_shape, 2)
        return BWD[kind, nd](g, input_shape, 2)

    good = (1, 2) + (4,) * nd
    for bad in [good[2:], (1,) + good, (), (1, 1, 1, 1, 1, 1, 1)]:
        with pytest.raises(ValueError, match="input_shape"):
            run(bad)
    for bad in [(-1,) + good[1:], (1, -2) + good[2:], good[:-1] + (-4,)]:
        with pytest.raises(ValueError, match="input_shape"):
            run(bad)
    with pytest.raises(ValueError, match="input_shape"):
        run(good[:-1] + (0,))  # zero-size spatial dimension
    for bad in [good[:-1] + (4.0,), good[:-1] + ("4",), good[:-1] + (None,),
                (True,) + good[1:], good[:-1] + (np.float64(4),)]:
        with pytest.raises(TypeError, match="input_shape"):
            run(bad)
    for bad in [4, None, "1244", b"12", 4.0]:
        with pytest.raises(TypeError, match="input_shape"):
            run(bad)


# ------------------------------------------------------- hostile input

@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("stride", [2**31, 2**62, 2**63 - 1, 2**63, 2**100])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_huge_stride_on_valid_input(backend_name, nd, stride, ceil_mode):
    """One window at the origin: floor((4-2)/s) + 1 = 1; in ceil mode
    ceil(2/s) + 1 = 2, and the second window (start s >= 4) is dropped."""
    x = _x(nd, n=1, c=2)
    plane = 4**nd
    first = x[(Ellipsis,) + (slice(0, 2),) * nd]
    exp_max = first.reshape(1, 2, -1).max(axis=-1).reshape((1, 2) + (1,) * nd)
    exp_avg = first.reshape(1, 2, -1).mean(axis=-1).reshape((1, 2) + (1,) * nd)
    exp_idx = np.full((1, 2) + (1,) * nd, sum(4**i for i in range(nd)), np.int64)
    try:
        y, idx = FWD["max", nd](x, 2, stride=stride, ceil_mode=ceil_mode,
                                return_indices=True)
    except ValueError as exc:  # a clean rejection naming the stride is acceptable
        assert "stride" in str(exc)
        return
    np.testing.assert_array_equal(y, exp_max)
    np.testing.assert_array_equal(idx, exp_idx)
    np.testing.assert_allclose(FWD["avg", nd](x, 2, stride=stride, ceil_mode=ceil_mode),
                               exp_avg, rtol=1e-6)
    g = np.full(y.shape, 2.0, np.float32)
    gx = BWD["max", nd](g, idx, x.shape, 2, stride=stride, ceil_mode=ceil_mode)
    exp = np.zeros(x.shape, np.float32)
    exp.reshape(1, 2, plane)[:, :, exp_idx.ravel()[0]] = 2.0
    np.testing.assert_array_equal(gx, exp)
    ga = BWD["avg", nd](g, x.shape, 2, stride=stride, ceil_mode=ceil_mode)
    exp = np.zeros(x.shape, np.float32)
    exp[(Ellipsis,) + (slice(0, 2),) * nd] = 2.0 / 2**nd
    np.testing.assert_allclose(ga, exp, rtol=1e-6)


_HOSTILE_CHILD = textwrap.dedent("""
    import json, sys
    try:
        import resource  # fail allocations fast instead of waking the OOM killer
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
    except (ImportError, ValueError, OSError):
        pass
    import numpy as np, cypool
    backend, expr = sys.argv[1], sys.argv[2]
    cypool.set_backend(backend)
    x1 = np.arange(4, dtype=np.float32).reshape(1, 4)
    x2 = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    x3 = np.arange(64, dtype=np.float32).reshape(1, 4, 4, 4)
    g1 = np.ones((1, 1), np.float32)
    try:
        r = eval(expr)
    except (ValueError, MemoryError) as exc:
        print(json.dumps({"error": type(exc).__name__, "msg": str(exc)}))
    else:
        print(json.dumps({"value": np.asarray(r).tolist()}))
""")

# (expression, expected value): huge kernels whose output is NOT empty (ceil
# mode with the default stride, "same", explicit pairs), so the windows cover
# the whole input.  A correct result or a clean ValueError/MemoryError is fine;
# a crash or a hang is not.
_HOSTILE_CASES = {
    "max1d_ceil": ("cypool.max_pool1d(x1, 2**62, ceil_mode=True)", [[3.0]]),
    "max1d_same": ("cypool.max_pool1d(x1, 2**62, padding='same')", [[3.0]]),
    "max1d_pairs": ("cypool.max_pool1d(x1, 2**62, stride=1, padding=[(2**61, 2**61)])",
                    [[3.0] * 5]),
    "max2d_ceil": ("cypool.max_pool2d(x2, 2**40, ceil_mode=True)", [[[15.0]]]),
    "max3d_ceil": ("cypool.max_pool3d(x3, 2**21, ceil_mode=True)", [[[[63.0]]]]),
    "max1d_dilation_same": ("cypool.max_pool1d(x1, 2, dilation=2**62, padding='same', "
                            "return_indices=True)[1]", [[-1, -1]]),
    "avg1d_ceil": ("cypool.avg_pool1d(x1, 2**62, ceil_mode=True)", [[1.5]]),
    "avg1d_backward_ceil": ("cypool.avg_pool1d_backward(g1, (1, 4), 2**62, ceil_mode=True)",
                            [[0.25] * 4]),
}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
@pytest.mark.parametrize("case", sorted(_HOSTILE_CASES))
def test_huge_kernel_with_nonempty_output_does_not_crash(backend_name, case):
    expr, expected = _HOSTILE_CASES[case]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    try:
        r = subprocess.run([sys.executable, "-c", _HOSTILE_CHILD, backend_name, expr],
                           env=env, capture_output=True, text=True, timeout=4)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{expr} hung (no answer within 4 s)")
    assert r.returncode == 0, f"{expr} crashed: rc={r.returncode}\n{r.stderr[-2000:]}"
    res = json.loads(r.stdout.strip().splitlines()[-1])
    if "value" in res:
        np.testing.assert_allclose(np.array(res["value"]), np.array(expected), rtol=1e-6)


@pytest.mark.parametrize("nd", NDS)
def test_nan_and_inf_everywhere(backend_name, nd):
    shape = (2, 3) + (4,) * nd
    out = (2, 3) + (2,) * nd
    # flat in-plane offsets of the first / last tap of each 2-window
    ones = np.ones(shape, np.float64)
    first = _window_indices(np.zeros(shape), nd, 2)
    last = _window_indices(np.full(shape, np.nan), nd, 2)
    assert first.ravel()[0] == 0 and last.ravel()[0] == sum(4**i for i in range(nd))
    for dtype in (np.float32, np.float64):
        for fill, exp_idx in [(np.nan, last), (np.inf, first), (-np.inf, first)]:
            x = (ones * fill).astype(dtype)
            y, idx = FWD["max", nd](x, 2, return_indices=True)
            np.testing.assert_array_equal(y, np.full(out, fill, dtype))
            np.testing.assert_array_equal(idx, exp_idx)
            a = FWD["avg", nd](x, 2)
            np.testing.assert_array_equal(a, np.full(out, fill, dtype))
            # padded windows: padding is -inf for max, never a value
            y = FWD["max", nd](x, 3, stride=1, padding=1)
            np.testing.assert_array_equal(y, np.full((2, 3) + (4,) * nd, fill, dtype))
        # random mixture of NaN, +-inf and finite values
        rng = np.random.default_rng(nd)
        x = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0]),
                       size=shape).astype(dtype)
        y, idx = FWD["max", nd](x, 2, return_indices=True)
        np.testing.assert_array_equal(y, _window_max(x, nd, 2))
        np.testing.assert_array_equal(idx, _window_indices(x, nd, 2))
        with np.errstate(invalid="ignore"):
            exp_avg = _windows(x.astype(np.float64), nd, 2).mean(axis=-1)
        np.testing.assert_allclose(FWD["avg", nd](x, 2), exp_avg, rtol=1e-6)
        # backward with NaN / inf gradients
        g = rng.choice(np.array([np.nan, np.inf, -np.inf, 2.0]), size=out).astype(dtype)
        gx = BWD["max", nd](g, idx, shape, 2)
        exp = np.zeros((6, 4**nd), dtype)
        exp[np.arange(6)[:, None], idx.reshape(6, -1)] = g.reshape(6, -1)
        np.testing.assert_array_equal(gx, exp.reshape(shape))
        ga = BWD["avg", nd](g, shape, 2)
        exp = g / 2**nd
        for axis in range(2, 2 + nd):
            exp = np.repeat(exp, 2, axis=axis)
        np.testing.assert_array_equal(ga, exp)


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("empty", [(0, 3), (2, 0), (0, 0), (0,)])
def test_zero_size_batch_or_channel(backend_name, nd, empty):
    shape = empty + (5,) * nd
    out = empty + (2,) * nd  # k=2: floor((5-2)/2)+1 = 2; ceil: 3
    for dtype in (np.float32, np.float64, np.int8, np.uint16, np.int64):
        x = np.zeros(shape, dtype)
        y, idx = FWD["max", nd](x, 2, return_indices=True)
        assert y.shape == out and y.dtype == dtype
        assert idx.shape == out and idx.dtype == np.int64
        y = FWD["max", nd](x, 3, stride=2, padding=1, ceil_mode=True)
        assert y.shape == empty + (3,) * nd
    for dtype in (np.float32, np.float64):
        x = np.zeros(shape, dtype)
        a = FWD["avg", nd](x, 2, ceil_mode=True)
        assert a.shape == empty + (3,) * nd and a.dtype == dtype
        g = np.zeros(out, dtype)
        gx = BWD["max", nd](g, np.zeros(out, np.int64), shape, 2)
        assert gx.shape == shape and gx.dtype == dtype
        ga = BWD["avg", nd](g, shape, 2)
        assert ga.shape == shape and ga.dtype == dtype
    # validation still applies to empty arrays
    with pytest.raises(ValueError, match="padding"):
        FWD["max", nd](np.zeros(shape, np.float32), 2, padding=2)
    with pytest.raises(TypeError, match="input"):
        FWD["avg", nd](np.zeros(shape, np.uint32), 2)
    a = FWD["avg", nd](np.zeros(shape, np.int32), 2)
    assert a.shape == out and a.dtype == np.int32


# ------------------------------------------------- accepted, must not raise

@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("scalar", [np.int8, np.uint8, np.int16, np.int32, np.int64,
                                    np.uint64], ids=str)
def test_numpy_integer_scalars_accepted(backend_name, nd, scalar):
    x = _x(nd)
    exp = _window_max(x, nd, 2)
    y = FWD["max", nd](x, scalar(2), stride=scalar(2), padding=scalar(0),
                       dilation=scalar(1))
    np.testing.assert_array_equal(y, exp)
    y = FWD["max", nd](x, (scalar(2),) * nd, stride=[scalar(2)] * nd)
    np.testing.assert_array_equal(y, exp)
    a = FWD["avg", nd](x, scalar(2), divisor_override=scalar(1))
    np.testing.assert_allclose(a, _windows(x, nd, 2).sum(axis=-1), rtol=1e-6)


def test_zero_dim_integer_array_as_kernel_size(backend_name):
    x = _x(2)
    np.testing.assert_array_equal(cypool.max_pool2d(x, np.array(2)), _window_max(x, 2, 2))


@pytest.mark.parametrize("nd", NDS)
def test_lists_and_one_element_tuples_accepted(backend_name, nd):
    x = _x(nd, size=6)
    exp = _window_max(x, nd, 2)
    for kw in [dict(kernel_size=[2] * nd, stride=[2] * nd, padding=[0] * nd,
                    dilation=[1] * nd),
               dict(kernel_size=(2,), stride=(2,), padding=(0,), dilation=(1,)),
               dict(kernel_size=[2], stride=[2], padding=[0], dilation=[1]),
               dict(kernel_size=np.array([2] * nd), stride=np.array([2]))]:
        np.testing.assert_array_equal(FWD["max", nd](x, **kw), exp)
    # padding (1,) with k=3, s=1 keeps the size: 6 + 2 - 3 + 1 = 6
    assert FWD["avg", nd](x, [3], stride=(1,), padding=(1,)).shape == x.shape


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("mode", ["same", "SAME", "Same", "sAmE"])
def test_padding_same_case_insensitive(backend_name, nd, mode):
    # L=5, k=2, s=2: out = ceil(5/2) = 3, padding (0, 1) at the end (-inf for max)
    x = _x(nd, size=5)
    y = FWD["max", nd](x, 2, padding=mode)
    assert y.shape == (1, 2) + (3,) * nd
    # the last window along every dim holds only the last element: x[..., 4, 4]
    corner = x[(Ellipsis,) + (4,) * nd]
    np.testing.assert_array_equal(y[(Ellipsis,) + (2,) * nd], corner)
    np.testing.assert_array_equal(y[(Ellipsis,) + (0,) * nd],
                                  x[(Ellipsis,) + (1,) * nd])


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("mode", ["valid", "VALID", "Valid"])
def test_padding_valid_case_insensitive(backend_name, nd, mode):
    x = _x(nd, size=5)  # floor((5-2)/2)+1 = 2: the last row is dropped
    y = FWD["max", nd](x, 2, padding=mode)
    np.testing.assert_array_equal(y, _window_max(x[(Ellipsis,) + (slice(0, 4),) * nd],
                                                 nd, 2))


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32,
                                   np.uint32, np.uint64, ">i8", ">i4", "<i2"], ids=str)
def test_backward_accepts_other_integer_index_dtypes(backend_name, nd, dtype):
    shape = (2, 3) + (4,) * nd
    x = np.random.default_rng(1).standard_normal(shape)
    idx = _window_indices(x, nd, 2)
    g = np.arange(1, idx.size + 1, dtype=np.float64).reshape(idx.shape)
    exp = np.zeros((6, 4**nd))
    exp[np.arange(6)[:, None], idx.reshape(6, -1)] = g.reshape(6, -1)
    gx = BWD["max", nd](g, idx.astype(dtype), shape, 2)
    np.testing.assert_array_equal(gx, exp.reshape(shape))
    # -1 (a dilation hole) is skipped, in any signed dtype
    idx2 = idx.astype(dtype)
    if np.dtype(dtype).kind == "i":
        idx2.reshape(-1)[0] = -1
        exp.reshape(-1)[idx.reshape(-1)[0]] = 0.0
        np.testing.assert_array_equal(BWD["max", nd](g, idx2, shape, 2),
                                      exp.reshape(shape))


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("dtype", [">f4", ">f8"])
def test_byteswapped_float_input_accepted(backend_name, nd, dtype):
    x = np.random.default_rng(2).standard_normal((2, 3) + (4,) * nd).astype(dtype)
    assert not x.dtype.isnative
    native = x.astype(x.dtype.newbyteorder("="))
    y, idx = FWD["max", nd](x, 2, return_indices=True)
    assert y.dtype == native.dtype
    np.testing.assert_array_equal(y, _window_max(native, nd, 2))
    np.testing.assert_array_equal(idx, _window_indices(native, nd, 2))
    a = FWD["avg", nd](x, 2)
    assert a.dtype == native.dtype
    np.testing.assert_allclose(a, _windows(native.astype(np.float64), nd, 2).mean(axis=-1),
                               rtol=1e-6, atol=1e-6)
    # byte-swapped grad_output too
    g = np.ones(a.shape, dtype)
    ga = BWD["avg", nd](g, x.shape, 2)
    np.testing.assert_allclose(ga, np.full(x.shape, 1.0 / 2**nd), rtol=1e-7)
    gx = BWD["max", nd](g, idx, x.shape, 2)
    assert gx.sum() == idx.size


@pytest.mark.parametrize("nd", NDS)
@pytest.mark.parametrize("dtype", [">i2", ">u2", ">i4", ">i8"])
def test_byteswapped_integer_input_accepted_by_max(backend_name, nd, dtype):
    x = np.arange(2 * 4**nd).reshape((1, 2) + (4,) * nd).astype(dtype)
    native = x.astype(x.dtype.newbyteorder("="))
    np.testing.assert_array_equal(FWD["max", nd](x, 2), _window_max(native, nd, 2))
