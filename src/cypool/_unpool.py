"""Max unpooling (the partial inverse of max pooling), forward and backward.

``max_unpool{1,2,3}d(input, indices, ...)`` follows
``torch.nn.functional.max_unpool{1,2,3}d``: the result is zeros of the
unpooled size, then ``out[n, c].flat[indices[n, c, ...]] = input[n, c, ...]``
with the flat in-plane indices that :func:`cypool.max_pool2d` (and the other
max-style operators) return.

* Default output size per dimension: ``(in - 1)*stride - 2*padding + kernel``.
  ``output_size`` overrides it, given as the spatial sizes or as a whole
  shape with the ``(N, C)`` entries (``(N, *spatial, C)`` with
  ``channels_last=True``; those entries are ignored, as in PyTorch); each
  spatial entry must satisfy ``default - stride < size < default + stride``.
* Repeated indices (overlapping max-pooling windows produce them) are
  deterministic: the last input position in C order of its ``(n, c)`` plane
  wins, identically for channels-last arrays.  (PyTorch documents the result
  as undefined.)
* Index -1, the dilation-hole index of cypool's max pooling, is skipped; any
  other index outside ``[0, prod(output spatial size))`` raises ValueError
  and nothing is ever written out of bounds.

Beyond PyTorch: every dtype of max pooling (float32/64, int8/16/32/64,
uint8/16; PyTorch takes floats only) and channels-last arrays.  Stricter:
``kernel_size`` and ``stride`` must be positive and ``padding`` non-negative
(PyTorch computes sizes from any integers), and the output may not be empty.

The backward is a gather: ``grad_input[n, c, i] = grad_output[n, c].flat[
indices[n, c, i]]`` (0 for index -1), so repeated indices each receive the
full gradient, as in PyTorch.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence

import numpy as np

from . import _backend
from ._params import LIMIT, MAX_DTYPES, as_int_tuple, check_dtype, check_input
from ._pooling import _check_flag, _result

__all__ = [
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "max_unpool1d_backward", "max_unpool2d_backward", "max_unpool3d_backward",
]

_INT64 = (np.dtype(np.int64),)


def _as5d(a, nd):
    return a[(slice(None), slice(None)) + (None,) * (3 - nd)]


def _uniform_planes(a):
    """True when flat index ``i`` of every ``(n, c)`` plane of ``a`` is at
    byte offset ``i * e`` for one positive ``e`` (C-order and channels-last
    arrays)."""
    e, span = None, 1
    for size, stride in zip(reversed(a.shape[2:]), reversed(a.strides[2:])):
        if size > 1:
            if e is None:
                if stride <= 0 or stride % a.itemsize:
                    return False
                e = stride
            elif stride != e * span:
                return False
        span *= size
    return True


def _check_indices(indices, x_user_shape, batched, channels_last, op):
    """``indices`` (int64, the input's shape) as an ``(N, C, *spatial)`` view."""
    idx = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an int64 array, got dtype {idx.dtype}")
    idx = check_dtype(idx, _INT64, op, "indices")
    if idx.shape != x_user_shape:
        raise ValueError(
            f"{op}: indices has shape {idx.shape}, expected the input's shape {x_user_shape}"
        )
    if not batched:
        idx = idx[np.newaxis]
    return np.moveaxis(idx, -1, 1) if channels_last else idx


def _positive(values, name, op):
    for v in values:
        if v < 1:
            raise ValueError(f"{op}: {name} must be positive (>= 1), got {v}")
        if v > LIMIT:
            raise ValueError(f"{op}: {name} must be at most 2**62, got {v}")


def _output_size(nd, in_size, kernel_size, stride, padding, output_size,
                 channels_last, op):
    """PyTorch's unpooled size, checked (``_unpool_output_size``), with the
    stride and padding as tuples."""
    kernel = as_int_tuple(kernel_size, nd, "kernel_size")
    _positive(kernel, "kernel_size", op)
    if stride is None:
        stride = kernel
    else:
        stride = as_int_tuple(stride, nd, "stride")
        _positive(stride, "stride", op)
    pad = as_int_tuple(padding, nd, "padding")
    if any(p < 0 for p in pad):
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    if any(p > LIMIT for p in pad):
        raise ValueError(f"{op}: padding must be at most 2**62, got {padding!r}")
    default = tuple((i - 1) * s - 2 * p + k
                    for i, s, p, k in zip(in_size, stride, pad, kernel))
    if output_size is None:
        size = default
    else:
        if isinstance(output_size, np.ndarray):
            output_size = output_size.tolist()
        if isinstance(output_size, (str, bytes)) or not hasattr(output_size, "__len__"):
            raise TypeError(
                f"{op}: output_size must be a sequence of {nd} (or {nd + 2}) integers"
            )
        entries = list(output_size)
        if len(entries) == nd + 2:
            entries = entries[1:-1] if channels_last else entries[2:]
        elif len(entries) != nd:
            raise ValueError(
                f"{op}: output_size must have {nd} entries (the spatial size) or "
                f"{nd + 2} (a whole shape), got {len(entries)}"
            )
        size = []
        for e in entries:
            if isinstance(e, (bool, np.bool_)):
                raise TypeError(f"{op}: output_size must hold integers, not bool")
            try:
                size.append(operator.index(e))
            except TypeError:
                raise TypeError(
                    f"{op}: output_size must hold integers, not {type(e).__name__}"
                ) from None
        size = tuple(size)
        for d, (o, dflt, s) in enumerate(zip(size, default, stride)):
            if not dflt - s < o < dflt + s:
                raise ValueError(
                    f"{op}: invalid output_size {tuple(size)}: dimension {d} must lie "
                    f"strictly between {dflt - s} and {dflt + s} (the default "
                    f"(in - 1)*stride - 2*padding + kernel_size = {dflt}, +- stride)"
                )
    if any(o < 1 for o in size):
        raise ValueError(
            f"{op}: the output would be empty: input spatial size {tuple(in_size)} with "
            f"kernel_size={kernel}, stride={stride}, padding={pad} gives {tuple(size)}"
        )
    if math.prod(size) > LIMIT:
        raise ValueError(f"{op}: output size {tuple(size)} is too large")
    return size, stride, pad


def _bad_index(op, plane):
    return ValueError(
        f"{op}: indices must lie in [0, {plane}) (flat offsets into each unpooled "
        "plane) or be -1"
    )


def _max_unpool(nd, op, input, indices, kernel_size, stride, padding, output_size,
                channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    x, batched = check_input(input, nd, op, MAX_DTYPES, channels_last=channels_last)
    user_shape = input.shape if isinstance(input, np.ndarray) else np.shape(input)
    idx = _check_indices(indices, tuple(user_shape), batched, channels_last, op)
    size, stride, pad = _output_size(nd, x.shape[2:], kernel_size, stride, padding,
                                     output_size, channels_last, op)
    # a fresh result comes zeroed from np.zeros (pages the system zeroes on
    # first touch anyway), so the compiled kernel need not zero it again
    fresh = out is None
    res, res4 = _result(out, x.shape[:2] + size, x.dtype, channels_last, batched, op,
                        "out", (x, idx), zeros=fresh)
    if res4.size == 0:
        return res
    if _backend.use_compiled():
        from . import _compiled

        # a large out= is streamed out while it is built, part by part as no
        # later window reaches it (1.9x; a fresh result, zeroed by the
        # system and scattered into directly, measured 0.9x streamed)
        bounds = None
        if not fresh and _compiled._kernels._streams(res4.nbytes):
            three = _compiled._three
            bounds = _compiled.row_bounds(three(x.shape[2:], 1), three(size, 1),
                                          three(stride, 1), three(pad, 0))
        ok = _compiled.run(functools.partial(_compiled.family("_unpool").max_unpool_forward,
                                             zeroed=fresh, bounds=bounds),
                           _as5d(x, nd), _as5d(idx, nd), _as5d(res4, nd))
    else:
        from . import _reference_unpool

        ok = _reference_unpool.max_unpool(x, idx, res4)
    if not ok:
        res4[...] = 0  # never leave a partial scatter in a caller's out=
        raise _bad_index(op, math.prod(size))
    return res


def _max_unpool_backward(nd, op, grad_output, indices, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    idx, batched = check_input(indices, nd, op, _INT64, argname="indices",
                               channels_last=channels_last)
    g, g_batched = check_input(grad_output, nd, op, MAX_DTYPES, argname="grad_output",
                               channels_last=channels_last)
    if g_batched != batched or g.shape[:2] != idx.shape[:2]:
        gs = np.shape(grad_output)
        js = np.shape(indices)
        raise ValueError(
            f"{op}: grad_output {gs} and indices {js} must both be batched or both "
            "unbatched, with the same batch and channel sizes"
        )
    grad_input, gi4 = _result(out, idx.shape, g.dtype, channels_last, batched, op,
                              "out", (grad_output, indices))
    if gi4.size == 0:
        return grad_input
    if _backend.use_compiled():
        from . import _compiled

        if not _uniform_planes(g):
            g = np.ascontiguousarray(g)  # the kernel reads planes by flat index
        ok = _compiled.run(_compiled.family("_unpool").max_unpool_backward,
                           _as5d(g, nd), _as5d(idx, nd), _as5d(gi4, nd))
    else:
        from . import _reference_unpool

        ok = _reference_unpool.max_unpool_backward(g, idx, gi4)
    if not ok:
        gi4[...] = 0
        raise _bad_index(op, math.prod(g.shape[2:]))
    return grad_input


_FORWARD_DOC = """{nd}-d max unpooling: the partial inverse of :func:`max_pool{nd}d`.

    As ``torch.nn.functional.max_unpool{nd}d``: zeros of the unpooled size,
    then each input value written to the slot its index names in its
    ``(n, c)`` plane (the last one wins where indices repeat; -1 is skipped).

    Parameters
    ----------
    input : ndarray
        ``{bat}`` or ``{unb}`` (``channels_last=True``: channels last), any of
        the 8 dtypes of max pooling.
    indices : ndarray
        int64 flat in-plane offsets of the unpooled array, the input's shape.
    kernel_size, stride, padding : int or tuple of {nd} ints
        The max-pooling arguments; ``stride`` defaults to ``kernel_size``.
    output_size : tuple of ints, optional
        Spatial size ({nd} entries) or a whole shape ({nd2} entries); each
        spatial entry strictly within ``default ± stride``.
    channels_last : bool, keyword-only
    out : ndarray, optional, keyword-only
        Preallocated C-contiguous result (the unpooled shape, input's dtype);
        zeroed if the call raises for a bad index.

    Returns
    -------
    ndarray
        The unpooled array.

    Raises
    ------
    ValueError
        An index outside ``[0, plane size)`` other than -1.
{example}"""

_BACKWARD_DOC = """Gradient of :func:`max_unpool{nd}d` with respect to its input.

    A gather: ``grad_input[n, c, i] = grad_output[n, c].flat[indices[n, c,
    i]]``, 0 where the index is -1; repeated indices each receive the full
    gradient (as PyTorch).

    Parameters
    ----------
    grad_output : ndarray
        Gradient with respect to the unpooled output (any of the 8 dtypes).
    indices : ndarray
        The forward's int64 indices; the result has their shape.
    channels_last : bool, keyword-only
    out : ndarray, optional, keyword-only
        Preallocated C-contiguous result (the indices' shape, grad_output's
        dtype).

    Returns
    -------
    ndarray
        The gradient with respect to the forward's ``input``.
"""


def max_unpool1d(input: np.ndarray, indices: np.ndarray,
                 kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...] | None = None,
                 padding: int | tuple[int, ...] = 0,
                 output_size: Sequence[int] | None = None, *, channels_last: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    return _max_unpool(1, "max_unpool1d", input, indices, kernel_size, stride, padding,
                       output_size, channels_last, out)


def max_unpool2d(input: np.ndarray, indices: np.ndarray,
                 kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...] | None = None,
                 padding: int | tuple[int, ...] = 0,
                 output_size: Sequence[int] | None = None, *, channels_last: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    return _max_unpool(2, "max_unpool2d", input, indices, kernel_size, stride, padding,
                       output_size, channels_last, out)


def max_unpool3d(input: np.ndarray, indices: np.ndarray,
                 kernel_size: int | tuple[int, ...],
                 stride: int | tuple[int, ...] | None = None,
                 padding: int | tuple[int, ...] = 0,
                 output_size: Sequence[int] | None = None, *, channels_last: bool = False,
                 out: np.ndarray | None = None) -> np.ndarray:
    return _max_unpool(3, "max_unpool3d", input, indices, kernel_size, stride, padding,
                       output_size, channels_last, out)


def max_unpool1d_backward(grad_output: np.ndarray, indices: np.ndarray, *,
                          channels_last: bool = False,
                          out: np.ndarray | None = None) -> np.ndarray:
    return _max_unpool_backward(1, "max_unpool1d_backward", grad_output, indices,
                                channels_last, out)


def max_unpool2d_backward(grad_output: np.ndarray, indices: np.ndarray, *,
                          channels_last: bool = False,
                          out: np.ndarray | None = None) -> np.ndarray:
    return _max_unpool_backward(2, "max_unpool2d_backward", grad_output, indices,
                                channels_last, out)


def max_unpool3d_backward(grad_output: np.ndarray, indices: np.ndarray, *,
                          channels_last: bool = False,
                          out: np.ndarray | None = None) -> np.ndarray:
    return _max_unpool_backward(3, "max_unpool3d_backward", grad_output, indices,
                                channels_last, out)


_EXAMPLES = {
    1: """
    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([[1., 5., 2., 4.]])
    >>> y, idx = cypool.max_pool1d(x, 2, return_indices=True)
    >>> cypool.max_unpool1d(y, idx, 2)
    array([[0., 5., 0., 4.]])
""",
    2: """
    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.array([[[[1, 2], [4, 3]]]], dtype=np.uint8)
    >>> y, idx = cypool.max_pool2d(x, 2, return_indices=True)
    >>> cypool.max_unpool2d(y, idx, 2)
    array([[[[0, 0],
             [4, 0]]]], dtype=uint8)
""",
    3: "",
}
_SPATIAL = {1: "L", 2: "H, W", 3: "D, H, W"}
for _nd, _f in ((1, max_unpool1d), (2, max_unpool2d), (3, max_unpool3d)):
    _f.__doc__ = _FORWARD_DOC.format(
        nd=_nd, nd2=_nd + 2, bat=f"(N, C, {_SPATIAL[_nd]})",
        unb=f"(C, {_SPATIAL[_nd]})", example=_EXAMPLES[_nd])
for _nd, _f in ((1, max_unpool1d_backward), (2, max_unpool2d_backward),
                (3, max_unpool3d_backward)):
    _f.__doc__ = _BACKWARD_DOC.format(nd=_nd)
del _nd, _f
