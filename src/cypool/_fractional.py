"""Fractional max pooling (Graham, 2014), 2-d and 3-d, forward and backward.

Windows of ``kernel_size`` consecutive elements start at PyTorch's
pseudo-random interval sequence (``generate_intervals`` in
``aten/src/ATen/native/FractionalMaxPooling.h``), one sample ``u`` in
``[0, 1)`` per ``(n, c)`` plane and spatial dimension::

    alpha    = (In - k) / (Out - 1)
    start[i] = int((i + u) * alpha) - int(u * alpha)      for i < Out - 1
    start[Out - 1] = In - k

Given the same samples (PyTorch's ``_random_samples``), cypool returns
PyTorch's values and indices bit for bit: the arithmetic runs in the input's
precision, float32 for float32 input and float64 for float64 input, exactly
as PyTorch's CPU kernel.  Integer input (which PyTorch rejects) uses float64.

Differences from ``torch.nn.functional.fractional_max_pool2d/3d``:

* samples are taken explicitly (``random_samples``, PyTorch's
  ``_random_samples`` layout) or drawn from ``numpy.random.default_rng(seed)``
  (PyTorch draws them with ``torch.rand``, which NumPy cannot reproduce);
* exactly one of ``output_size`` and ``output_ratio`` must be given (PyTorch
  silently ignores ``output_ratio`` when both are);
* ``output_ratio`` may be a single float (PyTorch wants a tuple), and each
  ratio must lie in ``(0, 1)`` (as ``torch.nn.FractionalMaxPool2d`` checks);
* ``kernel_size`` must be at least 1 (PyTorch silently accepts 0);
* every max-pooling dtype is accepted (PyTorch: floating types only);
* ``C = 0`` gives an empty result (PyTorch raises).
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np

from . import _backend, _reference_fractional
from ._params import (FLOAT_DTYPES, MAX_DTYPES, Geometry, as_int_tuple,
                      check_dtype, check_input, to_nc_first)
from ._pooling import _check_flag, _check_input_shape, _result, _user_shape

__all__ = [
    "fractional_max_pool2d", "fractional_max_pool3d",
    "fractional_max_pool2d_backward", "fractional_max_pool3d_backward",
]

_DIM_NAMES = {2: ("height", "width"), 3: ("time", "height", "width")}


# ------------------------------------------------------------------ helpers

def _interval_dtype(dtype):
    """The precision of the interval arithmetic: PyTorch computes in the
    input's dtype; integer input (not supported by PyTorch) uses float64."""
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _kernel(kernel_size, nd, op):
    kernel = as_int_tuple(kernel_size, nd, "kernel_size")
    for k in kernel:
        if k < 1:
            raise ValueError(f"{op}: kernel_size must be positive (>= 1), got {kernel_size!r}")
    return kernel


