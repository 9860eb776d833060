"""Max unpooling in plain NumPy, written to be read.

The oracle for the compiled unpooling kernels.  Arrays arrive validated as
``(N, C, *spatial)`` views: ``x`` and ``indices`` of the pooled shape, the
output (or, in the backward, the output gradient) of the unpooled shape.
Indices are flat offsets ``(d*H + h)*W + w`` into each ``(n, c)`` plane of
the unpooled array; -1 (the dilation-hole index of max pooling) is skipped.
Both functions return False, before writing anything, when another index
lies outside ``[0, plane size)``.  Never imports the compiled extension.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["max_unpool", "max_unpool_backward"]


def _planes(indices, plane):
    """Indices as ``(N*C, positions)`` rows, or None if one is out of range."""
    n, c = indices.shape[:2]
    idx = indices.reshape(n * c, -1)
    if idx.size and (idx.min() < -1 or idx.max() >= plane):
        return None
    return idx


def max_unpool(x, indices, out):
    """``out[n, c].flat[indices[n, c, ...]] = x[n, c, ...]`` on a zeroed
    ``out``.

    Repeated indices are deterministic: of the input positions (in C order
    of each input plane) that name the same output slot, the last one wins.
    NumPy does not promise an order for repeated fancy assignments, so the
    winners are picked explicitly and each slot is assigned once.
    """
    n, c = x.shape[:2]
    plane = math.prod(out.shape[2:])
    idx = _planes(indices, plane)
    if idx is None:
        return False
    keep = idx >= 0
    slots = (np.arange(n * c, dtype=np.int64)[:, None] * plane + idx)[keep]
    values = x.reshape(idx.shape)[keep]
    # last occurrence of each slot = first occurrence in the reversed list
    _, first_reversed = np.unique(slots[::-1], return_index=True)
    last = slots.size - 1 - first_reversed
    result = np.zeros(n * c * plane, dtype=out.dtype)
    result[slots[last]] = values[last]
    out[...] = result.reshape(out.shape)
    return True


def max_unpool_backward(grad_output, indices, grad_input):
    """The gather ``grad_input[n, c, i] = grad_output[n, c].flat[indices[n,
    c, i]]`` (0 where the index is -1).  Repeated indices each receive the
    full gradient, as in PyTorch."""
    n, c = indices.shape[:2]
    plane = math.prod(grad_output.shape[2:])
    idx = _planes(indices, plane)
    if idx is None:
        return False
    go = grad_output.reshape(n * c, plane)
    rows = np.arange(n * c)[:, None]
    gathered = go[rows, np.maximum(idx, 0)]
    gathered[idx < 0] = 0
    grad_input[...] = gathered.reshape(grad_input.shape)
    return True
