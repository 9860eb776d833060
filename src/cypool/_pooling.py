"""Public max and average pooling functions, forward and backward.

Naming scheme, followed by every operator: ``<op>{1,2,3}d(input, ...)`` is the
forward pass and ``<op>{1,2,3}d_backward(grad_output, ..., input_shape, ...)``
its backward pass, taking the output gradient, what the forward returned that
the backward needs (the indices of max pooling), the input's shape and the
forward's window arguments.  Each function validates its arguments through
:mod:`cypool._params`, allocates the result, and hands both to the active
backend (:mod:`cypool._backend`).

Arrays are laid out ``(N, C, *spatial)``; unbatched ``(C, *spatial)`` input is
accepted and gives unbatched output.  Results are C-contiguous arrays of the
input's dtype; indices are int64 flat offsets into each ``(n, c)`` plane.

Keywords every operator takes:

``channels_last=False``
    ``True``: arrays are ``(N, *spatial, C)`` (or unbatched ``(*spatial, C)``),
    results too; identical to transposing in and out (indices keep indexing
    the spatial plane), without the copies: the compiled backend has
    channels-last kernels that run along the contiguous channel axis.
``rounding="truncate"`` (average pooling)
    Integer input (every integer dtype) is summed in int64 and divided
    exactly; the quotient is rounded toward zero (``"truncate"``, PyTorch's
    rule for int64) or to nearest with ties to even (``"nearest"``, unbiased
    means for image pyramids) and returned in the input's dtype.  No effect
    on floating input.
``out=None``
    A preallocated result: a writeable, C-contiguous array of exactly the
    result's shape (in the caller's layout) and dtype, not overlapping any
    input.  It is filled and returned.  With ``return_indices=True`` it is a
    ``(values, indices)`` pair (or just the values array).
"""

from __future__ import annotations

import math
import operator

import numpy as np

from . import _backend
from ._params import (FLOAT_DTYPES, MAX_DTYPES, check_dtype,
                      check_input, layout_names, pool_geometry, to_nc_first)

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
]


# ------------------------------------------------------------------ helpers

def _check_divisor(divisor_override):
    if divisor_override is None:
        return None
    if isinstance(divisor_override, (bool, np.bool_)):
        raise TypeError("divisor_override must be an integer or None, not bool")
    try:
        value = operator.index(divisor_override)
    except TypeError:
        raise TypeError(
            "divisor_override must be an integer or None, "
            f"not {type(divisor_override).__name__}"
        ) from None
    if value == 0:
        raise ValueError("divisor_override must be non-zero")
    if not -(2**63) < value < 2**63:
        raise ValueError("divisor_override must lie in (-2**63, 2**63)")
    return value


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return bool(value)


def _empty(shape4, dtype, channels_last, zeros=False):
    """A C-contiguous result in the caller's layout, and its ``(N, C, *spatial)``
    view for the backends (``zeros``: zero-filled, by ``np.zeros``, whose
    large blocks come from the system already zeroed)."""
    alloc = np.zeros if zeros else np.empty
    if channels_last:
        a = alloc((shape4[0],) + tuple(shape4[2:]) + (shape4[1],), dtype=dtype)
    else:
        a = alloc(shape4, dtype=dtype)
    return a, to_nc_first(a, channels_last)


def _result(out, shape4, dtype, channels_last, batched, op, name, operands, zeros=False):
    """The caller's preallocated ``out`` (checked) or a new array (zero-filled
    with ``zeros``), and its ``(N, C, *spatial)`` view for the backends.

    ``out`` must be a writeable, C-contiguous ndarray of exactly the result's
    shape (in the caller's layout) and dtype, and must not overlap any of the
    ``operands`` the call reads."""
    if out is None:
        a, a4 = _empty(shape4, dtype, channels_last, zeros)
        return (a if batched else a[0]), a4
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{op}: {name} must be a numpy.ndarray, not {type(out).__name__}")
    expected = _user_shape(shape4, batched, channels_last)
    if out.dtype != np.dtype(dtype):
        raise TypeError(f"{op}: {name} must have dtype {np.dtype(dtype)}, got {out.dtype}")
    if out.shape != expected:
        raise ValueError(f"{op}: {name} must have shape {expected}, got {out.shape}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{op}: {name} is read-only")
    for a in operands:
        if a is not None and np.may_share_memory(out, a):
            raise ValueError(f"{op}: {name} must not overlap the arrays the call reads")
    return out, to_nc_first(out if batched else out[np.newaxis], channels_last)


