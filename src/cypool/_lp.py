"""Lp (power-average) pooling, forward and backward.

``lp_pool{1,2,3}d`` follow PyTorch 2.13's composite definition
(``torch.nn.functional.lp_pool{1,2,3}d``) exactly::

    p finite:  y = (sign(a) * relu(|a|) * prod(kernel_size)) ** (1/p),
               a = avg_pool(x ** p, kernel_size, stride, padding=0, ceil_mode)
    p = inf:   y = max_pool(|x|)           p = -inf:  y = -max_pool(-|x|)

Consequences worth knowing (all as in PyTorch):

* There is **no abs** on the input for finite ``p``: ``p=1`` is the signed
  window sum, an odd integer ``p`` gives NaN where a window's sum of
  ``x**p`` is negative, and a fractional ``p`` gives NaN as soon as one
  input of the window is negative (pytorch/pytorch#184037; ONNX's LpPool
  uses ``|x|**p`` instead).
* With ``ceil_mode`` an edge window, clipped by the input's end, averages
  over its in-bounds elements and is then scaled by the full kernel size:
  ``[1, 2, 3, 4, 5]``, ``p=2, k=2`` gives ``sqrt(2 * 25)`` for the last one.
* Negative ``p`` is accepted; ``p = ±inf`` is the largest / smallest ``|x|``
  of each window (NaN propagates, ties keep the first element).

Differences from PyTorch: ``norm_type=0`` raises ValueError (PyTorch:
ZeroDivisionError), a NaN or bool ``norm_type`` is rejected, and integer
input raises TypeError for every ``norm_type`` (PyTorch accepts int64 for
finite ``p``, computing the average by truncating integer division).

The backward functions give the gradient autograd computes for that
composite: zero for a window whose sum of ``x**p`` is zero, the edge
windows' rescaling included, and for ``p = ±inf`` the max-pooling gradient
(to the first extreme element of each window) times ``sign(x)``.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

from . import _backend
from ._params import FLOAT_DTYPES, check_input, pool_geometry
from ._pooling import _check_flag, _check_grad_output, _result, _user_shape

# fresh results larger than this are mapped afresh by glibc on every call
# (the largest value of its adaptive mmap threshold)
_FRESH_MAPPED = 32 << 20

__all__ = [
    "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "lp_pool1d_backward", "lp_pool2d_backward", "lp_pool3d_backward",
]


def _check_norm(norm_type, op):
    """``norm_type`` as a Python float: non-zero, not NaN, ``±inf`` allowed."""
    if isinstance(norm_type, (bool, np.bool_)):
        raise TypeError(f"{op}: norm_type must be a real number, not bool")
    if isinstance(norm_type, np.ndarray) and norm_type.ndim == 0:
        norm_type = norm_type[()]
    if not isinstance(norm_type, numbers.Real):
        raise TypeError(
            f"{op}: norm_type must be a real number, not {type(norm_type).__name__}"
        )
    try:
        p = float(norm_type)
    except OverflowError:
        p = math.inf if norm_type > 0 else -math.inf
    if math.isnan(p):
        raise ValueError(f"{op}: norm_type must not be NaN")
    if p == 0:
        raise ValueError(
            f"{op}: norm_type must be non-zero (the root 1/norm_type is undefined for 0)"
        )
    return p


def _as5d(a, nd):
    """An ``(N, C, *spatial)`` view as ``(N, C, D, H, W)`` (singleton axes in
    front of the spatial ones)."""
    return a[(slice(None), slice(None)) + (None,) * (3 - nd)]


def _three(values, fill):
    return (fill,) * (3 - len(values)) + tuple(values)


def _geometry(nd, x, kernel_size, stride, ceil_mode, op):
    return pool_geometry(nd, x.shape[2:], kernel_size, stride, 0, 1, ceil_mode, op)


def _lp_pool(nd, op, input, norm_type, kernel_size, stride, ceil_mode,
             channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    p = _check_norm(norm_type, op)
    x, batched = check_input(input, nd, op, FLOAT_DTYPES, channels_last=channels_last)
    geom = _geometry(nd, x, kernel_size, stride, ceil_mode, op)
    res, res4 = _result(out, x.shape[:2] + geom.out_size, x.dtype, channels_last,
                        batched, op, "out", (x,))
    if res4.size == 0:
        return res
    if _backend.use_compiled():
        from . import _compiled

        # non-temporal stores for a large result (the kernels' threshold):
        # into a caller's out=, or a fresh one under 32 MiB, which glibc
        # serves from memory freed by earlier calls (larger fresh results
        # are mapped afresh, their page faults leave them in the cache, and
        # streamed they measured 0.93-0.97x)
        stream = _compiled._kernels._streams(res4.nbytes) and (
            out is not None or res4.nbytes < _FRESH_MAPPED)
        _compiled.run(functools.partial(_compiled.family("_lp").lp_pool_forward,
                                        stream=stream),
                      _as5d(x, nd), _as5d(res4, nd), _three(geom.kernel, 1),
                      _three(geom.stride, 1), p)
    else:
        from . import _reference_lp

        _reference_lp.lp_pool(x, geom, p, res4)
    return res


def _lp_pool_backward(nd, op, grad_output, input, output, norm_type, kernel_size,
                      stride, ceil_mode, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    p = _check_norm(norm_type, op)
    x, batched = check_input(input, nd, op, FLOAT_DTYPES, channels_last=channels_last)
    geom = _geometry(nd, x, kernel_size, stride, ceil_mode, op)
    g = _check_grad_output(grad_output, x.shape, batched, geom, op, channels_last)
    if g.dtype != x.dtype:
        raise TypeError(
            f"{op}: grad_output dtype {g.dtype} must equal the input's dtype {x.dtype}"
        )
    y = output if isinstance(output, np.ndarray) else np.asarray(output)
    expected = _user_shape(g.shape, batched, channels_last)
    if y.shape != expected:
        raise ValueError(
            f"{op}: output has shape {y.shape}, but the forward output for this "
            f"input has shape {expected}"
        )
    if y.dtype.newbyteorder("=") != x.dtype:
        raise TypeError(f"{op}: output dtype {y.dtype} must equal the input's dtype {x.dtype}")
    grad_input, gi4 = _result(out, x.shape, x.dtype, channels_last, batched, op, "out",
                              (input, grad_output, output))
    if gi4.size == 0:
        return grad_input
    if _backend.use_compiled():
        from . import _compiled

        _compiled.run(_compiled.family("_lp").lp_pool_backward,
                      _as5d(g, nd), _as5d(x, nd), _as5d(gi4, nd),
                      _three(geom.kernel, 1), _three(geom.stride, 1), p)
    else:
        from . import _reference_lp

        _reference_lp.lp_pool_backward(g, x, geom, p, gi4)
    return grad_input


_FORWARD_DOC = """{nd}-d Lp (power-average) pooling of ``{bat}`` or ``{unb}`` input.

    As ``torch.nn.functional.lp_pool{nd}d`` (PyTorch 2.13's composite, see
    :mod:`cypool._lp`): ``(sign(a) * relu(|a|) * prod(kernel_size)) ** (1/p)``
    with ``a`` the window average of ``input ** p`` (no abs), ``max(|x|)``
    for ``p = inf`` and ``min(|x|)`` for ``p = -inf``.

    Parameters
    ----------
    input : ndarray
        float32 or float64, any strides; ``channels_last=True`` for
        ``(N, {sp}, C)`` arrays.
    norm_type : float
        ``p``: any non-zero real number, or ``±inf``.
    kernel_size, stride : int or tuple of {nd} ints
        ``stride`` defaults to ``kernel_size``.  No padding.
    ceil_mode : bool
        Keep partial windows at the end (rescaled to the full kernel size).
    channels_last : bool, keyword-only
    out : ndarray, optional, keyword-only
        Preallocated C-contiguous result of the output's shape and dtype.

    Returns
    -------
    ndarray
        The pooled array, input's dtype and layout.
{example}"""

_BACKWARD_DOC = """Gradient of :func:`lp_pool{nd}d` with respect to its input.

    The gradient PyTorch's autograd gives for the composite: zero where a
    window's sum of ``input ** p`` is zero, NaN where PyTorch's is (e.g.
    ``0 ** (p-1)`` with ``p < 1``); for ``p = ±inf`` each output gradient
    goes to the first element of its window with the largest (smallest)
    ``|x|``, times ``sign(x)``.

    Parameters
    ----------
    grad_output : ndarray
        Gradient of the loss with respect to the forward's output (the
        input's dtype).
    input : ndarray
        The forward's input.
    output : ndarray
        The forward's output; its shape and dtype are checked, and the
        gradient is recomputed from ``input`` (no saved state is trusted).
    norm_type, kernel_size, stride, ceil_mode, channels_last :
        As in the forward call.
    out : ndarray, optional, keyword-only
        Preallocated C-contiguous result of the input's shape and dtype.

    Returns
    -------
    ndarray
        The gradient with respect to ``input``.