def _output_size(output_size, output_ratio, in_size, kernel, nd, op):
    """The output's spatial size from exactly one of the two arguments,
    checked against PyTorch's rule ``Out + k - 1 <= In``."""
    if (output_size is None) == (output_ratio is None):
        raise ValueError(
            f"{op}: give exactly one of output_size and output_ratio"
            + (" (both were given)" if output_size is not None else "")
        )
    if output_size is not None:
        out = as_int_tuple(output_size, nd, "output_size")
        if any(o < 0 for o in out):
            raise ValueError(f"{op}: output_size must be non-negative, got {output_size!r}")
    else:
        ratio = output_ratio
        if isinstance(ratio, np.ndarray):
            ratio = ratio.tolist()
        if isinstance(ratio, (tuple, list)):
            if len(ratio) == 1:
                ratio = tuple(ratio) * nd
            if len(ratio) != nd:
                raise ValueError(
                    f"{op}: output_ratio must be a number or a tuple of {nd} numbers, "
                    f"got {len(ratio)} values"
                )
        else:
            ratio = (ratio,) * nd
        for r in ratio:
            if isinstance(r, (bool, np.bool_)) or not isinstance(r, numbers.Real):
                raise TypeError(
                    f"{op}: output_ratio must be a number or a tuple of numbers, "
                    f"not {type(r).__name__}"
                )
            if not 0 < r < 1:
                raise ValueError(
                    f"{op}: output_ratio must lie in the open interval (0, 1), "
                    f"got {output_ratio!r}"
                )
        # PyTorch's rule, in Python (double) arithmetic: int(In * ratio)
        out = tuple(int(L * float(r)) for L, r in zip(in_size, ratio))
    # PyTorch's rule: 2-d needs Out + k - 1 <= In; its 3-d check is strict
    # (Out + k - 1 < In), and cypool rejects what PyTorch rejects
    strict = nd == 3
    for name, L, k, o in zip(_DIM_NAMES[nd], in_size, kernel, out):
        if o + k - 1 > L - strict:
            raise ValueError(
                f"{op}: kernel_size {k} too large for output size {o} along the "
                f"{name} (input size {L}): output_size + kernel_size - 1 must be "
                + ("smaller than the input size (PyTorch's 3-d rule)" if strict
                   else "at most the input size")
            )
    return out


def _samples(random_samples, seed, n, c, nd, batched, ftype, op):
    """Samples as an ``(N, C, nd)`` array of ``ftype`` in PyTorch's order
    (2-d: W then H; 3-d: T, H, W)."""
    if random_samples is None:
        if seed is None or isinstance(seed, np.random.Generator):
            rng = np.random.default_rng(seed)
        else:
            if isinstance(seed, (bool, np.bool_)):
                raise TypeError(f"{op}: seed must be an int, None or a numpy Generator, not bool")
            try:
                seed = operator.index(seed)
            except TypeError:
                raise TypeError(
                    f"{op}: seed must be an int, None or a numpy Generator, "
                    f"not {type(seed).__name__}"
                ) from None
            if seed < 0:
                raise ValueError(f"{op}: seed must be non-negative, got {seed}")
            rng = np.random.default_rng(seed)
        # drawn directly in the interval precision: always in [0, 1)
        return rng.random((n, c, nd), dtype=ftype.type)
    if seed is not None:
        raise ValueError(f"{op}: give random_samples or seed, not both")
    s = random_samples if isinstance(random_samples, np.ndarray) else np.asarray(random_samples)
    if s.dtype.kind != "f":
        raise TypeError(
            f"{op}: random_samples must be a floating-point array, got dtype {s.dtype}"
        )
    if not batched and s.ndim == 2:
        s = s[np.newaxis]
    if s.ndim != 3 or s.shape[1] != c or s.shape[2] != nd or s.shape[0] < n:
        expect = f"(N, {c}, {nd}) with N >= {n}" if batched else f"(1, {c}, {nd}) or ({c}, {nd})"
        raise ValueError(
            f"{op}: random_samples must have shape {expect} "
            f"(PyTorch's _random_samples layout), got {s.shape}"
        )
    s = s[:n]  # further rows are ignored, as in PyTorch
    if s.size and not bool(np.all((s >= 0) & (s < 1))):
        raise ValueError(f"{op}: random_samples must lie in [0, 1)")
    # rounded to the interval precision, as PyTorch requires samples of the
    # input's dtype
    return s.astype(ftype)