def _check_input_shape(input_shape, nd, op, channels_last=False):
    """``input_shape`` of a backward call, in the caller's layout, as an
    ``(N, C, *spatial)`` tuple; returns (shape4, batched)."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"{op}: input_shape must be a tuple of integers")
    shape = []
    for s in input_shape:
        if isinstance(s, (bool, np.bool_)):
            raise TypeError(f"{op}: input_shape must hold integers, not bool")
        try:
            shape.append(operator.index(s))
        except TypeError:
            raise TypeError(
                f"{op}: input_shape must hold integers, not {type(s).__name__}"
            ) from None
    if len(shape) not in (nd + 1, nd + 2):
        unb, bat = layout_names(nd, channels_last)
        raise ValueError(
            f"{op}: input_shape must have {nd + 1} entries {unb} or {nd + 2} "
            f"entries {bat}, got {tuple(shape)}"
        )
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: input_shape must be non-negative, got {tuple(shape)}")
    spatial = shape[-nd - 1:-1] if channels_last else shape[-nd:]
    if any(s == 0 for s in spatial):
        raise ValueError(
            f"{op}: input_shape has a zero-size spatial dimension: {tuple(shape)}"
        )
    batched = len(shape) == nd + 2
    if not batched:
        shape = [1] + shape
    if channels_last:
        shape = [shape[0], shape[-1]] + shape[1:-1]
    return tuple(shape), batched


def _user_shape(shape4, batched, channels_last):
    """An ``(N, C, *spatial)`` shape in the caller's layout."""
    shape = tuple(shape4)
    if channels_last:
        shape = (shape[0],) + shape[2:] + (shape[1],)
    return shape if batched else shape[1:]


def _check_grad_output(grad_output, shape4, batched, geom, op, channels_last=False):
    """grad_output as an (N, C, *out) float view matching the forward's output."""
    g = grad_output if isinstance(grad_output, np.ndarray) else np.asarray(grad_output)
    g = check_dtype(g, FLOAT_DTYPES, op, "grad_output")
    expected = _user_shape(shape4[:2] + geom.out_size, batched, channels_last)
    if g.shape != expected:
        raise ValueError(
            f"{op}: grad_output has shape {g.shape}, but the forward output for "
            f"input_shape {_user_shape(shape4, batched, channels_last)} has shape {expected}"
        )
    return to_nc_first(g if batched else g[np.newaxis], channels_last)


# ---------------------------------------------------------- the fast path
#
# A call with plain arguments (ints, flat int tuples, strings, None; a batched
# ndarray of a native supported dtype; no ``out`` or channels-last; max
# pooling with or without indices)
# whose argument combination and input shape and dtype were validated before
# skips validation: its plan (output shape and the kernel's 3-entry window
# tuples) is looked up by exactly those arguments.  Only plain values enter
# the key, so ``True`` can never stand in for ``1``.  This keeps the cost of
# a call on a tiny array close to the kernel's own.

_PLANS: dict = {}
_PLAN_LIMIT = 1024
_SMALL = 1 << 15   # output elements * window taps below which a call runs serially


def _plain(v):
    t = type(v)
    if t is int or t is str or v is None:
        return True
    if t is tuple:
        for e in v:
            if type(e) is not int:
                return False
        return True
    return False


