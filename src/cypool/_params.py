"""Argument normalisation and validation, shared by both backends.

Every public operator turns its user-facing arguments into a :class:`Geometry`
here, and both backends receive only validated, normalised values: arrays of a
supported dtype with a leading ``(N, C)`` pair of axes, and per-dimension
integer tuples.  Output sizes and padding are computed here with Python's
floor division, never in C, so that negative numerators round the right way.

The rules (PyTorch 2.13's, see ``SEMANTICS.md``):

* ``out = floor_or_ceil((L + p_before + p_after - d*(k-1) - 1) / s) + 1``;
  with ``ceil_mode`` a last window that would start in the right padding is
  dropped.
* Symmetric integer padding must satisfy ``0 <= p <= k // 2`` (nominal kernel).
* ``padding="valid"`` pads nothing; ``padding="same"`` pads
  ``max((ceil(L/s)-1)*s + k_eff - L, 0)`` in total, the odd element at the end
  (TensorFlow's rule); explicit ``(before, after)`` pairs need
  ``0 <= before, after < k_eff``.
"""

from __future__ import annotations

import math
import operator

import numpy as np

__all__ = [
    "Geometry",
    "FLOAT_DTYPES",
    "INT_DTYPES",
    "MAX_DTYPES",
    "as_int_tuple",
    "pool_geometry",
    "check_input",
    "check_dtype",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Every window parameter, and every position a window can reach, must fit in
# 64-bit index arithmetic with room to spare.
LIMIT = 2**62
INT_DTYPES = tuple(
    np.dtype(t)
    for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64)
)
MAX_DTYPES = FLOAT_DTYPES + INT_DTYPES


class Geometry:
    """Validated per-dimension pooling parameters for ``nd`` spatial dims.

    Attributes are tuples of length ``nd``: ``in_size``, ``kernel``,
    ``stride``, ``dilation``, ``pad_before``, ``pad_after``, ``out_size``.
    """

    __slots__ = (
        "nd",
        "in_size",
        "kernel",
        "stride",
        "dilation",
        "pad_before",
        "pad_after",
        "out_size",
        "ceil_mode",
    )

    def __init__(self, nd, in_size, kernel, stride, dilation, pad_before,
                 pad_after, out_size, ceil_mode):
        self.nd = nd
        self.in_size = in_size
        self.kernel = kernel
        self.stride = stride
        self.dilation = dilation
        self.pad_before = pad_before
        self.pad_after = pad_after
        self.out_size = out_size
        self.ceil_mode = ceil_mode

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Geometry({fields})"


def _index(value, name):
    """``operator.index`` with a clear TypeError; bools are rejected."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, not bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer or a tuple of integers, "
            f"not {type(value).__name__}"
        ) from None


def as_int_tuple(value, nd, name):
    """An int, or a sequence of ``nd`` ints, as a tuple of ``nd`` Python ints."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an integer or a tuple of {nd} integers, not str")
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) == 1 and nd != 1:
            value = tuple(value) * nd
        if len(value) != nd:
            raise ValueError(
                f"{name} must be a single integer or a tuple of {nd} integers, "
                f"got {len(value)} values"
            )
        return tuple(_index(v, name) for v in value)
    v = _index(value, name)
    return (v,) * nd


def _positive(values, name):
    for v in values:
        if v < 1:
            raise ValueError(f"{name} must be positive (>= 1), got {values if len(values) > 1 else v}")
        if v > LIMIT:
            raise ValueError(f"{name} must be at most 2**62, got {v}")