def _tiles(spatial, in_size, out_size, kernel, ftype):
    """Whether every plane's windows start at ``i * k`` in every dimension
    (PyTorch's sequences, computed as the kernels compute them, in
    ``ftype``): the windows then tile the input (kernel = stride, no
    padding) and max pooling's kernels give the same values and indices.
    That needs ``In - k == k * (Out - 1)`` (ratio 1/k: a cheap first
    test); float rounding of ``(i + u) * alpha`` can still move a start
    for samples near 1 (u = 1 - 2**-24 in float32 moves the second one), so
    the sequences decide.  Measured on (32, 64, 112, 112) float32, kernel
    2, ratio 0.5, 1 thread (AMD EPYC), same process: 6.77 -> 4.31 ms
    (1.57x) with the sequences computed for every plane (0.42 ms of it);
    the test for power-of-two kernels below takes 0.017 ms; with indices
    1.46x."""
    if any(o < 2 or i - k != k * (o - 1) for i, o, k in zip(in_size, out_size, kernel)):
        return False
    for d, (i, o, k) in enumerate(zip(in_size, out_size, kernel)):
        u = np.asarray(spatial[..., d]).astype(ftype).astype(np.float64)
        if k & (k - 1) == 0:
            # alpha = k, a power of two: products by it are exact, so only the
            # rounding of i + u can move a start, and only up across the next
            # multiple of 1/k; samples farther from it than an ulp of Out
            # (which bounds the ulp of every i + u) leave every start at i*k.
            # 70x cheaper than the sequences on the benchmark's 2048 planes.
            gap = (np.floor(u * k) + 1) / k - u
            if (gap > np.spacing(np.dtype(ftype).type(o))).all():
                continue
        starts = _reference_fractional.intervals(spatial[..., d], i, o, k, ftype)
        if not (starts == k * np.arange(o)).all():
            return False
    return True


