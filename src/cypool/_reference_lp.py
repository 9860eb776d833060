"""Lp (power-average) pooling in plain NumPy, written to be read.

The oracle for the compiled Lp kernels.  It spells out PyTorch 2.13's
composite definition (``torch.nn.functional.lp_pool{1,2,3}d``) step by step,
and its backward is what autograd gives for that composite:

``norm_type = p`` finite::

    u = x ** p                                   # no abs: signed input stays signed
    a = avg_pool(u, k, s, padding=0, ceil_mode)  # window sum / in-bounds count
    t = sign(a) * relu(|a|)                      # = a, except -0 -> +0
    y = (t * prod(k)) ** (1 / p)

so a ceil-mode edge window, whose average divides by its clipped count, is
rescaled by the full kernel size.  ``p = +inf`` is ``max_pool(|x|)``,
``p = -inf`` is ``-max_pool(-|x|)`` (the minimum of ``|x|``), both with the
max-pooling rules (NaN propagates, ties keep the first tap).

Arrays arrive validated as ``(N, C, *spatial)`` views with a
:class:`~cypool._params.Geometry` (no padding, unit dilation).  Never
imports the compiled extension.
"""

from __future__ import annotations

import math

import numpy as np

from . import _reference

__all__ = ["lp_pool", "lp_pool_backward"]

ALL = _reference.ALL


def _torch_sign(v):
    """``torch.sign``: -1, 0 or 1, and 0 for NaN (NumPy's sign gives NaN)."""
    return np.where(np.isnan(v), 0, np.sign(v)).astype(v.dtype)


def _pow(x, q):
    """``x ** q`` as PyTorch's pow kernel computes it.  NumPy agrees except
    for ``q = -0.5``, which PyTorch evaluates as ``1 / sqrt(x)`` (so ``-inf``
    gives NaN and ``-0`` gives ``-inf``, where ``pow`` gives 0 and ``+inf``)."""
    if q == -0.5:
        return 1 / np.sqrt(x)
    return x ** q


def _window_sum(u, geom):
    """Sum of every window of ``u``, taps added in PyTorch's scan order."""
    total = np.zeros(u.shape[:2] + geom.out_size, dtype=u.dtype)
    for osl, isl in _reference._taps(geom):
        total[ALL + osl] += u[ALL + isl]
    return total


def _composite_parts(x, geom, p):
    """The composite's intermediate values: ``a`` (the window average of
    ``x**p``), ``t`` (the rectified, kernel-scaled average that the root is
    taken of) and the per-window count."""
    count = _reference._divisor(geom, True, None).astype(x.dtype)  # clipped: no padding
    u = _pow(x, p)
    a = _window_sum(u, geom) / count
    t = np.where(a == 0, 0, a).astype(x.dtype)  # sign(a) * relu(|a|): -0 becomes +0
    t = t * x.dtype.type(math.prod(geom.kernel))
    return a, t, count


def _extreme_indices(x, geom, p):
    """Values and argmax indices of ``max_pool(|x|)`` (p = inf) or of
    ``max_pool(-|x|)`` (p = -inf)."""
    v = np.abs(x) if p > 0 else -np.abs(x)
    best = np.empty(x.shape[:2] + geom.out_size, dtype=x.dtype)
    idx = np.empty(best.shape, dtype=np.int64)
    _reference.max_pool(v, geom, best, idx)
    return best, idx


def lp_pool(x, geom, p, out):
    """Fill ``out`` with the Lp pooling of ``x`` (``p`` a non-zero float or
    ``±inf``)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        if math.isinf(p):
            best, _ = _extreme_indices(x, geom, p)
            out[...] = best if p > 0 else -best
            return
        _, t, _ = _composite_parts(x, geom, p)
        out[...] = _pow(t, 1.0 / p)


def lp_pool_backward(grad_output, x, geom, p, grad_input):
    """Fill ``grad_input`` with autograd's gradient of the composite.

    Finite ``p``, by the chain rule through each step of the forward::

        grad_t = g * (1/p) * t ** (1/p - 1)          # pow backward
        grad_a = grad_t * prod(k) * sign(a), zeroed where relu(|a|) <= 0,
                 times sgn(a)                         # mul, relu, abs backward
        grad_u = sum over windows of grad_a / count   # avg_pool backward
        grad_x = grad_u * (p * x ** (p - 1))          # pow backward

    so a window whose sum of ``x**p`` is zero passes no gradient (relu's
    mask), while ``0 * inf`` in the last step still gives NaN where PyTorch's
    does.  ``p = ±inf``: the max-pooling gradient (to the first extreme
    element of each window, accumulated) times ``sgn(x)`` (0 for NaN).
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        if math.isinf(p):
            _, idx = _extreme_indices(x, geom, p)
            acc = np.empty(grad_input.shape, dtype=grad_output.dtype)
            _reference.max_pool_backward(grad_output, idx, geom, acc)
            grad_input[...] = acc * _torch_sign(x)
            return
        dt = x.dtype.type
        a, t, count = _composite_parts(x, geom, p)
        e = 1.0 / p
        grad_t = grad_output * (dt(e) * _pow(t, e - 1))
        grad_r = grad_t * dt(math.prod(geom.kernel)) * _torch_sign(a)
        r = np.maximum(np.abs(a), 0)  # relu(|a|); NaN stays NaN and passes
        grad_abs = np.where(r <= 0, dt(0), grad_r)
        grad_a = grad_abs * _torch_sign(a)
        g = grad_a / count
        grad_u = np.zeros(grad_input.shape, dtype=x.dtype)
        for osl, isl in _reference._taps(geom):
            grad_u[ALL + isl] += g[ALL + osl]
        grad_input[...] = grad_u * (dt(p) * _pow(x, p - 1))