def _resolve_padding(padding, nd, in_size, kernel, stride, dilation):
    """Return ``(pad_before, pad_after, symmetric_pytorch_style)``."""
    k_eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            zero = (0,) * nd
            return zero, zero
        if mode == "same":
            before, after = [], []
            for L, s, ke in zip(in_size, stride, k_eff):
                out = -(-L // s)
                total = max((out - 1) * s + ke - L, 0)
                before.append(total // 2)
                after.append(total - total // 2)
            return tuple(before), tuple(after)
        raise ValueError(
            f"padding must be an integer, a tuple, 'valid' or 'same', got {padding!r}"
        )
    if isinstance(padding, (tuple, list)) and any(
        isinstance(p, (tuple, list, np.ndarray)) for p in padding
    ):
        # explicit (before, after) pairs, one per dimension
        if len(padding) != nd or not all(
            isinstance(p, (tuple, list, np.ndarray)) and len(p) == 2 for p in padding
        ):
            raise ValueError(
                f"padding given as pairs must be {nd} (before, after) pairs, got {padding!r}"
            )
        before = tuple(_index(p[0], "padding") for p in padding)
        after = tuple(_index(p[1], "padding") for p in padding)
        for b, a, ke in zip(before, after, k_eff):
            if b < 0 or a < 0:
                raise ValueError(f"padding must be non-negative, got {padding!r}")
            if b >= ke or a >= ke:
                raise ValueError(
                    "each side of an explicit padding pair must be smaller than the "
                    f"effective kernel size dilation*(kernel_size-1)+1 = {ke}, got {padding!r}"
                )
        return before, after
    pad = as_int_tuple(padding, nd, "padding")
    for p, k in zip(pad, kernel):
        if p < 0:
            raise ValueError(f"padding must be non-negative, got {padding!r}")
        if p > k // 2:
            raise ValueError(
                f"padding must be at most half the kernel size (padding <= kernel_size // 2), "
                f"got padding={padding!r} with kernel_size={kernel if nd > 1 else kernel[0]}"
            )
    return pad, pad


def output_length(L, k, s, d, before, after, ceil_mode):
    """PyTorch's output length for one dimension (may be <= 0: caller checks)."""
    num = L + before + after - d * (k - 1) - 1
    if ceil_mode:
        out = -(-num // s) + 1
        if (out - 1) * s >= L + before:
            out -= 1
    else:
        out = num // s + 1
    return out


def pool_geometry(nd, in_size, kernel_size, stride, padding, dilation, ceil_mode,
                  op="pooling"):
    """Validate and normalise the window arguments of a pooling operator."""
    kernel = as_int_tuple(kernel_size, nd, "kernel_size")
    _positive(kernel, "kernel_size")
    if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0):
        stride = kernel
    else:
        stride = as_int_tuple(stride, nd, "stride")
        _positive(stride, "stride")
    dil = as_int_tuple(dilation, nd, "dilation")
    _positive(dil, "dilation")
    if not isinstance(ceil_mode, (bool, np.bool_)):
        raise TypeError(f"ceil_mode must be a bool, not {type(ceil_mode).__name__}")
    ceil_mode = bool(ceil_mode)
    for k, d in zip(kernel, dil):
        if d * (k - 1) + 1 > LIMIT:
            raise ValueError(
                "the effective kernel size dilation*(kernel_size-1)+1 must be at most "
                f"2**62, got kernel_size={kernel}, dilation={dil}"
            )
    before, after = _resolve_padding(padding, nd, in_size, kernel, stride, dil)
    out = tuple(
        output_length(L, k, s, d, b, a, ceil_mode)
        for L, k, s, d, b, a in zip(in_size, kernel, stride, dil, before, after)
    )
    if any(o < 1 for o in out):
        raise ValueError(
            f"{op}: the output would be empty: input spatial size {in_size} with "
            f"kernel_size={kernel}, stride={stride}, padding={tuple(zip(before, after))}, "
            f"dilation={dil} gives output size {out}"
        )
    if math.prod(out) > LIMIT or any(b > LIMIT for b in before + after):
        raise ValueError(
            f"{op}: padding={tuple(zip(before, after))} with kernel_size={kernel} and "
            f"stride={stride} gives an output of size {out}, too large to allocate"
        )
    return Geometry(nd, tuple(in_size), kernel, stride, dil, before, after, out, ceil_mode)


def check_dtype(x, allowed, op, argname="input"):
    """Raise a TypeError naming the argument when ``x.dtype`` is not allowed."""
    dt = x.dtype
    if dt in allowed:
        return x
    if dt.kind in "iuf" and not dt.isnative and dt.newbyteorder("=") in allowed:
        return x.astype(dt.newbyteorder("="))
    names = ", ".join(str(d) for d in allowed)
    raise TypeError(f"{op}: {argname} dtype {dt} is not supported (supported: {names})")


def layout_names(nd, channels_last):
    """``("(C, H, W)", "(N, C, H, W)")`` or the channels-last forms."""
    sp = _spatial_names(nd)
    if channels_last:
        return f"({sp}, C)", f"(N, {sp}, C)"
    return f"(C, {sp})", f"(N, C, {sp})"


def to_nc_first(a, channels_last):
    """A ``(N, *spatial, C)`` array as an ``(N, C, *spatial)`` view."""
    return np.moveaxis(a, -1, 1) if channels_last else a


def check_input(x, nd, op, allowed, argname="input", channels_last=False):
    """Convert ``x`` to an ndarray with ``(N, C, *spatial)`` axes.

    Returns ``(x4, batched)`` where ``x4`` is a view (no copy) with a leading
    batch axis added for unbatched input, and, for ``channels_last`` input
    ``(N, *spatial, C)``, the channel axis moved to the front (a strided
    view: the compiled kernels read channels-last memory directly).
    """
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim not in (nd + 1, nd + 2):
        unb, bat = layout_names(nd, channels_last)
        raise ValueError(
            f"{op}: {argname} must be {nd + 1}-D {unb} or {nd + 2}-D {bat}"
            f"{' (channels_last=True)' if channels_last else ''}, "
            f"got {x.ndim}-D with shape {x.shape}"
        )
    x = check_dtype(x, allowed, op, argname)
    batched = x.ndim == nd + 2
    if not batched:
        x = x[np.newaxis]
    x = to_nc_first(x, channels_last)
    spatial = x.shape[2:]
    if any(s == 0 for s in spatial):
        raise ValueError(
            f"{op}: {argname} has a zero-size spatial dimension (shape {x.shape}); "
            "only the batch and channel dimensions may be empty"
        )
    return x, batched


def _spatial_names(nd):
    return {1: "L", 2: "H, W", 3: "D, H, W"}[nd]
