"""Reference backend of adaptive and global pooling: plain NumPy, written to be read.

Adaptive pooling splits each spatial dimension of length ``In`` into ``Out``
bins, bin ``i`` covering ``[floor(i*In/Out), ceil((i+1)*In/Out))`` (PyTorch's
rule, integer arithmetic only).  Bins are at least one element wide, may
overlap, and repeat elements when ``Out > In``.

Both reductions are separable, so they run one dimension at a time, the last
(innermost) first.  Along one dimension the shorter of two loops runs: over
the bins (each bin a slice reduced by NumPy), when bins are few and wide; or
over the taps, vectorised over all bins, when bins are many and narrow: tap
``t`` of bin ``i`` is element ``start_i + t`` if it lies before ``end_i``.

* Max: the first tap initialises the winner; a later tap replaces it if it is
  larger, or NaN (``v > best or v != v``).  Per row this keeps the first
  maximum (ties) or the last NaN; reducing the rows in the same way then
  keeps the first maximum, or the last NaN, of the whole bin in row-major scan
  order, which is PyTorch's rule (``SEMANTICS.md`` section 4), so values and
  indices are those of a direct scan.  Indices are flat in-plane offsets
  ``(d*H + h)*W + w``.
* Average: the bin sum divided by the bin's element count (the product of its
  widths).  Floats are summed in their own dtype (the order differs from a
  direct scan only by rounding); integers in int64 (wrapping on overflow, an
  associative sum, hence exact whatever the order) and divided exactly with
  the chosen rounding.

This module never imports the compiled extension.
"""

from __future__ import annotations

import numpy as np

from . import _reference

__all__ = ["bins", "adaptive_max_pool", "adaptive_max_pool_backward",
           "adaptive_avg_pool", "adaptive_avg_pool_backward"]


