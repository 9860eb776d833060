"""Adaptive, global and spatial pyramid pooling, forward and backward.

Adaptive pooling fixes the output size instead of the window: each spatial
dimension of length ``In`` is split into ``Out`` bins, bin ``i`` covering
``[floor(i*In/Out), ceil((i+1)*In/Out))`` (PyTorch's rule, computed in exact
integer arithmetic).  Bins are never empty, neighbouring bins may overlap,
and ``Out > In`` repeats elements.  ``output_size`` is an int or a tuple of
one entry per spatial dimension; an entry ``None`` keeps that input size, 0
gives an empty output.

* ``adaptive_max_pool{1,2,3}d``: the bin's maximum with PyTorch's NaN and tie
  rules (NaN wins, the first maximum in row-major scan order is taken), all
  eight dtypes, optional int64 indices (flat offsets ``(d*H + h)*W + w`` into
  each input plane).
* ``adaptive_avg_pool{1,2,3}d``: the bin's mean; integer input is summed in
  int64 and divided exactly (``rounding="truncate"`` toward zero, or
  ``"nearest"`` with ties to even), the result in the input's dtype.
* ``global_max_pool`` / ``global_avg_pool``: one value per ``(n, c)`` plane of
  ``(N, C, *spatial)`` input with 1 to 3 spatial dimensions (a classifier's
  last layer); a dedicated plane reduction in the compiled backend.
* ``spatial_pyramid_pool{1,2,3}d``: the fixed-length concatenation of
  adaptive pools at several levels (He et al., 2014).

Every function takes the keywords ``channels_last`` and ``out`` as described
in :mod:`cypool._pooling`; backward functions are named ``<op>_backward``.
Max results and indices are identical in both backends; float averages
agree within rounding (the compiled backend sums every bin in one order, so
its channels-last results are bit for bit its transposed planar results).
"""

from __future__ import annotations

import math
import operator
from types import SimpleNamespace
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _backend
from . import _reference_adaptive as _ref
from ._params import (FLOAT_DTYPES, LIMIT, MAX_DTYPES, check_dtype, check_input,
                      layout_names, to_nc_first)
from ._pooling import (_check_flag, _check_input_shape, _check_rounding, _result,
                       _user_shape)

__all__ = [
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d_backward",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_backward",
    "global_max_pool", "global_avg_pool",
    "global_max_pool_backward", "global_avg_pool_backward",
    "spatial_pyramid_pool1d", "spatial_pyramid_pool2d", "spatial_pyramid_pool3d",
    "spatial_pyramid_pool",
    "spatial_pyramid_pool1d_backward", "spatial_pyramid_pool2d_backward",
    "spatial_pyramid_pool3d_backward", "spatial_pyramid_pool_backward",
]

OutputSize = Union[int, None, Sequence[Optional[int]]]


# ------------------------------------------------------------------ helpers

def _as5d(a, nd):
    """An ``(N, C, *spatial)`` view as 5-d ``(N, C, D, H, W)`` for the kernels."""
    return a[(slice(None), slice(None)) + (None,) * (3 - nd)]


def _kernels():
    from . import _compiled

    return _compiled, _compiled.family("_adaptive")


def _output_size(output_size, in_size, op):
    """``output_size`` (an int, None, or a tuple of ``nd`` ints or Nones) as a
    tuple of ``nd`` non-negative ints; None keeps the input size."""
    nd = len(in_size)
    if isinstance(output_size, np.ndarray) and output_size.ndim == 0:
        output_size = output_size[()]
    if isinstance(output_size, (tuple, list, np.ndarray)):
        if len(output_size) != nd:
            raise ValueError(
                f"{op}: output_size must be an integer or a tuple of {nd} entries "
                f"(integers or None), got {len(output_size)} entries"
            )
        entries = list(output_size)
    elif isinstance(output_size, (str, bytes)):
        raise TypeError(f"{op}: output_size must be an integer or a tuple, not str")
    else:
        entries = [output_size] * nd
    sizes = []
    for e, n_in in zip(entries, in_size):
        if e is None:
            sizes.append(n_in)
            continue
        if isinstance(e, (bool, np.bool_)):
            raise TypeError(f"{op}: output_size entries must be integers or None, not bool")
        try:
            v = operator.index(e)
        except TypeError:
            raise TypeError(
                f"{op}: output_size entries must be integers or None, "
                f"not {type(e).__name__}"
            ) from None
        if v < 0:
            raise ValueError(
                f"{op}: output_size entries must be >= 0 (0 gives an empty output), "
                f"got {tuple(entries) if nd > 1 else v}"
            )
        if v > LIMIT:
            raise ValueError(f"{op}: output_size entries must be at most 2**62, got {v}")
        sizes.append(v)
    return tuple(sizes)


def _split_out(out, return_indices, op):
    if return_indices and isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError(f"{op}: out must be an array or a (values, indices) pair")
        return out
    if isinstance(out, tuple):
        raise TypeError(f"{op}: out must be an array (a (values, indices) pair only "
                        "with return_indices=True)")
    return out, None


