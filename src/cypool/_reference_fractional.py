"""Fractional max pooling in plain NumPy: the oracle of the compiled kernels.

PyTorch's interval sequence (``aten/src/ATen/native/FractionalMaxPooling.h``,
``generate_intervals``), per dimension and per ``(n, c)`` plane, for a sample
``u`` in ``[0, 1)``::

    alpha    = (In - k) / (Out - 1)                      # Out > 1
    start[i] = int((i + u) * alpha) - int(u * alpha)     # i < Out - 1
    start[Out - 1] = In - k

The arithmetic runs in the precision the caller chooses (``ftype``): float32
for float32 input, float64 otherwise, which is what makes the windows (and so
the indices) identical to PyTorch's for the same samples.  Starts are clamped
to ``[0, In - k]`` (only float32 rounding on huge sizes could leave that
range; PyTorch asserts there instead), so no window ever leaves the input.

Each window is ``k`` consecutive elements from its start in every dimension;
the maximum follows max pooling's rule: taps in row-major order, a tap wins
when it is greater than the best so far or NaN, so NaN propagates (the last
NaN's index) and ties keep the first occurrence.
"""

from __future__ import annotations

import numpy as np

__all__ = ["intervals", "fractional_max_pool"]


def intervals(u, in_size, out_size, kernel, ftype):
    """Window starts, int64 of shape ``u.shape + (out_size,)``.

    ``u`` holds one sample per plane, in ``[0, 1)``; it is rounded to
    ``ftype`` and every operation runs in ``ftype``.
    """
    ftype = np.dtype(ftype).type
    u = np.asarray(u).astype(ftype)
    starts = np.empty(u.shape + (out_size,), dtype=np.int64)
    if out_size == 0:
        return starts
    if out_size > 1:
        alpha = ftype(in_size - kernel) / ftype(out_size - 1)
        i = np.arange(out_size - 1).astype(ftype)
        # float -> int64 conversion truncates toward zero, as C's static_cast
        a = ((i + u[..., None]) * alpha).astype(np.int64)
        b = (u * alpha).astype(np.int64)
        starts[..., :-1] = a - b[..., None]
    starts[..., -1] = in_size - kernel
    np.clip(starts, 0, in_size - kernel, out=starts)
    return starts


def fractional_max_pool(x, kernel, samples, ftype, out, indices):
    """Fill ``out`` (and ``indices`` unless None).

    ``x``: ``(N, C, *spatial)`` with 2 or 3 spatial dims; ``kernel``: one int
    per spatial dim; ``samples``: ``(N, C, nd)`` in the spatial dims' order
    (the caller reorders PyTorch's layout); ``out``/``indices``:
    ``(N, C, *out_spatial)`` arrays (any strides).
    """
    nd = x.ndim - 2
    n, c = x.shape[:2]
    in_size = x.shape[2:]
    out_size = out.shape[2:]
    if n * c == 0 or 0 in out_size:
        return
    planes = x.reshape((n * c,) + in_size)
    u = np.asarray(samples).reshape(n * c, nd)
    # starts[d]: (P, Out_d), broadcast to (P, Out_0, ..., Out_{nd-1}) below
    starts = []
    for d in range(nd):
        s = intervals(u[:, d], in_size[d], out_size[d], kernel[d], ftype)
        shape = [n * c] + [1] * nd
        shape[1 + d] = out_size[d]
        starts.append(s.reshape(shape))
    p = np.arange(n * c).reshape([n * c] + [1] * nd)

    best = bidx = None
    for tap in np.ndindex(*kernel):
        pos = [s + t for s, t in zip(starts, tap)]
        v = planes[(p, *pos)]
        flat = np.ravel_multi_index(pos, in_size)
        if best is None:
            # the first tap always wins against PyTorch's initial -inf (or the
            # integer minimum) with the first tap's index
            best, bidx = v.copy(), np.broadcast_to(flat, v.shape).copy()
            continue
        take = v > best
        if best.dtype.kind == "f":
            take |= np.isnan(v)
        best = np.where(take, v, best)
        bidx = np.where(take, flat, bidx)
    out[...] = best.reshape(out.shape)
    if indices is not None:
        indices[...] = bidx.reshape(indices.shape)