def bins(n_in, n_out):
    """``(start, end)`` int64 arrays of the ``n_out`` adaptive bins of a
    dimension of length ``n_in``: ``start = floor(i*In/Out)``,
    ``end = ceil((i+1)*In/Out)``, computed exactly (Python integers when
    ``i*In`` could overflow int64)."""
    if n_in * (n_out + 1) < 2**62:
        i = np.arange(n_out + 1, dtype=np.int64)
        start = (i[:-1] * n_in) // n_out
        end = -((-i[1:] * n_in) // n_out)
        return start, end
    start = np.array([(i * n_in) // n_out for i in range(n_out)], dtype=np.int64)
    end = np.array([-((-(i + 1) * n_in) // n_out) for i in range(n_out)], dtype=np.int64)
    return start, end


def _taps(n_in, n_out):
    """Yield ``(pos, valid)`` for every tap ``t`` of the bins of one
    dimension: ``pos = start + t`` (clipped into the input) and whether that
    position is inside its bin.  Tap 0 is valid for every bin."""
    start, end = bins(n_in, n_out)
    widest = int((end - start).max()) if n_out else 0
    for t in range(widest):
        pos = start + t
        yield np.minimum(pos, n_in - 1), pos < end


def _few_wide_bins(n_in, n_out):
    start, end = bins(n_in, n_out)
    return n_out < int((end - start).max())


def _max_bin(seg, axis):
    """Position (along ``axis``) of the scan-order winner of every slice:
    the last NaN if there is one, else the first maximum (np.argmax returns
    the first occurrence)."""
    isnan = seg != seg
    last_nan = seg.shape[axis] - 1 - np.argmax(np.flip(isnan, axis), axis=axis)
    return np.where(isnan.any(axis=axis), last_nan, np.argmax(seg, axis=axis))


def _max_along(values, index, axis, n_in, n_out, plane_stride):
    """Reduce ``axis`` of ``values`` (length ``n_in``) to ``n_out`` bins.

    ``index`` (same shape, or None) holds the flat in-plane offset each value
    came from; the index of an element moved along ``axis`` grows by
    ``plane_stride`` per step.  Returns the reduced ``(values, index)``."""
    if _few_wide_bins(n_in, n_out):
        vs, ids = [], []
        for lo, hi in zip(*bins(n_in, n_out)):
            seg = np.take(values, np.arange(lo, hi), axis=axis)
            k = np.expand_dims(_max_bin(seg, axis), axis)
            vs.append(np.take_along_axis(seg, k, axis))
            if index is not None:
                ids.append(np.take_along_axis(
                    np.take(index, np.arange(lo, hi), axis=axis), k, axis)
                    + (lo + k) * plane_stride)
        return (np.concatenate(vs, axis),
                None if index is None else np.concatenate(ids, axis))
    best = best_idx = None
    for t, (pos, valid) in enumerate(_taps(n_in, n_out)):
        v = np.take(values, pos, axis=axis)
        i = None if index is None else (np.take(index, pos, axis=axis)
                                         + pos_shape(pos * plane_stride, axis, v.ndim))
        if t == 0:
            best, best_idx = v, i
            continue
        ok = pos_shape(valid, axis, v.ndim)
        take = ok & ((v > best) | (v != v))  # larger, or NaN
        best = np.where(take, v, best)
        if index is not None:
            best_idx = np.where(take, i, best_idx)
    return best, best_idx


def pos_shape(a, axis, ndim):
    """A 1-d array shaped to broadcast along ``axis`` of an ``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = a.shape[0]
    return a.reshape(shape)


def adaptive_max_pool(x, out_size, out, indices):
    """Adaptive max pooling of ``x`` ``(N, C, *spatial)`` into ``out``
    ``(N, C, *out_size)`` (and the int64 in-plane offsets into ``indices``
    unless it is None)."""
    if out.size == 0:
        return
    nd = len(out_size)
    in_size = x.shape[2:]
    values = x
    index = None
    if indices is not None:
        index = np.zeros((1, 1) + (1,) * nd, dtype=np.int64)
        index = np.broadcast_to(index, x.shape)
    plane_strides = np.cumprod((1,) + tuple(in_size[:0:-1]))[::-1]
    for k in reversed(range(nd)):
        values, index = _max_along(values, index, 2 + k, in_size[k], out_size[k],
                                   int(plane_strides[k]))
    out[...] = values
    if indices is not None:
        indices[...] = index


def adaptive_max_pool_backward(grad_output, indices, in_size, grad_input):
    """Scatter-add through the forward's indices (shared maxima accumulate);
    False when an index lies outside its plane."""
    from types import SimpleNamespace

    geom = SimpleNamespace(nd=len(in_size), in_size=tuple(in_size),
                           out_size=tuple(grad_output.shape[2:]))
    return _reference.max_pool_backward(grad_output, indices, geom, grad_input)


def bin_counts(in_size, out_size):
    """The element count of every output bin, an int64 array of ``out_size``."""
    count = np.ones((), dtype=np.int64)
    for n_in, n_out in zip(in_size, out_size):
        start, end = bins(n_in, n_out)
        count = np.multiply.outer(count, end - start)
    return count


def _sum_along(values, axis, n_in, n_out):
    if _few_wide_bins(n_in, n_out):
        return np.concatenate(
            [np.take(values, np.arange(lo, hi), axis=axis).sum(axis=axis, keepdims=True)
             for lo, hi in zip(*bins(n_in, n_out))], axis)
    total = None
    for pos, valid in _taps(n_in, n_out):
        v = np.take(values, pos, axis=axis)
        v = np.where(pos_shape(valid, axis, v.ndim), v, 0)
        total = v if total is None else total + v
    return total


def adaptive_avg_pool(x, out_size, out, rounding="truncate"):
    """Adaptive average pooling of ``x`` into ``out`` (its dtype): bin sums
    over bin element counts, integers divided exactly (``"truncate"`` toward
    zero or ``"nearest"``, ties to even)."""
    if out.size == 0:
        return
    integer = x.dtype.kind in "iu"
    values = x.astype(np.int64) if integer else x
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in torch
        for k in reversed(range(len(out_size))):
            values = _sum_along(values, 2 + k, x.shape[2 + k], out_size[k])
        count = bin_counts(x.shape[2:], out_size)
        if integer:
            out[...] = _reference._int_divide(values, count, rounding).astype(x.dtype)
        else:
            out[...] = values / count.astype(x.dtype)


def adaptive_avg_pool_backward(grad_output, in_size, grad_input):
    """Each output gradient divided by its bin's count is added to every
    element of the bin (overlapping bins accumulate); the transposed
    reduction, one dimension at a time (the first first)."""
    nd = len(in_size)
    out_size = grad_output.shape[2:]
    if all(o == 1 for o in out_size):
        # one bin per plane: PyTorch takes the mean, whose gradient is the
        # quotient itself (not added to zeros: a -0 stays -0)
        with np.errstate(invalid="ignore", over="ignore"):
            grad_input[...] = grad_output / grad_output.dtype.type(
                int(np.prod(in_size, dtype=np.int64)))
        return
    with np.errstate(invalid="ignore", over="ignore"):
        g = grad_output / bin_counts(in_size, out_size).astype(grad_output.dtype)
        for k in range(nd):
            axis = 2 + k
            shape = list(g.shape)
            shape[axis] = in_size[k]
            acc = np.zeros(shape, dtype=g.dtype)
            acc_t = np.moveaxis(acc, axis, 0)   # a view: scatter along axis 0
            g_t = np.moveaxis(g, axis, 0)
            if _few_wide_bins(in_size[k], out_size[k]):
                for i, (lo, hi) in enumerate(zip(*bins(in_size[k], out_size[k]))):
                    acc_t[lo:hi] += g_t[i]
            else:
                for pos, valid in _taps(in_size[k], out_size[k]):
                    np.add.at(acc_t, pos[valid], g_t[valid])
            g = acc
    grad_input[...] = g
