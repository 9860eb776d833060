"""Random pooling cases for the property tests.

A *case* is a window geometry plus an input array: random shapes (size-1 and
empty batch/channel dims included), kernel/stride/padding/dilation up to
PyTorch's limits (padding at the k//2 limit favoured), ceil mode, dtypes, and
values drawn from a small set so that ties are common, with NaN and +-inf
mixed into floating inputs.  Arrays come in several memory layouts
(C order, Fortran order, strided, negative strides, channels-last storage).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

FLOATS = (np.float32, np.float64)
INTS = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64)
LAYOUTS = ("C", "F", "step", "reversed", "channels_last_storage")


@dataclasses.dataclass
class Case:
    nd: int
    x: np.ndarray
    kernel: tuple
    stride: tuple | None
    padding: tuple
    dilation: tuple
    ceil_mode: bool
    layout: str

    def max_args(self):
        return (self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode)

    def avg_args(self):
        return (self.kernel, self.stride, self.padding, self.ceil_mode)

    @property
    def eff_stride(self):
        return self.kernel if self.stride is None else self.stride


def out_len(L, k, s, p, d, ceil_mode):
    """The output-length rule of SEMANTICS.md section 1, written out again."""
    num = L + 2 * p - d * (k - 1) - 1
    if ceil_mode:
        out = -(-num // s) + 1
        if (out - 1) * s >= L + p:
            out -= 1
    else:
        out = num // s + 1
    return out


def with_layout(x, layout):
    """The same values as ``x`` in another memory layout (a view)."""
    if layout == "C" or x.ndim == 0:
        return x
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "step":
        big = np.empty(x.shape[:-1] + (2 * x.shape[-1],), dtype=x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if layout == "reversed":
        # negative strides on the last two axes
        axes = tuple(range(max(0, x.ndim - 2), x.ndim))
        return np.flip(np.ascontiguousarray(np.flip(x, axes)), axes)
    if layout == "channels_last_storage":
        # memory laid out (N, *spatial, C) but viewed as (N, C, *spatial)
        if x.ndim < 3:
            return x
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    raise ValueError(layout)


def random_values(rng, shape, dtype, special=True):
    """Small integers (many ties), with NaN/+-inf in floating arrays."""
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        v = rng.integers(0, 6, size=shape)
    else:
        v = rng.integers(-3, 4, size=shape)
    if dtype.kind in "iu" and rng.random() < 0.3:
        info = np.iinfo(dtype)
        ext = rng.random(shape)
        v = np.where(ext < 0.1, info.min, np.where(ext > 0.9, info.max, v))
    x = v.astype(dtype)
    if dtype.kind == "f":
        if rng.random() < 0.5:
            x = x + rng.standard_normal(shape).astype(dtype) * dtype.type(0.25)
        if special:
            u = rng.random(shape)
            x[u < 0.04] = np.nan
            x[(u >= 0.04) & (u < 0.07)] = np.inf
            x[(u >= 0.07) & (u < 0.12)] = -np.inf
    return x


@st.composite
def cases(draw, dtypes=FLOATS + INTS, dilation=True, max_nd=3, special=True,
          allow_empty=True, layouts=LAYOUTS):
    nd = draw(st.integers(1, max_nd))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    stride = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 5)] * nd)))
    dil = tuple(draw(st.integers(1, 3)) for _ in range(nd)) if dilation else (1,) * nd
    padding = tuple(
        draw(st.one_of(st.just(k // 2), st.integers(0, k // 2))) for k in kernel
    )
    ceil_mode = draw(st.booleans())
    s_eff = kernel if stride is None else stride
    size = []
    max_side = {1: 24, 2: 11, 3: 7}[nd]
    for k, s, p, d in zip(kernel, s_eff, padding, dil):
        lo = max(1, d * (k - 1) + 1 - 2 * p)
        L = draw(st.integers(lo, max(lo, max_side) + 2))
        size.append(L)
    size = tuple(size)
    assert all(out_len(L, k, s, p, d, ceil_mode) >= 1
               for L, k, s, p, d in zip(size, kernel, s_eff, padding, dil))
    lo_nc = 0 if allow_empty else 1
    n = draw(st.one_of(st.integers(1, 3), st.integers(lo_nc, 3)))
    c = draw(st.one_of(st.integers(1, 3), st.integers(lo_nc, 3)))
    batched = draw(st.booleans())
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shape = ((n,) if batched else ()) + (c,) + size
    x = random_values(rng, shape, dtype, special)
    layout = draw(st.sampled_from(layouts))
    x = with_layout(x, layout)
    return Case(nd, x, kernel, stride, padding, dil, ceil_mode, layout)


def grad_like(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)