"""


def lp_pool1d(input: np.ndarray, norm_type: float,
              kernel_size: int | tuple[int, ...],
              stride: int | tuple[int, ...] | None = None,
              ceil_mode: bool = False, *, channels_last: bool = False,
              out: np.ndarray | None = None) -> np.ndarray:
    return _lp_pool(1, "lp_pool1d", input, norm_type, kernel_size, stride, ceil_mode,
                    channels_last, out)


def lp_pool2d(input: np.ndarray, norm_type: float,
              kernel_size: int | tuple[int, ...],
              stride: int | tuple[int, ...] | None = None,
              ceil_mode: bool = False, *, channels_last: bool = False,
              out: np.ndarray | None = None) -> np.ndarray:
    return _lp_pool(2, "lp_pool2d", input, norm_type, kernel_size, stride, ceil_mode,
                    channels_last, out)


def lp_pool3d(input: np.ndarray, norm_type: float,
              kernel_size: int | tuple[int, ...],
              stride: int | tuple[int, ...] | None = None,
              ceil_mode: bool = False, *, channels_last: bool = False,
              out: np.ndarray | None = None) -> np.ndarray:
    return _lp_pool(3, "lp_pool3d", input, norm_type, kernel_size, stride, ceil_mode,
                    channels_last, out)


def lp_pool1d_backward(grad_output: np.ndarray, input: np.ndarray, output: np.ndarray,
                       norm_type: float, kernel_size: int | tuple[int, ...],
                       stride: int | tuple[int, ...] | None = None,
                       ceil_mode: bool = False, *, channels_last: bool = False,
                       out: np.ndarray | None = None) -> np.ndarray:
    return _lp_pool_backward(1, "lp_pool1d_backward", grad_output, input, output,
                             norm_type, kernel_size, stride, ceil_mode, channels_last,
                             out)


def lp_pool2d_backward(grad_output: np.ndarray, input: np.ndarray, output: np.ndarray,
                       norm_type: float, kernel_size: int | tuple[int, ...],
                       stride: int | tuple[int, ...] | None = None,
                       ceil_mode: bool = False, *, channels_last: bool = False,
                       out: np.ndarray | None = None) -> np.ndarray:
    return _lp_pool_backward(2, "lp_pool2d_backward", grad_output, input, output,
                             norm_type, kernel_size, stride, ceil_mode, channels_last,
                             out)


def lp_pool3d_backward(grad_output: np.ndarray, input: np.ndarray, output: np.ndarray,
                       norm_type: float, kernel_size: int | tuple[int, ...],
                       stride: int | tuple[int, ...] | None = None,
                       ceil_mode: bool = False, *, channels_last: bool = False,
                       out: np.ndarray | None = None) -> np.ndarray:
    return _lp_pool_backward(3, "lp_pool3d_backward", grad_output, input, output,
                             norm_type, kernel_size, stride, ceil_mode, channels_last,
                             out)


_EXAMPLES = {
    1: """
    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.lp_pool1d(np.array([[3., 4., 1., 2., 5.]]), 2, 2, ceil_mode=True)
    array([[5.        , 2.23606798, 7.07106781]])
""",
    2: """
    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([[[[3., 4.], [0., 0.]]]])
    >>> cypool.lp_pool2d(x, 2, 2)
    array([[[[5.]]]])
""",
    3: "",
}
_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
for _nd, _f in ((1, lp_pool1d), (2, lp_pool2d), (3, lp_pool3d)):
    _f.__doc__ = _FORWARD_DOC.format(
        nd=_nd, sp=_SPATIAL[_nd], bat=f"(N, C, {_SPATIAL[_nd]})",
        unb=f"(C, {_SPATIAL[_nd]})", example=_EXAMPLES[_nd])
for _nd, _f in ((1, lp_pool1d_backward), (2, lp_pool2d_backward),
                (3, lp_pool3d_backward)):
    _f.__doc__ = _BACKWARD_DOC.format(nd=_nd)
del _nd, _f