def _plan(op, nd, x, key, kernel_size, stride, padding, dilation, ceil_mode):
    """The cached plan for ``key``, made (after full validation) on a miss;
    None when the call must take the general path."""
    if not (_plain(kernel_size) and _plain(stride) and _plain(padding)
            and _plain(dilation) and (ceil_mode is True or ceil_mode is False)):
        return None
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    if x.ndim != nd + 2 or x.dtype not in MAX_DTYPES:
        return None
    x4, _ = check_input(x, nd, op, MAX_DTYPES)
    if x4 is not x:
        return None
    geom = pool_geometry(nd, x.shape[2:], kernel_size, stride, padding, dilation,
                         ceil_mode, op)
    fill = 3 - nd
    shape = x.shape[:2] + geom.out_size
    taps = 1
    for k in geom.kernel:
        taps *= k
    plan = (shape, (1,) * fill + geom.kernel, (1,) * fill + geom.stride,
            (1,) * fill + geom.dilation, (0,) * fill + geom.pad_before,
            (0,) * fill + geom.pad_after,
            math.prod(shape) * taps < _SMALL, geom)
    if len(_PLANS) >= _PLAN_LIMIT:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _fast_max(nd, op, x, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices=False):
    if not x.flags.c_contiguous:    # views: the general path picks the layout
        return None
    try:
        key = ("max", nd, x.shape, x.dtype, kernel_size, stride, padding,
               dilation, ceil_mode)
        plan = _plan(op, nd, x, key, kernel_size, stride, padding, dilation,
                     ceil_mode)
    except TypeError:           # unhashable (lists): the general path
        return None             # validates and reports
    if plan is None:
        return None
    _compiled = _backend._compiled   # the active backend (use_compiled())
    out = np.empty(plan[0], x.dtype)
    idx = np.empty(plan[0], np.int64) if return_indices else None
    if plan[6]:
        _compiled._kernels.max_pool_forward(x, out, idx, plan[1], plan[2],
                                            plan[3], plan[4], 1)
    else:
        _compiled.run(_compiled._kernels.max_pool_forward, x, out, idx, plan[1],
                      plan[2], plan[3], plan[4])
    return (out, idx) if return_indices else out


def _fast_avg(nd, op, x, kernel_size, stride, padding, ceil_mode,
              count_include_pad, divisor_override):
    if not x.flags.c_contiguous:
        return None
    if not (count_include_pad is True or count_include_pad is False) or not (
            divisor_override is None or type(divisor_override) is int):
        return None
    try:
        key = ("avg", nd, x.shape, x.dtype, kernel_size, stride, padding, 1,
               ceil_mode, count_include_pad, divisor_override)
        plan = _PLANS.get(key) if (
            _plain(kernel_size) and _plain(stride) and _plain(padding)
            and (ceil_mode is True or ceil_mode is False)) else None
        if plan is None:
            plan = _plan(op, nd, x, key[:-2], kernel_size, stride, padding, 1,
                         ceil_mode)
            if plan is None:
                return None
            _check_divisor(divisor_override)
            _check_divisor_size(plan[7], count_include_pad, divisor_override, op)
            _PLANS[key] = plan
    except TypeError:
        return None
    _compiled = _backend._compiled   # the active backend (use_compiled())
    out = np.empty(plan[0], x.dtype)
    args = (x, out, plan[1], plan[2], plan[4], plan[5], count_include_pad,
            divisor_override or 0, False)
    if plan[6]:
        _compiled._kernels.avg_pool_forward(*args, 1)
    else:
        _compiled.run(_compiled._kernels.avg_pool_forward, *args)
    return out


# --------------------------------------------------------------- max pooling