def _grad(grad_output, op):
    g = grad_output if isinstance(grad_output, np.ndarray) else np.asarray(grad_output)
    return check_dtype(g, FLOAT_DTYPES, op, "grad_output")


def _grad_view(g, shape4, batched, channels_last, op):
    """``grad_output`` (already an ndarray) as an ``(N, C, *out)`` view; its
    spatial shape is the forward's output size."""
    nd = len(shape4) - 2
    unb, bat = layout_names(nd, channels_last)
    want_ndim = nd + 2 if batched else nd + 1
    if g.ndim != want_ndim:
        raise ValueError(
            f"{op}: grad_output must be {want_ndim}-D {bat if batched else unb} like "
            f"input_shape, got shape {g.shape}"
        )
    g4 = to_nc_first(g if batched else g[np.newaxis], channels_last)
    if g4.shape[:2] != tuple(shape4[:2]):
        raise ValueError(
            f"{op}: grad_output has shape {g.shape}, whose batch/channel sizes differ "
            f"from input_shape {_user_shape(shape4, batched, channels_last)}"
        )
    return g4


def _indices_view(indices, g, batched, channels_last, op):
    idx = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array, got dtype {idx.dtype}")
    if idx.shape != g.shape:
        raise ValueError(
            f"{op}: indices has shape {idx.shape}, expected grad_output's shape {g.shape}"
        )
    idx = to_nc_first(idx if batched else idx[np.newaxis], channels_last)
    if idx.dtype != np.int64:
        if idx.dtype == np.uint64 and idx.size and idx.max() >= 2**63:
            raise ValueError(f"{op}: indices out of range")
        idx = idx.astype(np.int64)
    return idx


def _scatter_max(g4, idx4, in_size, gi4, op):
    """Max backward through indices (both backends' max_pool_backward)."""
    if g4.size == 0 or gi4.size == 0:
        gi4[...] = 0
        return
    geom = SimpleNamespace(nd=len(in_size), in_size=tuple(in_size),
                           out_size=tuple(g4.shape[2:]))
    if not _backend.current().max_pool_backward(g4, idx4, geom, gi4):
        raise ValueError(
            f"{op}: indices must lie in [0, {math.prod(in_size)}) (flat offsets "
            "into each input plane) or be -1"
        )


# --------------------------------------------------------- adaptive max pool