def _fractional(nd, op, input, kernel_size, output_size, output_ratio, return_indices,
                random_samples, seed, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    return_indices = _check_flag(return_indices, "return_indices")
    x, batched = check_input(input, nd, op, MAX_DTYPES, channels_last=channels_last)
    kernel = _kernel(kernel_size, nd, op)
    in_size = x.shape[2:]
    out_size = _output_size(output_size, output_ratio, in_size, kernel, nd, op)
    n, c = x.shape[:2]
    ftype = _interval_dtype(x.dtype)
    samples = _samples(random_samples, seed, n, c, nd, batched, ftype, op)
    if math.prod(out_size) * max(n * c, 1) > 2**62:
        raise ValueError(f"{op}: output of size {out_size} too large to allocate")

    shape4 = (n, c) + out_size
    out_idx = None
    if return_indices and isinstance(out, tuple):
        if len(out) != 2:
            raise ValueError(f"{op}: out must be an array or a (values, indices) pair")
        out, out_idx = out
    elif isinstance(out, tuple):
        raise TypeError(f"{op}: out must be an array (a (values, indices) pair only "
                        "with return_indices=True)")
    res, res4 = _result(out, shape4, x.dtype, channels_last, batched, op, "out",
                        (x, random_samples))
    idx = idx4 = None
    if return_indices:
        idx, idx4 = _result(out_idx, shape4, np.int64, channels_last, batched, op,
                            "out indices", (x, res, random_samples))

    if n * c and math.prod(out_size):
        # spatial order (D,) H, W; PyTorch's 2-d samples are (W, H)
        spatial = samples[..., ::-1] if nd == 2 else samples
        if _backend.use_compiled() and _tiles(spatial, in_size, out_size, kernel, ftype):
            # windows that tile the input: max pooling's kernels (1.5x)
            from . import _compiled

            expand = (slice(None), slice(None)) + (None,) * (3 - nd)
            kt = (1,) * (3 - nd) + kernel
            _compiled.run(_compiled._kernels.max_pool_forward, x[expand], res4[expand],
                          None if idx4 is None else idx4[expand], kt, kt, (1, 1, 1),
                          (0, 0, 0))
        elif _backend.use_compiled():
            from . import _compiled

            u3 = np.zeros((n, c, 3), dtype=np.float64)
            u3[..., 3 - nd:] = spatial  # exact: float32 -> float64
            expand = (slice(None), slice(None)) + (None,) * (3 - nd)
            _compiled.run(
                _compiled.family("_fractional").fractional_max_pool_forward,
                x[expand], res4[expand], None if idx4 is None else idx4[expand],
                u3, (1,) * (3 - nd) + kernel, ftype == np.float32,
            )
        else:
            _reference_fractional.fractional_max_pool(x, kernel, spatial, ftype, res4, idx4)
    if return_indices:
        return res, idx
    return res


def _fractional_backward(nd, op, grad_output, indices, input_shape, channels_last, out):
    channels_last = _check_flag(channels_last, "channels_last")
    shape4, batched = _check_input_shape(input_shape, nd, op, channels_last)
    g = grad_output if isinstance(grad_output, np.ndarray) else np.asarray(grad_output)
    g = check_dtype(g, FLOAT_DTYPES, op, "grad_output")
    if g.ndim != len(input_shape):
        raise ValueError(
            f"{op}: grad_output must have as many dimensions as input_shape "
            f"({len(input_shape)}), got shape {g.shape}"
        )
    g4 = to_nc_first(g if batched else g[np.newaxis], channels_last)
    if g4.shape[:2] != shape4[:2] or any(o > L for o, L in zip(g4.shape[2:], shape4[2:])):
        raise ValueError(
            f"{op}: grad_output has shape {g.shape}, which is not the output of a "
            "fractional max pooling of input_shape "
            f"{_user_shape(shape4, batched, channels_last)} (same batch and channels, "
            "no larger spatially)"
        )
    idx = indices if isinstance(indices, np.ndarray) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be an integer array, got dtype {idx.dtype}")
    if idx.shape != g.shape:
        raise ValueError(
            f"{op}: indices has shape {idx.shape}, expected grad_output's shape {g.shape}"
        )
    idx4 = to_nc_first(idx if batched else idx[np.newaxis], channels_last)
    if idx4.dtype != np.int64:
        if idx4.dtype == np.uint64 and idx4.size and idx4.max() >= 2**63:
            raise ValueError(f"{op}: indices out of range")
        idx4 = idx4.astype(np.int64)
    grad_input, gi4 = _result(out, shape4, g.dtype, channels_last, batched, op, "out",
                              (grad_output, indices))
    out_size = g4.shape[2:]
    plane = math.prod(shape4[2:])
    if g4.size == 0:  # empty batch, channels or output: nothing to scatter
        gi4[...] = 0
        return grad_input
    geom = Geometry(nd, tuple(shape4[2:]), (1,) * nd, (1,) * nd, (1,) * nd,
                    (0,) * nd, (0,) * nd, tuple(out_size), False)
    if not _backend.current().max_pool_backward(g4, idx4, geom, gi4):
        raise ValueError(
            f"{op}: indices must lie in [0, {plane}) (flat offsets into each input "
            "plane) or be -1"
        )
    return grad_input


# ------------------------------------------------------------------- public

def fractional_max_pool2d(
    input: np.ndarray,
    kernel_size: int | tuple[int, int],
    output_size: int | tuple[int, int] | None = None,
    output_ratio: float | tuple[float, float] | None = None,
    return_indices: bool = False,
    random_samples: np.ndarray | None = None,
    seed: int | np.random.Generator | None = None,
    *,
    channels_last: bool = False,
    out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-d fractional max pooling of ``(N, C, H, W)`` or ``(C, H, W)`` input.

    As ``torch.nn.functional.fractional_max_pool2d``: windows of
    ``kernel_size`` at PyTorch's pseudo-random interval starts.

    Parameters
    ----------
    input : ndarray
        float32/64, int8/16/32/64 or uint8/16.
    kernel_size : int or (int, int)
        Window size, at least 1.
    output_size : int or (int, int), optional
        Output ``(oH, oW)``; ``oH + kH - 1 <= H`` (and the same for W).
    output_ratio : float or (float, float), optional
        Each in ``(0, 1)``; the output size is ``int(H * rH), int(W * rW)``.
        Exactly one of ``output_size`` and ``output_ratio`` is given.
    return_indices : bool
        Also return int64 flat indices ``h*W + w`` of the maxima.
    random_samples : array, optional
        PyTorch's ``_random_samples``: shape ``(N, C, 2)`` (unbatched input:
        ``(1, C, 2)`` or ``(C, 2)``), values in ``[0, 1)``; ``[..., 0]`` drives
        the width, ``[..., 1]`` the height.  Rounded to the interval
        precision (the input's dtype for floats, float64 for integers);
        rows beyond N are ignored, as in PyTorch.
    seed : int, numpy.random.Generator or None
        Without ``random_samples``, the samples are
        ``numpy.random.default_rng(seed).random((N, C, 2))`` (drawn in
        float32 for float32 input): the same seed gives the same windows.
    channels_last : bool
        Arrays are ``(N, H, W, C)``.
    out : ndarray or (ndarray, ndarray), optional
        Preallocated result (and indices).

    Returns
    -------
    ndarray, or (ndarray, ndarray) with ``return_indices``

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    >>> u = np.array([[[0.5, 0.25]]])
    >>> cypool.fractional_max_pool2d(x, 2, output_size=3, random_samples=u)
    array([[[[ 6.,  8.,  9.],
             [11., 13., 14.],
             [21., 23., 24.]]]], dtype=float32)
    """
    return _fractional(2, "fractional_max_pool2d", input, kernel_size, output_size,
                       output_ratio, return_indices, random_samples, seed,
                       channels_last, out)


def fractional_max_pool3d(
    input: np.ndarray,
    kernel_size: int | tuple[int, int, int],
    output_size: int | tuple[int, int, int] | None = None,
    output_ratio: float | tuple[float, float, float] | None = None,
    return_indices: bool = False,
    random_samples: np.ndarray | None = None,
    seed: int | np.random.Generator | None = None,
    *,
    channels_last: bool = False,
    out: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """3-d fractional max pooling of ``(N, C, T, H, W)`` or ``(C, T, H, W)`` input.

    As :func:`fractional_max_pool2d` and
    ``torch.nn.functional.fractional_max_pool3d``; ``random_samples`` has
    shape ``(N, C, 3)`` with ``[..., 0]`` for T, ``[..., 1]`` for H and
    ``[..., 2]`` for W (PyTorch's order); indices are ``(t*H + h)*W + w``.
    """
    return _fractional(3, "fractional_max_pool3d", input, kernel_size, output_size,
                       output_ratio, return_indices, random_samples, seed,
                       channels_last, out)


def fractional_max_pool2d_backward(
    grad_output: np.ndarray,
    indices: np.ndarray,
    input_shape: tuple[int, ...],
    *,
    channels_last: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`fractional_max_pool2d` with respect to its input.

    Each output gradient is added to the input element its index names
    (``indices`` as the forward returned them); windows may overlap, and
    shared maxima accumulate.

    Examples
    --------
    >>> import numpy as np, cypool
    >>> x = np.arange(25, dtype=np.float64).reshape(1, 1, 5, 5)
    >>> y, idx = cypool.fractional_max_pool2d(x, 2, output_size=2, return_indices=True,
    ...                                       seed=0)
    >>> dx = cypool.fractional_max_pool2d_backward(np.ones_like(y), idx, x.shape)
    >>> float(dx.sum())
    4.0
    """
    return _fractional_backward(2, "fractional_max_pool2d_backward", grad_output,
                                indices, input_shape, channels_last, out)


def fractional_max_pool3d_backward(
    grad_output: np.ndarray,
    indices: np.ndarray,
    input_shape: tuple[int, ...],
    *,
    channels_last: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of :func:`fractional_max_pool3d` with respect to its input."""
    return _fractional_backward(3, "fractional_max_pool3d_backward", grad_output,
                                indices, input_shape, channels_last, out)