def _max_pool(nd, op, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    x, batched = check_input(input, nd, op, MAX_DTYPES, channels_last=channels_last)
    geom = pool_geometry(nd, x.shape[2:], kernel_size, stride, padding, dilation,
                         ceil_mode, op)
    return_indices = _check_flag(return_indices, "return_indices")
    shape4 = x.shape[:2] + geom.out_size
    out_idx = None
    if return_indices and isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError(f"{op}: out must be an array or a (values, indices) pair")
        out, out_idx = out
    elif isinstance(out, tuple):
        raise TypeError(f"{op}: out must be an array (a (values, indices) pair only "
                        "with return_indices=True)")
    res, res4 = _result(out, shape4, x.dtype, channels_last, batched, op, "out", (x,))
    idx = idx4 = None
    if return_indices:
        idx, idx4 = _result(out_idx, shape4, np.int64, channels_last, batched, op,
                            "out indices", (x, res))
    _backend.current().max_pool(x, geom, res4, idx4)
    if return_indices:
        return res, idx
    return res


def _max_pool_backward(nd, op, grad_output, indices, input_shape, kernel_size,
                       stride, padding, dilation, ceil_mode, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    shape4, batched = _check_input_shape(input_shape, nd, op, channels_last)
    geom = pool_geometry(nd, shape4[2:], kernel_size, stride, padding, dilation,
                         ceil_mode, op)
    g = _check_grad_output(grad_output, shape4, batched, geom, op, channels_last)
    idx = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array, got dtype {idx.dtype}")
    expected = _user_shape(g.shape, batched, channels_last)
    if idx.shape != expected:
        raise ValueError(
            f"{op}: indices has shape {idx.shape}, expected grad_output's shape {expected}"
        )
    idx = to_nc_first(idx if batched else idx[np.newaxis], channels_last)
    if idx.dtype != np.int64:
        if idx.dtype == np.uint64 and idx.size and idx.max() >= 2**63:
            raise ValueError(f"{op}: indices out of range")
        idx = idx.astype(np.int64)
    grad_input, gi4 = _result(out, shape4, g.dtype, channels_last, batched, op, "out",
                              (grad_output, indices))
    # a caller's out= may be written with non-temporal stores (a fresh
    # result's page faults bring every line in anyway)
    if not _backend.current().max_pool_backward(g, idx, geom, gi4,
                                                 stream=out is not None):
        raise ValueError(
            f"{op}: indices must lie in [0, {int(np.prod(shape4[2:]))}) (flat offsets "
            "into each input plane) or be -1"
        )
    return grad_input


def max_pool1d(input: np.ndarray, kernel_size: int | tuple[int, ...],
               stride: int | tuple[int, ...] | None = None,
               padding: int | str | tuple[int | tuple[int, int], ...] = 0,
               dilation: int | tuple[int, ...] = 1, ceil_mode: bool = False,
               return_indices: bool = False, channels_last: bool = False,
               out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
               ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """1-d max pooling of ``(N, C, L)`` or ``(C, L)`` input.

    Parameters follow ``torch.nn.functional.max_pool1d``: ``stride`` defaults
    to ``kernel_size``; ``padding`` is an int ``<= kernel_size // 2`` (implicit
    ``-inf``), ``"valid"``, ``"same"`` or a ``(before, after)`` pair;
    ``return_indices`` also returns int64 flat indices of each maximum.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.max_pool1d(np.array([[1., 3., 2., 5., 4.]]), 2)
    array([[3., 5.]])
    """
    if (out is None and (return_indices is False or return_indices is True)
            and channels_last is False and type(input) is np.ndarray
            and _backend.use_compiled()):
        res = _fast_max(1, "max_pool1d", input, kernel_size, stride, padding,
                        dilation, ceil_mode, return_indices)
        if res is not None:
            return res
    return _max_pool(1, "max_pool1d", input, kernel_size, stride, padding,
                     dilation, ceil_mode, return_indices, channels_last, out)


def max_pool2d(input: np.ndarray, kernel_size: int | tuple[int, ...],
               stride: int | tuple[int, ...] | None = None,
               padding: int | str | tuple[int | tuple[int, int], ...] = 0,
               dilation: int | tuple[int, ...] = 1, ceil_mode: bool = False,
               return_indices: bool = False, channels_last: bool = False,
               out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
               ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-d max pooling of ``(N, C, H, W)`` or ``(C, H, W)`` input.

    As ``torch.nn.functional.max_pool2d``; ints or per-dimension pairs for
    ``kernel_size``, ``stride``, ``padding`` and ``dilation``.  NaN
    propagates; ties keep the first element in row-major window order.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> cypool.max_pool2d(x, 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]], dtype=float32)
    """
    if (out is None and (return_indices is False or return_indices is True)
            and channels_last is False and type(input) is np.ndarray
            and _backend.use_compiled()):
        res = _fast_max(2, "max_pool2d", input, kernel_size, stride, padding,
                        dilation, ceil_mode, return_indices)
        if res is not None:
            return res
    return _max_pool(2, "max_pool2d", input, kernel_size, stride, padding,
                     dilation, ceil_mode, return_indices, channels_last, out)


def max_pool3d(input: np.ndarray, kernel_size: int | tuple[int, ...],
               stride: int | tuple[int, ...] | None = None,
               padding: int | str | tuple[int | tuple[int, int], ...] = 0,
               dilation: int | tuple[int, ...] = 1, ceil_mode: bool = False,
               return_indices: bool = False, channels_last: bool = False,
               out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
               ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """3-d max pooling of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input.

    As ``torch.nn.functional.max_pool3d``; indices are ``(d*H + h)*W + w``.
    """
    if (out is None and (return_indices is False or return_indices is True)
            and channels_last is False and type(input) is np.ndarray
            and _backend.use_compiled()):
        res = _fast_max(3, "max_pool3d", input, kernel_size, stride, padding,
                        dilation, ceil_mode, return_indices)
        if res is not None:
            return res
    return _max_pool(3, "max_pool3d", input, kernel_size, stride, padding,
                     dilation, ceil_mode, return_indices, channels_last, out)


def max_pool1d_backward(grad_output: np.ndarray, indices: np.ndarray,
                        input_shape: tuple[int, ...],
                        kernel_size: int | tuple[int, ...],
                        stride: int | tuple[int, ...] | None = None,
                        padding: int | str | tuple[int | tuple[int, int], ...] = 0,
                        dilation: int | tuple[int, ...] = 1, ceil_mode: bool = False,
                        channels_last: bool = False,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`max_pool1d` with respect to its input.

    ``indices`` are those the forward returned; each output gradient is added
    to the input element its index names (shared maxima accumulate).
    """
    return _max_pool_backward(1, "max_pool1d_backward", grad_output, indices,
                              input_shape, kernel_size, stride, padding,
                              dilation, ceil_mode, channels_last, out)


def max_pool2d_backward(grad_output: np.ndarray, indices: np.ndarray,
                        input_shape: tuple[int, ...],
                        kernel_size: int | tuple[int, ...],
                        stride: int | tuple[int, ...] | None = None,
                        padding: int | str | tuple[int | tuple[int, int], ...] = 0,
                        dilation: int | tuple[int, ...] = 1, ceil_mode: bool = False,
                        channels_last: bool = False,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`max_pool2d` with respect to its input.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([[[[1., 2.], [4., 3.]]]])
    >>> y, idx = cypool.max_pool2d(x, 2, return_indices=True)
    >>> cypool.max_pool2d_backward(np.ones_like(y), idx, x.shape, 2)
    array([[[[0., 0.],
             [1., 0.]]]])
    """
    return _max_pool_backward(2, "max_pool2d_backward", grad_output, indices,
                              input_shape, kernel_size, stride, padding,
                              dilation, ceil_mode, channels_last, out)


def max_pool3d_backward(grad_output: np.ndarray, indices: np.ndarray,
                        input_shape: tuple[int, ...],
                        kernel_size: int | tuple[int, ...],
                        stride: int | tuple[int, ...] | None = None,
                        padding: int | str | tuple[int | tuple[int, int], ...] = 0,
                        dilation: int | tuple[int, ...] = 1, ceil_mode: bool = False,
                        channels_last: bool = False,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`max_pool3d` with respect to its input."""
    return _max_pool_backward(3, "max_pool3d_backward", grad_output, indices,
                              input_shape, kernel_size, stride, padding,
                              dilation, ceil_mode, channels_last, out)


# ----------------------------------------------------------- average pooling

def _check_divisor_size(geom, count_include_pad, divisor_override, op):
    """The largest average divisor must fit comfortably in 64 bits (every
    kernel computes it as an int64 product): only windows of astronomically
    many taps, with paddings to match, exceed it."""
    if divisor_override is not None:
        return
    largest = 1
    for L, k, b, a in zip(geom.in_size, geom.kernel, geom.pad_before, geom.pad_after):
        largest *= min(k, L + b + a) if count_include_pad else min(k, L)
    if largest > 2**62:
        raise ValueError(
            f"{op}: the average divisor (window size counted over input"
            f"{' and padding' if count_include_pad else ''}) would reach {largest}, "
            f"over 2**62, for kernel_size={geom.kernel}; use smaller windows, "
            "count_include_pad=False or divisor_override"
        )


def _check_rounding(rounding):
    if not isinstance(rounding, str):
        raise TypeError(f"rounding must be 'truncate' or 'nearest', not {type(rounding).__name__}")
    if rounding not in ("truncate", "nearest"):
        raise ValueError(f"rounding must be 'truncate' or 'nearest', got {rounding!r}")
    return rounding


def _avg_pool(nd, op, input, kernel_size, stride, padding, ceil_mode,
              count_include_pad, divisor_override, channels_last, out, rounding):
    channels_last = _check_flag(channels_last, "channels_last")
    rounding = _check_rounding(rounding)
    x, batched = check_input(input, nd, op, MAX_DTYPES, channels_last=channels_last)
    geom = pool_geometry(nd, x.shape[2:], kernel_size, stride, padding, 1,
                         ceil_mode, op)
    count_include_pad = _check_flag(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor(divisor_override)
    _check_divisor_size(geom, count_include_pad, divisor_override, op)
    res, res4 = _result(out, x.shape[:2] + geom.out_size, x.dtype, channels_last,
                        batched, op, "out", (x,))
    _backend.current().avg_pool(x, geom, res4, count_include_pad, divisor_override,
                                rounding)
    return res


def _avg_pool_backward(nd, op, grad_output, input_shape, kernel_size, stride,
                       padding, ceil_mode, count_include_pad, divisor_override,
                       channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    shape4, batched = _check_input_shape(input_shape, nd, op, channels_last)
    geom = pool_geometry(nd, shape4[2:], kernel_size, stride, padding, 1,
                         ceil_mode, op)
    count_include_pad = _check_flag(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor(divisor_override)
    _check_divisor_size(geom, count_include_pad, divisor_override, op)
    g = _check_grad_output(grad_output, shape4, batched, geom, op, channels_last)
    grad_input, gi4 = _result(out, shape4, g.dtype, channels_last, batched, op, "out",
                              (grad_output,))
    # a caller's out= may be written with non-temporal stores
    _backend.current().avg_pool_backward(g, geom, gi4, count_include_pad,
                                         divisor_override, stream=out is not None)
    return grad_input


def avg_pool1d(input: np.ndarray, kernel_size: int | tuple[int, ...],
               stride: int | tuple[int, ...] | None = None,
               padding: int | str | tuple[int | tuple[int, int], ...] = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, channels_last: bool = False,
               out: np.ndarray | None = None, rounding: str = "truncate") -> np.ndarray:
    """1-d average pooling of ``(N, C, L)`` or ``(C, L)`` input.

    As ``torch.nn.functional.avg_pool1d``, plus ``divisor_override`` (which
    torch has only in 2-d and 3-d) and TensorFlow/ONNX-style padding.  With
    ``count_include_pad`` the divisor counts real padding but never the
    ceil-mode overhang.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.avg_pool1d(np.array([[1., 2., 3., 4., 5.]]), 2, ceil_mode=True)
    array([[1.5, 3.5, 5. ]])
    """
    if (out is None and channels_last is False and type(input) is np.ndarray
            and rounding == "truncate" and type(rounding) is str
            and _backend.use_compiled()):
        res = _fast_avg(1, "avg_pool1d", input, kernel_size, stride, padding,
                        ceil_mode, count_include_pad, divisor_override)
        if res is not None:
            return res
    return _avg_pool(1, "avg_pool1d", input, kernel_size, stride, padding,
                     ceil_mode, count_include_pad, divisor_override, channels_last, out,
                     rounding)


def avg_pool2d(input: np.ndarray, kernel_size: int | tuple[int, ...],
               stride: int | tuple[int, ...] | None = None,
               padding: int | str | tuple[int | tuple[int, int], ...] = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, channels_last: bool = False,
               out: np.ndarray | None = None, rounding: str = "truncate") -> np.ndarray:
    """2-d average pooling of ``(N, C, H, W)`` or ``(C, H, W)`` input.

    As ``torch.nn.functional.avg_pool2d``.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16, dtype=np.float64).reshape(1, 4, 4)
    >>> cypool.avg_pool2d(x, 2)
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]])
    """
    if (out is None and channels_last is False and type(input) is np.ndarray
            and rounding == "truncate" and type(rounding) is str
            and _backend.use_compiled()):
        res = _fast_avg(2, "avg_pool2d", input, kernel_size, stride, padding,
                        ceil_mode, count_include_pad, divisor_override)
        if res is not None:
            return res
    return _avg_pool(2, "avg_pool2d", input, kernel_size, stride, padding,
                     ceil_mode, count_include_pad, divisor_override, channels_last, out,
                     rounding)


def avg_pool3d(input: np.ndarray, kernel_size: int | tuple[int, ...],
               stride: int | tuple[int, ...] | None = None,
               padding: int | str | tuple[int | tuple[int, int], ...] = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, channels_last: bool = False,
               out: np.ndarray | None = None, rounding: str = "truncate") -> np.ndarray:
    """3-d average pooling of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input.

    As ``torch.nn.functional.avg_pool3d``, except that inputs smaller than the
    kernel are accepted whenever the output is non-empty.
    """
    if (out is None and channels_last is False and type(input) is np.ndarray
            and rounding == "truncate" and type(rounding) is str
            and _backend.use_compiled()):
        res = _fast_avg(3, "avg_pool3d", input, kernel_size, stride, padding,
                        ceil_mode, count_include_pad, divisor_override)
        if res is not None:
            return res
    return _avg_pool(3, "avg_pool3d", input, kernel_size, stride, padding,
                     ceil_mode, count_include_pad, divisor_override, channels_last, out,
                     rounding)


def avg_pool1d_backward(grad_output: np.ndarray, input_shape: tuple[int, ...],
                        kernel_size: int | tuple[int, ...],
                        stride: int | tuple[int, ...] | None = None,
                        padding: int | str | tuple[int | tuple[int, int], ...] = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None,
                        channels_last: bool = False,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`avg_pool1d`: each output gradient, divided by its
    divisor, is added to every input element of its window."""
    return _avg_pool_backward(1, "avg_pool1d_backward", grad_output, input_shape,
                              kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override, channels_last, out)


def avg_pool2d_backward(grad_output: np.ndarray, input_shape: tuple[int, ...],
                        kernel_size: int | tuple[int, ...],
                        stride: int | tuple[int, ...] | None = None,
                        padding: int | str | tuple[int | tuple[int, int], ...] = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None,
                        channels_last: bool = False,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`avg_pool2d` with respect to its input."""
    return _avg_pool_backward(2, "avg_pool2d_backward", grad_output, input_shape,
                              kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override, channels_last, out)


def avg_pool3d_backward(grad_output: np.ndarray, input_shape: tuple[int, ...],
                        kernel_size: int | tuple[int, ...],
                        stride: int | tuple[int, ...] | None = None,
                        padding: int | str | tuple[int | tuple[int, int], ...] = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None,
                        channels_last: bool = False,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`avg_pool3d` with respect to its input."""
    return _avg_pool_backward(3, "avg_pool3d_backward", grad_output, input_shape,
                              kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override, channels_last, out)
