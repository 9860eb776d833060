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
"""

from __future__ import annotations

import operator

import numpy as np

from . import _backend
from ._params import (FLOAT_DTYPES, MAX_DTYPES, check_dtype, check_input,
                      pool_geometry)

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
    if not -(2**63) <= value < 2**63:
        raise ValueError("divisor_override must fit in 64 bits")
    return value


def _check_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return bool(value)


def _check_input_shape(input_shape, nd, op):
    """``input_shape`` of a backward call as a tuple; returns (shape4, batched)."""
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
        raise ValueError(
            f"{op}: input_shape must have {nd + 1} or {nd + 2} entries, got {tuple(shape)}"
        )
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: input_shape must be non-negative, got {tuple(shape)}")
    if any(s == 0 for s in shape[-nd:]):
        raise ValueError(
            f"{op}: input_shape has a zero-size spatial dimension: {tuple(shape)}"
        )
    batched = len(shape) == nd + 2
    if not batched:
        shape = [1] + shape
    return tuple(shape), batched


def _check_grad_output(grad_output, shape4, batched, geom, op):
    """grad_output as (N, C, *out) float array matching the forward's output."""
    g = grad_output if isinstance(grad_output, np.ndarray) else np.asarray(grad_output)
    g = check_dtype(g, FLOAT_DTYPES, op, "grad_output")
    expected = shape4[:2] + geom.out_size
    if not batched:
        expected = expected[1:]
    if g.shape != expected:
        raise ValueError(
            f"{op}: grad_output has shape {g.shape}, but the forward output for "
            f"input_shape {shape4 if batched else shape4[1:]} has shape {expected}"
        )
    return g if batched else g[np.newaxis]


def _unbatch(a, batched):
    return a if batched else a[0]


# --------------------------------------------------------------- max pooling

def _max_pool(nd, op, input, kernel_size, stride, padding, dilation, ceil_mode,
              return_indices):
    x, batched = check_input(input, nd, op, MAX_DTYPES)
    geom = pool_geometry(nd, x.shape[2:], kernel_size, stride, padding, dilation,
                         ceil_mode, op)
    return_indices = _check_flag(return_indices, "return_indices")
    out = np.empty(x.shape[:2] + geom.out_size, dtype=x.dtype)
    idx = np.empty(out.shape, dtype=np.int64) if return_indices else None
    _backend.current().max_pool(x, geom, out, idx)
    if return_indices:
        return _unbatch(out, batched), _unbatch(idx, batched)
    return _unbatch(out, batched)


def _max_pool_backward(nd, op, grad_output, indices, input_shape, kernel_size,
                       stride, padding, dilation, ceil_mode):
    shape4, batched = _check_input_shape(input_shape, nd, op)
    geom = pool_geometry(nd, shape4[2:], kernel_size, stride, padding, dilation,
                         ceil_mode, op)
    g = _check_grad_output(grad_output, shape4, batched, geom, op)
    idx = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array, got dtype {idx.dtype}")
    idx = idx if batched else idx[np.newaxis]
    if idx.shape != g.shape:
        raise ValueError(
            f"{op}: indices has shape {idx.shape if batched else idx.shape[1:]}, "
            f"expected grad_output's shape {g.shape if batched else g.shape[1:]}"
        )
    if idx.dtype != np.int64:
        if idx.dtype == np.uint64 and idx.size and idx.max() >= 2**63:
            raise ValueError(f"{op}: indices out of range")
        idx = idx.astype(np.int64)
    grad_input = np.empty(shape4, dtype=g.dtype)
    if not _backend.current().max_pool_backward(g, idx, geom, grad_input):
        raise ValueError(
            f"{op}: indices must lie in [0, {int(np.prod(shape4[2:]))}) (flat offsets "
            "into each input plane) or be -1"
        )
    return _unbatch(grad_input, batched)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode=False, return_indices=False):
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
    return _max_pool(1, "max_pool1d", input, kernel_size, stride, padding,
                     dilation, ceil_mode, return_indices)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode=False, return_indices=False):
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
    return _max_pool(2, "max_pool2d", input, kernel_size, stride, padding,
                     dilation, ceil_mode, return_indices)


def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode=False, return_indices=False):
    """3-d max pooling of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` input.

    As ``torch.nn.functional.max_pool3d``; indices are ``(d*H + h)*W + w``.
    """
    return _max_pool(3, "max_pool3d", input, kernel_size, stride, padding,
                     dilation, ceil_mode, return_indices)


