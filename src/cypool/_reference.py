"""The reference backend: plain NumPy, written to be read.

This module is the oracle that every compiled result is tested against and
the backend that runs wherever the compiled extension cannot load.  It never
imports the extension.  Speed is not a goal here; obvious correctness is.

Every function receives validated arguments from :mod:`cypool._params`:
arrays laid out as ``(N, C, *spatial)`` (possibly as strided views), a
:class:`~cypool._params.Geometry`, and the output arrays to fill.

The method is the same everywhere: pad the input so that every window lies
inside the padded array, then visit the kernel taps one at a time in
PyTorch's scan order (row-major over the kernel), each tap being one strided
slice that lines up with the output grid.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward"]


def _padded_layout(geom):
    """Padding per spatial dim so that every window (ceil overhang included)
    lies inside the padded array: ``[(before, after), ...]``."""
    pads = []
    for L, k, s, d, b, o in zip(geom.in_size, geom.kernel, geom.stride,
                                geom.dilation, geom.pad_before, geom.out_size):
        reach = (o - 1) * s + (k - 1) * d + 1  # padded length the windows span
        pads.append((b, max(0, reach - b - L)))
    return pads


def _taps(geom):
    """Yield ``(tap, slices)`` in scan order; ``slices`` pick, for every output
    position, the padded-array element under that tap."""
    for tap in itertools.product(*(range(k) for k in geom.kernel)):
        yield tap, tuple(
            slice(t * d, t * d + (o - 1) * s + 1, s)
            for t, d, o, s in zip(tap, geom.dilation, geom.out_size, geom.stride)
        )


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def max_pool(x, geom, out, indices):
    """Max pooling with PyTorch's rules.

    Each output takes the largest value of its window, NaN winning over
    everything; ties keep the first tap in scan order; the index is the flat
    in-plane offset of the winner.  A window whose values are all the lowest
    value keeps its first in-bounds tap; one with no in-bounds tap at all
    (possible with dilation) is ``-inf`` (the dtype's minimum for integers)
    with index -1.
    """
    pads = _padded_layout(geom)
    low = _lowest(x.dtype)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads, constant_values=low)
    # flat in-plane index of each padded position, -1 for padding
    pos = np.pad(
        np.arange(np.prod(geom.in_size), dtype=np.int64).reshape(geom.in_size),
        pads, constant_values=-1,
    )
    out_shape = x.shape[:2] + geom.out_size
    best = np.full(out_shape, low, dtype=x.dtype)
    best_idx = np.full(out_shape, -1, dtype=np.int64)
    seen = np.zeros(geom.out_size, dtype=bool)  # window met an in-bounds tap?
    for _, sl in _taps(geom):
        v = xp[(slice(None), slice(None)) + sl]
        p = pos[sl]
        inside = p >= 0
        first = inside & ~seen  # PyTorch's initial index: first in-bounds tap
        best_idx = np.where(first, p, best_idx)
        seen |= inside
        take = inside & ((v > best) | (v != v))  # larger, or NaN
        best = np.where(take, v, best)
        best_idx = np.where(take, p, best_idx)
    out[...] = best
    if indices is not None:
        indices[...] = best_idx


def max_pool_backward(grad_output, indices, geom, grad_input):
    """Add each output gradient into the input element its index names.

    Outputs sharing an argmax accumulate (in C order); index -1 (a dilation
    hole) contributes nothing.  Returns False if an index is out of range.
    """
    n, c = grad_output.shape[:2]
    plane = int(np.prod(geom.in_size))
    idx = indices.reshape(n * c, int(np.prod(geom.out_size)))
    if idx.size and (idx.min() < -1 or idx.max() >= plane):
        return False
    go = grad_output.reshape(idx.shape)
    rows = np.broadcast_to(np.arange(n * c)[:, None], idx.shape)
    keep = idx >= 0
    acc = np.zeros((n * c, plane), dtype=grad_output.dtype)
    np.add.at(acc, (rows[keep], idx[keep]), go[keep])
    grad_input[...] = acc.reshape(grad_input.shape)
    return True


def _divisor(geom, count_include_pad, divisor_override):
    """PyTorch's average divisor for every output position.

    Counted, not computed by formula: the window is laid over a mask that is
    1 on the input and (with ``count_include_pad``) on the real padding, and
    0 on the ceil-mode overhang, which never counts.
    """
    if divisor_override is not None:
        return np.full(geom.out_size, divisor_override, dtype=np.int64)
    mask = np.ones((), dtype=np.int64)
    for (b, e), L, a in zip(_padded_layout(geom), geom.in_size, geom.pad_after):
        pos = np.arange(b + L + e)
        if count_include_pad:
            counted = pos < b + L + a  # the input and its real padding
        else:
            counted = (pos >= b) & (pos < b + L)  # the input only
        mask = np.multiply.outer(mask, counted.astype(np.int64))
    count = np.zeros(geom.out_size, dtype=np.int64)
    for _, sl in _taps(geom):
        count += mask[sl]
    return count


def avg_pool(x, geom, out, count_include_pad, divisor_override):
    """Average pooling: the window sum (taps added in scan order, in the
    input's dtype) divided by PyTorch's divisor."""
    pads = _padded_layout(geom)
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    total = np.zeros(x.shape[:2] + geom.out_size, dtype=x.dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in torch
        for _, sl in _taps(geom):
            total += xp[(slice(None), slice(None)) + sl]
        div = _divisor(geom, count_include_pad, divisor_override)
        out[...] = total / div.astype(x.dtype)


def avg_pool_backward(grad_output, geom, grad_input, count_include_pad,
                      divisor_override):
    """Each output gradient, divided by its divisor, is added to every input
    element of its window; padding positions are dropped."""
    pads = _padded_layout(geom)
    div = _divisor(geom, count_include_pad, divisor_override)
    padded = tuple(b + L + a for (b, a), L in zip(pads, geom.in_size))
    acc = np.zeros(grad_output.shape[:2] + padded, dtype=grad_output.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        g = grad_output / div.astype(grad_output.dtype)
        for _, sl in _taps(geom):
            acc[(slice(None), slice(None)) + sl] += g
    inner = tuple(slice(b, b + L) for (b, _), L in zip(pads, geom.in_size))
    grad_input[...] = acc[(slice(None), slice(None)) + inner]