def _tiling_kernel(in_size, out_size):
    """Each input size a multiple of its output size: the bins are then the
    windows of kernel = stride = in // out without padding (PyTorch's bin
    rule gives start = i*k, end = (i+1)*k), and the compiled pooling kernels
    run instead of the bin loops (the same values and indices; averages
    within rounding).  One bin per plane keeps the global kernels.  Their small-plane paths measured 1.5x (average) to
    4.7x (max with indices) faster on (32, 512, 14, 14) -> 7x7, and 2.2x on
    a (32, 64, 112, 112) -> 56x56 average (AMD EPYC, 1 thread)."""
    if any(o != 1 for o in out_size) and all(
            o > 0 and i % o == 0 for i, o in zip(in_size, out_size)):
        return (1,) * (3 - len(in_size)) + tuple(i // o for i, o in zip(in_size, out_size))
    return None


def _max_forward(x, res4, idx4):
    """Dispatch adaptive max pooling of an ``(N, C, *spatial)`` view."""
    if res4.size == 0:
        return
    nd = x.ndim - 2
    if _backend.use_compiled():
        comp, k = _kernels()
        kt = _tiling_kernel(x.shape[2:], res4.shape[2:])
        if kt is not None:
            comp.run(comp._kernels.max_pool_forward, _as5d(x, nd), _as5d(res4, nd),
                     None if idx4 is None else _as5d(idx4, nd), kt, kt, (1, 1, 1),
                     (0, 0, 0))
            return
        # one bin per plane: global max pooling's kernel (the same values
        # and indices, several times faster than the bin loops)
        kernel = (k.global_max_forward if all(s == 1 for s in res4.shape[2:])
                  else k.adaptive_max_forward)
        comp.run(kernel, _as5d(x, nd), _as5d(res4, nd),
                 None if idx4 is None else _as5d(idx4, nd))
    else:
        _ref.adaptive_max_pool(x, res4.shape[2:], res4, idx4)


def _avg_forward(x, res4, rounding):
    if res4.size == 0:
        return
    nd = x.ndim - 2
    if _backend.use_compiled():
        comp, k = _kernels()
        kt = _tiling_kernel(x.shape[2:], res4.shape[2:])
        if kt is not None and any(t > 1 for t in kt):
            comp.run(comp._kernels.avg_pool_forward, _as5d(x, nd), _as5d(res4, nd), kt, kt,
                     (0, 0, 0), (0, 0, 0), True, 0, rounding == "nearest")
            return
        # one bin per plane: global average pooling's kernel (its eight-lane
        # sum rounds differently from the bin loops' row order, within float
        # rounding; integers exactly alike), as the backward already does
        kernel = (k.global_avg_forward if all(s == 1 for s in res4.shape[2:])
                  else k.adaptive_avg_forward)
        comp.run(kernel, _as5d(x, nd), _as5d(res4, nd), rounding == "nearest")
    else:
        _ref.adaptive_avg_pool(x, res4.shape[2:], res4, rounding)


def _avg_backward(g4, gi4):
    if gi4.size == 0:
        return
    if g4.size == 0:
        gi4[...] = 0
        return
    nd = g4.ndim - 2
    if _backend.use_compiled():
        comp, k = _kernels()
        # one bin per plane: PyTorch's mean, global pooling's gradient
        kernel = (k.global_avg_backward if all(s == 1 for s in g4.shape[2:])
                  else k.adaptive_avg_backward)
        comp.run(kernel, _as5d(g4, nd), _as5d(gi4, nd))
    else:
        _ref.adaptive_avg_pool_backward(g4, gi4.shape[2:], gi4)


def _adaptive_max(nd, op, input, output_size, return_indices, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    return_indices = _check_flag(return_indices, "return_indices")
    x, batched = check_input(input, nd, op, MAX_DTYPES, channels_last=channels_last)
    osz = _output_size(output_size, x.shape[2:], op)
    shape4 = x.shape[:2] + osz
    out, out_idx = _split_out(out, return_indices, op)
    res, res4 = _result(out, shape4, x.dtype, channels_last, batched, op, "out", (x,))
    idx = idx4 = None
    if return_indices:
        idx, idx4 = _result(out_idx, shape4, np.int64, channels_last, batched, op,
                            "out indices", (x, res))
    _max_forward(x, res4, idx4)
    return (res, idx) if return_indices else res


def _adaptive_max_backward(nd, op, grad_output, indices, input_shape, channels_last,
                           out):
    channels_last = _check_flag(channels_last, "channels_last")
    shape4, batched = _check_input_shape(input_shape, nd, op, channels_last)
    g = _grad(grad_output, op)
    g4 = _grad_view(g, shape4, batched, channels_last, op)
    idx4 = _indices_view(indices, g, batched, channels_last, op)
    grad_input, gi4 = _result(out, shape4, g.dtype, channels_last, batched, op, "out",
                              (grad_output, indices))
    _scatter_max(g4, idx4, shape4[2:], gi4, op)
    return grad_input


def adaptive_max_pool1d(input: np.ndarray, output_size: OutputSize,
                        return_indices: bool = False, *, channels_last: bool = False,
                        out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
                        ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """1-d adaptive max pooling of ``(N, C, L)`` or ``(C, L)`` input.

    Parameters
    ----------
    input : ndarray
        Any of float32/64, int8/16/32/64, uint8/16; any strides.
    output_size : int or (int or None,)
        Output length; None keeps ``L``; 0 gives an empty output.
    return_indices : bool
        Also return the int64 position of each maximum within its plane.
    channels_last : bool
        Arrays are ``(N, L, C)`` / ``(L, C)``.
    out : ndarray or (ndarray, ndarray), optional
        Preallocated result (a ``(values, indices)`` pair with indices).

    Returns
    -------
    ndarray, or (ndarray, ndarray) with ``return_indices``.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.adaptive_max_pool1d(np.array([[1., 3., 2.]]), 5, return_indices=True)
    (array([[1., 3., 3., 3., 2.]]), array([[0, 1, 1, 1, 2]]))
    """
    return _adaptive_max(1, "adaptive_max_pool1d", input, output_size, return_indices,
                         channels_last, out)


def adaptive_max_pool2d(input: np.ndarray, output_size: OutputSize,
                        return_indices: bool = False, *, channels_last: bool = False,
                        out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
                        ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-d adaptive max pooling of ``(N, C, H, W)`` or ``(C, H, W)`` input.

    As ``torch.nn.functional.adaptive_max_pool2d`` (also on integer dtypes);
    see :func:`adaptive_max_pool1d` for the parameters.  Indices are
    ``h*W + w``.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    >>> cypool.adaptive_max_pool2d(x, 2)
    array([[[[12., 14.],
             [22., 24.]]]], dtype=float32)
    """
    return _adaptive_max(2, "adaptive_max_pool2d", input, output_size, return_indices,
                         channels_last, out)


def adaptive_max_pool3d(input: np.ndarray, output_size: OutputSize,
                        return_indices: bool = False, *, channels_last: bool = False,
                        out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
                        ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """3-d adaptive max pooling of ``(N, C, D, H, W)`` or ``(C, D, H, W)``
    input; indices are ``(d*H + h)*W + w``.  See :func:`adaptive_max_pool1d`."""
    return _adaptive_max(3, "adaptive_max_pool3d", input, output_size, return_indices,
                         channels_last, out)


def adaptive_max_pool1d_backward(grad_output: np.ndarray, indices: np.ndarray,
                                 input_shape: Sequence[int], *,
                                 channels_last: bool = False,
                                 out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool1d`: each output gradient is added
    to the input element its index names (shared maxima accumulate)."""
    return _adaptive_max_backward(1, "adaptive_max_pool1d_backward", grad_output,
                                  indices, input_shape, channels_last, out)


def adaptive_max_pool2d_backward(grad_output: np.ndarray, indices: np.ndarray,
                                 input_shape: Sequence[int], *,
                                 channels_last: bool = False,
                                 out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool2d` with respect to its input.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([[[1., 3., 2.]]])
    >>> y, i = cypool.adaptive_max_pool2d(x[..., None].repeat(1, -1), (5, 1),
    ...                                   return_indices=True)
    >>> cypool.adaptive_max_pool2d_backward(np.ones_like(y), i, (1, 1, 3, 1))[..., 0]
    array([[[1., 3., 1.]]])
    """
    return _adaptive_max_backward(2, "adaptive_max_pool2d_backward", grad_output,
                                  indices, input_shape, channels_last, out)


def adaptive_max_pool3d_backward(grad_output: np.ndarray, indices: np.ndarray,
                                 input_shape: Sequence[int], *,
                                 channels_last: bool = False,
                                 out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool3d` with respect to its input."""
    return _adaptive_max_backward(3, "adaptive_max_pool3d_backward", grad_output,
                                  indices, input_shape, channels_last, out)


# --------------------------------------------------------- adaptive avg pool

def _adaptive_avg(nd, op, input, output_size, rounding, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    rounding = _check_rounding(rounding)
    x, batched = check_input(input, nd, op, MAX_DTYPES, channels_last=channels_last)
    osz = _output_size(output_size, x.shape[2:], op)
    res, res4 = _result(out, x.shape[:2] + osz, x.dtype, channels_last, batched, op,
                        "out", (x,))
    _avg_forward(x, res4, rounding)
    return res


def _adaptive_avg_backward(nd, op, grad_output, input_shape, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    shape4, batched = _check_input_shape(input_shape, nd, op, channels_last)
    g = _grad(grad_output, op)
    g4 = _grad_view(g, shape4, batched, channels_last, op)
    grad_input, gi4 = _result(out, shape4, g.dtype, channels_last, batched, op, "out",
                              (grad_output,))
    _avg_backward(g4, gi4)
    return grad_input


def adaptive_avg_pool1d(input: np.ndarray, output_size: OutputSize, *,
                        rounding: str = "truncate", channels_last: bool = False,
                        out: Optional[np.ndarray] = None) -> np.ndarray:
    """1-d adaptive average pooling of ``(N, C, L)`` or ``(C, L)`` input.

    Parameters
    ----------
    input : ndarray
        float32/64, or an integer dtype (the integer-average rule).
    output_size : int or (int or None,)
        Output length; None keeps ``L``; 0 gives an empty output.
    rounding : {"truncate", "nearest"}
        Integer input only: the exact quotient rounded toward zero
        (PyTorch's int64 rule) or to nearest, ties to even.
    channels_last : bool
        Arrays are ``(N, L, C)`` / ``(L, C)``.
    out : ndarray, optional
        Preallocated result.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.adaptive_avg_pool1d(np.arange(5.).reshape(1, 5), 3)
    array([[0.5, 2. , 3.5]])
    """
    return _adaptive_avg(1, "adaptive_avg_pool1d", input, output_size, rounding,
                         channels_last, out)


def adaptive_avg_pool2d(input: np.ndarray, output_size: OutputSize, *,
                        rounding: str = "truncate", channels_last: bool = False,
                        out: Optional[np.ndarray] = None) -> np.ndarray:
    """2-d adaptive average pooling of ``(N, C, H, W)`` or ``(C, H, W)`` input.

    As ``torch.nn.functional.adaptive_avg_pool2d``; see
    :func:`adaptive_avg_pool1d` for the parameters.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> cypool.adaptive_avg_pool2d(x, (2, None)).shape
    (1, 2, 4)
    """
    return _adaptive_avg(2, "adaptive_avg_pool2d", input, output_size, rounding,
                         channels_last, out)


def adaptive_avg_pool3d(input: np.ndarray, output_size: OutputSize, *,
                        rounding: str = "truncate", channels_last: bool = False,
                        out: Optional[np.ndarray] = None) -> np.ndarray:
    """3-d adaptive average pooling of ``(N, C, D, H, W)`` or ``(C, D, H, W)``
    input.  See :func:`adaptive_avg_pool1d`."""
    return _adaptive_avg(3, "adaptive_avg_pool3d", input, output_size, rounding,
                         channels_last, out)


def adaptive_avg_pool1d_backward(grad_output: np.ndarray, input_shape: Sequence[int],
                                 *, channels_last: bool = False,
                                 out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool1d`: each output gradient divided by
    its bin's size is added to every element of the bin (overlaps accumulate).

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.adaptive_avg_pool1d_backward(np.ones((1, 3)), (1, 5)).round(3)
    array([[0.5  , 0.833, 0.333, 0.833, 0.5  ]])
    """
    return _adaptive_avg_backward(1, "adaptive_avg_pool1d_backward", grad_output,
                                  input_shape, channels_last, out)


def adaptive_avg_pool2d_backward(grad_output: np.ndarray, input_shape: Sequence[int],
                                 *, channels_last: bool = False,
                                 out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input."""
    return _adaptive_avg_backward(2, "adaptive_avg_pool2d_backward", grad_output,
                                  input_shape, channels_last, out)


def adaptive_avg_pool3d_backward(grad_output: np.ndarray, input_shape: Sequence[int],
                                 *, channels_last: bool = False,
                                 out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool3d` with respect to its input."""
    return _adaptive_avg_backward(3, "adaptive_avg_pool3d_backward", grad_output,
                                  input_shape, channels_last, out)


# ------------------------------------------------------------ global pooling

def _global_input(input, op, allowed, channels_last):
    x = input if isinstance(input, np.ndarray) else np.asarray(input)
    if x.ndim not in (3, 4, 5):
        lay = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(
            f"{op}: input must be 3-D, 4-D or 5-D {lay} (batched, 1 to 3 spatial "
            f"dimensions), got {x.ndim}-D with shape {x.shape}"
        )
    nd = x.ndim - 2
    x4, _ = check_input(x, nd, op, allowed, channels_last=channels_last)
    return x4, nd


def _global_result(out, x4, nd, dtype, keepdims, channels_last, op, name, operands):
    """The result in the caller's shape and its ``(N, C, 1, ...)`` view."""
    n, c = x4.shape[:2]
    if keepdims:
        return _result(out, (n, c) + (1,) * nd, dtype, channels_last, True, op, name,
                       operands)
    res, res2 = _result(out, (n, c), dtype, False, True, op, name, operands)
    return res, res2[(Ellipsis,) + (None,) * nd]


def _global_kernel_ok(x4):
    """The dedicated global kernels take any strides; they need a non-empty
    array (empty ones need no work)."""
    return x4.size > 0


def global_max_pool(input: np.ndarray, *, keepdims: bool = False,
                    return_indices: bool = False, channels_last: bool = False,
                    out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
                    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The maximum of every ``(n, c)`` plane of ``(N, C, *spatial)`` input.

    Equal to ``adaptive_max_pool{nd}d(input, 1)`` with the trailing unit axes
    removed (unless ``keepdims``); 1 to 3 spatial dimensions, all eight
    dtypes, NaN wins, ties keep the first element of the plane.

    Parameters
    ----------
    input : ndarray
        ``(N, C, *spatial)``, or ``(N, *spatial, C)`` with ``channels_last``.
    keepdims : bool
        Return ``(N, C, 1, ...)`` (``(N, 1, ..., C)`` channels-last) instead of
        ``(N, C)``.
    return_indices : bool
        Also return the int64 flat in-plane offset of each maximum.
    channels_last : bool
        Layout of ``input`` (and of the result with ``keepdims``).
    out : ndarray or (ndarray, ndarray), optional
        Preallocated result.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([[[[1, 7], [7, 2]]]], dtype=np.uint8)
    >>> cypool.global_max_pool(x, return_indices=True)
    (array([[7]], dtype=uint8), array([[1]]))
    """
    op = "global_max_pool"
    channels_last = _check_flag(channels_last, "channels_last")
    keepdims = _check_flag(keepdims, "keepdims")
    return_indices = _check_flag(return_indices, "return_indices")
    x4, nd = _global_input(input, op, MAX_DTYPES, channels_last)
    out, out_idx = _split_out(out, return_indices, op)
    res, res4 = _global_result(out, x4, nd, x4.dtype, keepdims, channels_last, op,
                               "out", (x4,))
    idx = idx4 = None
    if return_indices:
        idx, idx4 = _global_result(out_idx, x4, nd, np.int64, keepdims, channels_last,
                                   op, "out indices", (x4, res))
    if _global_kernel_ok(x4):
        if _backend.use_compiled():
            comp, k = _kernels()
            comp.run(k.global_max_forward, _as5d(x4, nd), _as5d(res4, nd),
                     None if idx4 is None else _as5d(idx4, nd))
        else:
            _ref.adaptive_max_pool(x4, (1,) * nd, res4, idx4)
    return (res, idx) if return_indices else res


def global_avg_pool(input: np.ndarray, *, keepdims: bool = False,
                    rounding: str = "truncate", channels_last: bool = False,
                    out: Optional[np.ndarray] = None) -> np.ndarray:
    """The mean of every ``(n, c)`` plane of ``(N, C, *spatial)`` input.

    Equal to ``adaptive_avg_pool{nd}d(input, 1)`` with the trailing unit axes
    removed (unless ``keepdims``), i.e. ``input.mean(spatial axes)``; integer
    input by the integer-average rule (see :func:`adaptive_avg_pool1d`).
    Parameters as :func:`global_max_pool`.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> cypool.global_avg_pool(np.arange(8.).reshape(1, 2, 2, 2))
    array([[1.5, 5.5]])
    """
    op = "global_avg_pool"
    channels_last = _check_flag(channels_last, "channels_last")
    keepdims = _check_flag(keepdims, "keepdims")
    rounding = _check_rounding(rounding)
    x4, nd = _global_input(input, op, MAX_DTYPES, channels_last)
    res, res4 = _global_result(out, x4, nd, x4.dtype, keepdims, channels_last, op,
                               "out", (x4,))
    if _global_kernel_ok(x4):
        if _backend.use_compiled():
            comp, k = _kernels()
            comp.run(k.global_avg_forward, _as5d(x4, nd), _as5d(res4, nd),
                     rounding == "nearest")
        else:
            _ref.adaptive_avg_pool(x4, (1,) * nd, res4, rounding)
    return res


def _global_grad(grad_output, input_shape, keepdims, channels_last, op):
    """input_shape as ``(N, C, *spatial)`` and grad_output as an
    ``(N, C, 1, ...)`` view."""
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
        raise TypeError(f"{op}: input_shape must be a tuple of integers")
    if len(input_shape) not in (3, 4, 5):
        raise ValueError(
            f"{op}: input_shape must have 3 to 5 entries (N, C, *spatial), "
            f"got {tuple(input_shape)}"
        )
    nd = len(input_shape) - 2
    shape4, _ = _check_input_shape(input_shape, nd, op, channels_last)
    g = _grad(grad_output, op)
    n, c = shape4[:2]
    if keepdims:
        expected = _user_shape((n, c) + (1,) * nd, True, channels_last)
    else:
        expected = (n, c)
    if g.shape != expected:
        raise ValueError(
            f"{op}: grad_output has shape {g.shape}, expected {expected} for "
            f"input_shape {tuple(input_shape)} (keepdims={keepdims})"
        )
    g4 = to_nc_first(g, channels_last) if keepdims else g[(Ellipsis,) + (None,) * nd]
    return shape4, nd, g, g4


def global_max_pool_backward(grad_output: np.ndarray, indices: np.ndarray,
                             input_shape: Sequence[int], *, keepdims: bool = False,
                             channels_last: bool = False,
                             out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`global_max_pool`: each plane's output gradient goes
    to the element its index names.  ``grad_output`` and ``indices`` have the
    forward's result shape (``keepdims`` as in the forward)."""
    op = "global_max_pool_backward"
    channels_last = _check_flag(channels_last, "channels_last")
    keepdims = _check_flag(keepdims, "keepdims")
    shape4, nd, g, g4 = _global_grad(grad_output, input_shape, keepdims, channels_last,
                                     op)
    idx = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
    idx4 = _indices_view(idx, g, True, channels_last and keepdims, op)
    if not keepdims:
        idx4 = idx4[(Ellipsis,) + (None,) * nd]
    grad_input, gi4 = _result(out, shape4, g.dtype, channels_last, True, op, "out",
                              (grad_output, indices))
    _scatter_max(g4, idx4, shape4[2:], gi4, op)
    return grad_input


def global_avg_pool_backward(grad_output: np.ndarray, input_shape: Sequence[int], *,
                             keepdims: bool = False, channels_last: bool = False,
                             out: Optional[np.ndarray] = None) -> np.ndarray:
    """Gradient of :func:`global_avg_pool`: every element of a plane receives
    the plane's output gradient divided by the plane size."""
    op = "global_avg_pool_backward"
    channels_last = _check_flag(channels_last, "channels_last")
    keepdims = _check_flag(keepdims, "keepdims")
    shape4, nd, g, g4 = _global_grad(grad_output, input_shape, keepdims, channels_last,
                                     op)
    grad_input, gi4 = _result(out, shape4, g.dtype, channels_last, True, op, "out",
                              (grad_output,))
    if gi4.size:
        if _backend.use_compiled():
            comp, k = _kernels()
            comp.run(k.global_avg_backward, _as5d(g4, nd), _as5d(gi4, nd))
        else:
            _ref.adaptive_avg_pool_backward(g4, shape4[2:], gi4)
    return grad_input


# ---------------------------------------------------- spatial pyramid pooling

def _check_levels(levels, op):
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
        raise TypeError(f"{op}: levels must be a sequence of positive integers")
    out = []
    for lv in levels:
        if isinstance(lv, (bool, np.bool_)):
            raise TypeError(f"{op}: levels must hold integers, not bool")
        try:
            v = operator.index(lv)
        except TypeError:
            raise TypeError(
                f"{op}: levels must hold integers, not {type(lv).__name__}"
            ) from None
        if v < 1:
            raise ValueError(f"{op}: levels must be positive integers, got {tuple(levels)}")
        if v > 2**20:
            raise ValueError(f"{op}: levels must be at most 2**20, got {v}")
        out.append(v)
    if not out:
        raise ValueError(f"{op}: levels must not be empty")
    return tuple(out)


def _check_mode(mode, op):
    if not isinstance(mode, str):
        raise TypeError(f"{op}: mode must be 'max' or 'avg', not {type(mode).__name__}")
    if mode not in ("max", "avg"):
        raise ValueError(f"{op}: mode must be 'max' or 'avg', got {mode!r}")
    return mode


def _spp(nd, op, input, levels, mode, return_indices, channels_last):
    channels_last = _check_flag(channels_last, "channels_last")
    return_indices = _check_flag(return_indices, "return_indices")
    levels = _check_levels(levels, op)
    mode = _check_mode(mode, op)
    if return_indices and mode != "max":
        raise ValueError(f"{op}: return_indices=True needs mode='max'")
    x, batched = check_input(input, nd, op, MAX_DTYPES, channels_last=channels_last)
    n, c = x.shape[:2]
    total = c * sum(lv ** nd for lv in levels)
    vec = np.empty((n, total), dtype=x.dtype)
    all_idx = []
    offset = 0
    for lv in levels:
        width = c * lv ** nd
        # the level's (N, C, l, ..., l) result, flattened into its columns;
        # pooled in the input's layout (the channels-last kernels read
        # channels-last input along its contiguous channel axis)
        shape = (n,) + (lv,) * nd + (c,) if channels_last else (n, c) + (lv,) * nd
        res4 = to_nc_first(np.empty(shape, dtype=x.dtype), channels_last)
        idx4 = (to_nc_first(np.empty(shape, dtype=np.int64), channels_last)
                if return_indices else None)
        if mode == "max":
            _max_forward(x, res4, idx4)
        else:
            _avg_forward(x, res4, "truncate")
        vec[:, offset:offset + width] = res4.reshape(n, width)
        if return_indices:
            idx = np.moveaxis(idx4, 1, -1) if channels_last else idx4
            all_idx.append(idx if batched else idx[0])
        offset += width
    if not batched:
        vec = vec[0]
    if return_indices:
        return vec, tuple(all_idx)
    return vec


def _spp_backward(nd, op, grad_output, input_shape, levels, mode, indices,
                  channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    levels = _check_levels(levels, op)
    mode = _check_mode(mode, op)
    shape4, batched = _check_input_shape(input_shape, nd, op, channels_last)
    n, c = shape4[:2]
    g = _grad(grad_output, op)
    total = c * sum(lv ** nd for lv in levels)
    expected = (n, total) if batched else (total,)
    if g.shape != expected:
        raise ValueError(
            f"{op}: grad_output has shape {g.shape}, expected {expected} for "
            f"input_shape {tuple(input_shape)} and levels {levels}"
        )
    if mode == "max":
        if indices is None:
            raise ValueError(f"{op}: mode='max' needs the forward's indices")
        if not isinstance(indices, (tuple, list)) or len(indices) != len(levels):
            raise ValueError(
                f"{op}: indices must be a sequence of {len(levels)} arrays, one per level"
            )
    g2 = g if batched else g[np.newaxis]
    grad_input, gi4 = _result(out, shape4, g.dtype, channels_last, batched, op, "out",
                              (grad_output,) + tuple(indices or ()))
    gi4[...] = 0
    level_grad = np.empty(shape4, dtype=g.dtype)
    offset = 0
    for k, lv in enumerate(levels):
        width = c * lv ** nd
        gl = g2[:, offset:offset + width].reshape((n, c) + (lv,) * nd)
        offset += width
        if mode == "max":
            idx = indices[k] if isinstance(indices[k], np.ndarray) else np.asarray(indices[k])
            want = _user_shape((n, c) + (lv,) * nd, batched, channels_last)
            if idx.shape != want:
                raise ValueError(
                    f"{op}: indices[{k}] has shape {idx.shape}, expected {want}"
                )
            idx_user = idx if batched else idx[np.newaxis]
            idx4 = _indices_view(idx_user, idx_user, True, channels_last, op)
            _scatter_max(gl, idx4, shape4[2:], level_grad, op)
        else:
            _avg_backward(gl, level_grad)
        gi4 += level_grad
    return grad_input


_SPP_DOC = """{nd}-d spatial pyramid pooling (He et al., 2014) of ``{lay}`` input.

    The fixed-length vector ``(N, C * sum(l**{nd} for l in levels))`` (1-d for
    unbatched input) whatever the input's spatial size: for each level ``l``
    in order, ``adaptive_{{mode}}_pool{nd}d(input, l)`` as ``(N, C, l, ...)``,
    flattened in C order (channel, then bin), concatenated.  With
    ``channels_last`` the vector has the same order (channel-major within a
    level), so both layouts give the same features.

    Parameters
    ----------
    input : ndarray
        Max: all eight dtypes; avg: floats, or integers (truncated means).
    levels : sequence of int
        Positive bin counts per dimension, one entry per pyramid level.
    mode : {{"max", "avg"}}
    return_indices : bool
        ``mode="max"`` only: also return a tuple of per-level int64 index
        arrays, each shaped like ``adaptive_max_pool{nd}d``'s indices in the
        caller's layout (``(N, C, l, ...)``, or ``(N, l, ..., C)``
        channels-last).
    channels_last : bool
        ``input`` is ``(N, *spatial, C)``.
"""


def spatial_pyramid_pool1d(input: np.ndarray, levels: Sequence[int] = (1, 2, 4),
                           mode: str = "max", *, return_indices: bool = False,
                           channels_last: bool = False
                           ) -> np.ndarray | tuple[np.ndarray, tuple[np.ndarray, ...]]:
    return _spp(1, "spatial_pyramid_pool1d", input, levels, mode, return_indices,
                channels_last)


def spatial_pyramid_pool2d(input: np.ndarray, levels: Sequence[int] = (1, 2, 4),
                           mode: str = "max", *, return_indices: bool = False,
                           channels_last: bool = False
                           ) -> np.ndarray | tuple[np.ndarray, tuple[np.ndarray, ...]]:
    return _spp(2, "spatial_pyramid_pool2d", input, levels, mode, return_indices,
                channels_last)


def spatial_pyramid_pool3d(input: np.ndarray, levels: Sequence[int] = (1, 2, 4),
                           mode: str = "max", *, return_indices: bool = False,
                           channels_last: bool = False
                           ) -> np.ndarray | tuple[np.ndarray, tuple[np.ndarray, ...]]:
    return _spp(3, "spatial_pyramid_pool3d", input, levels, mode, return_indices,
                channels_last)


spatial_pyramid_pool1d.__doc__ = _SPP_DOC.format(nd=1, lay="(N, C, L)")
spatial_pyramid_pool2d.__doc__ = _SPP_DOC.format(nd=2, lay="(N, C, H, W)") + """
    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.random.default_rng(0).random((2, 3, 11, 13), dtype=np.float32)
    >>> cypool.spatial_pyramid_pool2d(x, levels=(1, 2, 4)).shape
    (2, 63)
"""
spatial_pyramid_pool3d.__doc__ = _SPP_DOC.format(nd=3, lay="(N, C, D, H, W)")

_SPP_BWD_DOC = """Gradient of :func:`spatial_pyramid_pool{nd}d`.

    ``grad_output`` has the forward vector's shape; ``levels``, ``mode`` and
    ``channels_last`` are the forward's; ``indices`` (the forward's
    per-level tuple) is required for ``mode="max"``.  The levels' adaptive
    backwards are summed.
"""


def spatial_pyramid_pool1d_backward(grad_output: np.ndarray, input_shape: Sequence[int],
                                    levels: Sequence[int] = (1, 2, 4),
                                    mode: str = "max", *,
                                    indices: Sequence[np.ndarray] | None = None,
                                    channels_last: bool = False,
                                    out: Optional[np.ndarray] = None) -> np.ndarray:
    return _spp_backward(1, "spatial_pyramid_pool1d_backward", grad_output,
                         input_shape, levels, mode, indices, channels_last, out)


def spatial_pyramid_pool2d_backward(grad_output: np.ndarray, input_shape: Sequence[int],
                                    levels: Sequence[int] = (1, 2, 4),
                                    mode: str = "max", *,
                                    indices: Sequence[np.ndarray] | None = None,
                                    channels_last: bool = False,
                                    out: Optional[np.ndarray] = None) -> np.ndarray:
    return _spp_backward(2, "spatial_pyramid_pool2d_backward", grad_output,
                         input_shape, levels, mode, indices, channels_last, out)


def spatial_pyramid_pool3d_backward(grad_output: np.ndarray, input_shape: Sequence[int],
                                    levels: Sequence[int] = (1, 2, 4),
                                    mode: str = "max", *,
                                    indices: Sequence[np.ndarray] | None = None,
                                    channels_last: bool = False,
                                    out: Optional[np.ndarray] = None) -> np.ndarray:
    return _spp_backward(3, "spatial_pyramid_pool3d_backward", grad_output,
                         input_shape, levels, mode, indices, channels_last, out)


for _nd, _f in ((1, spatial_pyramid_pool1d_backward), (2, spatial_pyramid_pool2d_backward),
                (3, spatial_pyramid_pool3d_backward)):
    _f.__doc__ = _SPP_BWD_DOC.format(nd=_nd)
del _nd, _f

spatial_pyramid_pool = spatial_pyramid_pool2d
spatial_pyramid_pool_backward = spatial_pyramid_pool2d_backward