def max_pool1d_backward(grad_output, indices, input_shape, kernel_size,
                        stride=None, padding=0, dilation=1, ceil_mode=False):
    """Gradient of :func:`max_pool1d` with respect to its input.

    ``indices`` are those the forward returned; each output gradient is added
    to the input element its index names (shared maxima accumulate).
    """
    return _max_pool_backward(1, "max_pool1d_backward", grad_output, indices,
                              input_shape, kernel_size, stride, padding,
                              dilation, ceil_mode)


def max_pool2d_backward(grad_output, indices, input_shape, kernel_size,
                        stride=None, padding=0, dilation=1, ceil_mode=False):
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
                              dilation, ceil_mode)


def max_pool3d_backward(grad_output, indices, input_shape, kernel_size,
                        stride=None, padding=0, dilation=1, ceil_mode=False):
    """Gradient of :func:`max_pool3d` with respect to its input."""
    return _max_pool_backward(3, "max_pool3d_backward", grad_output, indices,
                              input_shape, kernel_size, stride, padding,
                              dilation, ceil_mode)


# ----------------------------------------------------------- average pooling

def _avg_pool(nd, op, input, kernel_size, stride, padding, ceil_mode,
              count_include_pad, divisor_override):
    x, batched = check_input(input, nd, op, FLOAT_DTYPES)
    geom = pool_geometry(nd, x.shape[2:], kernel_size, stride, padding, 1,
                         ceil_mode, op)
    count_include_pad = _check_flag(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor(divisor_override)
    out = np.empty(x.shape[:2] + geom.out_size, dtype=x.dtype)
    _backend.current().avg_pool(x, geom, out, count_include_pad, divisor_override)
    return _unbatch(out, batched)


def _avg_pool_backward(nd, op, grad_output, input_shape, kernel_size, stride,
                       padding, ceil_mode, count_include_pad, divisor_override):
    shape4, batched = _check_input_shape(input_shape, nd, op)
    geom = pool_geometry(nd, shape4[2:], kernel_size, stride, padding, 1,
                         ceil_mode, op)
    count_include_pad = _check_flag(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor(divisor_override)
    g = _check_grad_output(grad_output, shape4, batched, geom, op)
    grad_input = np.empty(shape4, dtype=g.dtype)
    _backend.current().avg_pool_backward(g, geom, grad_input, count_include_pad,
                                         divisor_override)
    return _unbatch(grad_input, batched)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """1-d average pooling of ``(N, C, L)`` or ``(C, L)`` float input.

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
    return _avg_pool(1, "avg_pool1d", input, kernel_size, stride, padding,
                     ceil_mode, count_include_pad, divisor_override)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-d average pooling of ``(N, C, H, W)`` or ``(C, H, W)`` float input.

    As ``torch.nn.functional.avg_pool2d``.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16, dtype=np.float64).reshape(1, 4, 4)
    >>> cypool.avg_pool2d(x, 2)
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]])
    """
    return _avg_pool(2, "avg_pool2d", input, kernel_size, stride, padding,
                     ceil_mode, count_include_pad, divisor_override)


def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """3-d average pooling of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` float input.

    As ``torch.nn.functional.avg_pool3d``, except that inputs smaller than the
    kernel are accepted whenever the output is non-empty.
    """
    return _avg_pool(3, "avg_pool3d", input, kernel_size, stride, padding,
                     ceil_mode, count_include_pad, divisor_override)


def avg_pool1d_backward(grad_output, input_shape, kernel_size, stride=None,
                        padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None):
    """Gradient of :func:`avg_pool1d`: each output gradient, divided by its
    divisor, is added to every input element of its window."""
    return _avg_pool_backward(1, "avg_pool1d_backward", grad_output, input_shape,
                              kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override)


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None,
                        padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None):
    """Gradient of :func:`avg_pool2d` with respect to its input."""
    return _avg_pool_backward(2, "avg_pool2d_backward", grad_output, input_shape,
                              kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override)


def avg_pool3d_backward(grad_output, input_shape, kernel_size, stride=None,
                        padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None):
    """Gradient of :func:`avg_pool3d` with respect to its input."""
    return _avg_pool_backward(3, "avg_pool3d_backward", grad_output, input_shape,
                              kernel_size, stride, padding, ceil_mode,
                              count_include_pad, divisor_override)
