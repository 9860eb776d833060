"""The reference backend: plain NumPy, written to be read.

This module is the oracle that every compiled result is tested against and
the backend that runs wherever the compiled extension cannot load.  It never
imports the extension.  Speed is not a goal here; obvious correctness is.

Every function receives validated arguments from :mod:`cypool._params`:
arrays laid out as ``(N, C, *spatial)`` (possibly as strided views), a
:class:`~cypool._params.Geometry`, and the output arrays to fill.

The method is the same everywhere.  Output ``o`` of a dimension has its
window at input positions ``o*stride - pad_before + t*dilation`` for taps
``t = 0 .. kernel-1``.  The kernel taps are visited one at a time in
PyTorch's scan order (row-major over the kernel); for one tap, the outputs
whose position is inside the input form a contiguous range, and the input
elements under the tap form a strided slice, so each tap is one slice
operation.  Positions outside the input are padding: they contribute nothing
(max pooling treats them as -inf, average pooling as 0).
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward"]


def _ceil_div(a, b):
    return -(-a // b)


def _tap_slices(L, s, d, before, out, t):
    """For tap ``t`` of one dimension: (output slice, input slice) of the
    outputs whose tap position lies in [0, L), or None if there are none."""
    first = max(0, _ceil_div(before - t * d, s))            # position >= 0
    last = min(out - 1, (L - 1 + before - t * d) // s)      # position <= L-1
    if first > last:
        return None
    start = first * s - before + t * d
    return slice(first, last + 1), slice(start, start + (last - first) * s + 1, s)


def _useful_taps(L, k, s, d, before, out):
    """The taps (ascending) that are in bounds for at least one output.

    Output ``o`` sees taps ``t`` with ``0 <= o*s - before + t*d < L``: an
    interval of ``t`` that moves down as ``o`` grows.  The union of these
    intervals is returned, so that kernels far larger than the input cost no
    more than the input.  (Validation keeps every value below 2**62, so the
    int64 arithmetic cannot overflow.)
    """
    o = np.arange(out - 1, -1, -1, dtype=np.int64)  # ascending intervals
    lo = np.maximum(0, (before - o * s + d - 1) // d)
    hi = np.minimum(k, (L + before - o * s + d - 1) // d)
    keep = lo < hi
    lo, hi = lo[keep], hi[keep]
    if lo.size == 0:
        return []
    reach = np.maximum.accumulate(hi)
    starts = np.flatnonzero(np.r_[True, lo[1:] > reach[:-1]])  # gaps open new runs
    ends = np.r_[starts[1:], lo.size] - 1
    return [t for a, b in zip(lo[starts], reach[ends]) for t in range(int(a), int(b))]


def _taps(geom):
    """Yield, for every useful tap in scan order, the per-dimension
    (output slice, input slice) pairs; taps in bounds for no output of some
    dimension are skipped."""
    dims = list(zip(geom.in_size, geom.kernel, geom.stride, geom.dilation,
                    geom.pad_before, geom.out_size))
    per_dim = [_useful_taps(L, k, s, d, b, o) for L, k, s, d, b, o in dims]
    for tap in itertools.product(*per_dim):
        pairs = [_tap_slices(L, s, d, b, o, t)
                 for (L, k, s, d, b, o), t in zip(dims, tap)]
        if None not in pairs:
            yield tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


ALL = (slice(None), slice(None))  # the batch and channel axes


def max_pool(x, geom, out, indices):
    """Max pooling with PyTorch's rules.

    Each output takes the largest value of its window, NaN winning over
    everything; ties keep the first tap in scan order; the index is the flat
    in-plane offset of the winner.  A window whose values are all the lowest
    value keeps its first in-bounds tap; one with no in-bounds tap at all
    (possible with dilation) is ``-inf`` (the dtype's minimum for integers)
    with index -1.  Indices are only computed when asked for.
    """
    best = np.full(x.shape[:2] + geom.out_size, _lowest(x.dtype), dtype=x.dtype)
    if indices is not None:
        best_idx = np.full(best.shape, -1, dtype=np.int64)
        seen = np.zeros(geom.out_size, dtype=bool)  # window met an in-bounds tap?
    for osl, isl in _taps(geom):
        v = x[ALL + isl]
        b = best[ALL + osl]
        take = (v > b) | (v != v)  # larger, or NaN
        if indices is not None:
            p = _flat_index(geom.in_size, isl)
            bi = best_idx[ALL + osl]
            first = ~seen[osl]  # PyTorch's initial index: the first in-bounds tap
            seen[osl] = True
            bi[...] = np.where(take | first, p, bi)
        b[...] = np.where(take, v, b)
    out[...] = best
    if indices is not None:
        indices[...] = best_idx


def _flat_index(in_size, isl):
    """Flat in-plane offsets ``(d*H + h)*W + w`` of the input elements that
    the slices ``isl`` select, in the slices' shape."""
    plane_strides = np.cumprod((1,) + tuple(in_size[:0:-1]))[::-1]
    flat = np.zeros((), dtype=np.int64)
    for sl, stride in zip(isl, plane_strides):
        flat = np.add.outer(flat, np.arange(sl.start, sl.stop, sl.step, dtype=np.int64)
                            * int(stride))
    return flat


def max_pool_backward(grad_output, indices, geom, grad_input, stream=False):
    """Add each output gradient into the input element its index names.

    Outputs sharing an argmax accumulate (in C order); index -1 (a dilation
    hole) contributes nothing.  Returns False if an index is out of range.
    ``stream`` (the caller's array, not fresh memory) concerns only how the
    compiled kernel stores; it is ignored here.
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

    Per dimension, the window ``[o*s - before, o*s - before + k)`` is
    intersected with the counted range: the input and its real padding
    ``[-before, L + after)`` with ``count_include_pad`` (so the ceil-mode
    overhang beyond the padding never counts), the input ``[0, L)`` without.
    The divisor is the product over dimensions.
    """
    if divisor_override is not None:
        return np.full(geom.out_size, divisor_override, dtype=np.int64)
    count = np.ones((), dtype=np.int64)
    for L, k, s, b, a, n in zip(geom.in_size, geom.kernel, geom.stride,
                                geom.pad_before, geom.pad_after, geom.out_size):
        start = np.arange(n, dtype=np.int64) * s - b
        lo, hi = (-b, L + a) if count_include_pad else (0, L)
        inside = np.minimum(start + k, hi) - np.maximum(start, lo)
        count = np.multiply.outer(count, inside)
    return count


def avg_pool(x, geom, out, count_include_pad, divisor_override, rounding="truncate"):
    """Average pooling: the window sum (taps added in scan order, in the
    input's dtype) divided by PyTorch's divisor.

    Integer input is summed in int64 (wrapping on overflow) and divided
    exactly, rounded toward zero (``"truncate"``, PyTorch's int64 rule) or to
    nearest with ties to even (``"nearest"``); the quotient is stored in the
    input's dtype (wrapping, as a C cast, if ``divisor_override`` pushes it
    out of range).
    """
    div = _divisor(geom, count_include_pad, divisor_override)
    if x.dtype.kind in "iu":
        total = np.zeros(x.shape[:2] + geom.out_size, dtype=np.int64)
        with np.errstate(over="ignore"):
            for osl, isl in _taps(geom):
                total[ALL + osl] += x[ALL + isl]
        out[...] = _int_divide(total, div, rounding).astype(x.dtype)
        return
    total = np.zeros(x.shape[:2] + geom.out_size, dtype=x.dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as in torch
        for osl, isl in _taps(geom):
            total[ALL + osl] += x[ALL + isl]
        out[...] = total / div.astype(x.dtype)


def _int_divide(s, d, rounding):
    """Exact integer quotient ``s / d`` (int64 arrays, d != 0, d > int64
    minimum), rounded toward zero or to nearest with ties to even.  Both
    roundings are odd in ``d``: the quotient by ``|d|`` is negated where
    ``d < 0`` (wrapping, as int64 arithmetic does, for the minimum / -1)."""
    with np.errstate(over="ignore"):
        neg = d < 0
        d = np.abs(d)
        q, r = np.divmod(s, d)        # floor quotient, 0 <= r < d
        if rounding == "truncate":
            q = q + ((r != 0) & (s < 0))
        else:
            q = q + ((r > d - r) | ((r == d - r) & (q % 2 == 1)))
        return np.where(neg, -q, q)


def avg_pool_backward(grad_output, geom, grad_input, count_include_pad,
                      divisor_override, stream=False):
    """Each output gradient, divided by its divisor, is added to every input
    element of its window; padding positions are dropped.  (``stream``: a
    hint for the compiled kernels, unused here.)"""
    div = _divisor(geom, count_include_pad, divisor_override)
    acc = np.zeros(grad_input.shape, dtype=grad_output.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        g = grad_output / div.astype(grad_output.dtype)
        for osl, isl in _taps(geom):
            acc[ALL + isl] += g[ALL + osl]
    grad_input[...] = acc
