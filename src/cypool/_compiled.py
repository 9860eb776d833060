"""The compiled backend: adapts validated arguments to the Cython kernels.

The kernels see every array as a 5-d ``(N, C, D, H, W)`` view; 1-d and 2-d
arrays get singleton D/H axes here (views, no copies) and their window
parameters are padded with the identity (kernel 1, stride 1, no padding).
Importing this module raises ImportError when the extension is missing.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import warnings

import numpy as np

from . import _threads
from ._ext import _pool as _baseline

__all__ = ["max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward",
           "openmp_enabled", "simd", "SIMD_VARIANTS", "family", "run"]

# Instruction-set variants of the kernel module, widest first, with the CPU
# features (as numpy names them; numpy also checks that the OS saves the
# wider registers) each one needs.  The baseline module always exists.
SIMD_VARIANTS = {
    "avx512": ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL",
               "AVX2", "FMA3", "F16C"),
    "avx2": ("AVX2", "FMA3", "F16C"),
}


def _cpu_features():
    for path in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            return dict(importlib.import_module(path).__cpu_features__)
        except (ImportError, AttributeError):
            continue
    return {}


def variant_usable(name):
    """The kernel module of SIMD variant ``name`` if it was built and this
    CPU runs it, else None (``"baseline"`` is always usable)."""
    if name == "baseline":
        return _baseline
    feats = _cpu_features()
    if name not in SIMD_VARIANTS or not all(feats.get(f) for f in SIMD_VARIANTS[name]):
        return None
    try:
        return importlib.import_module(f"{__package__}._ext._pool_{name}")
    except ImportError:
        return None


def _select():
    """``CYPOOL_SIMD`` (``auto``, ``baseline``, ``avx2``, ``avx512``) or the
    widest usable variant."""
    want = os.environ.get("CYPOOL_SIMD", "auto").strip().lower() or "auto"
    if want not in ("auto", "baseline", *SIMD_VARIANTS):
        raise ValueError("CYPOOL_SIMD must be auto, baseline, "
                         f"{', '.join(SIMD_VARIANTS)}; got {want!r}")
    if want != "auto":
        mod = variant_usable(want)
        if mod is not None:
            return want, mod
        warnings.warn(f"CYPOOL_SIMD={want}: that kernel variant is not built or "
                      "this CPU lacks its instructions; using the baseline kernels",
                      RuntimeWarning, stacklevel=3)
        return "baseline", _baseline
    for name in SIMD_VARIANTS:
        mod = variant_usable(name)
        if mod is not None:
            return name, mod
    return "baseline", _baseline


simd, _kernels = _select()

_family_cache = {}


def family(base):
    """The kernel module ``cypool._ext.<base>`` (e.g. ``"_adaptive"``) in the
    SIMD variant selected for ``_pool`` where that module is built in
    variants, else its baseline build.  Raises ImportError if it is missing
    (a broken or partial build): the operators of that family then fail
    loudly under the compiled backend instead of running the wrong code."""
    mod = _family_cache.get(base)
    if mod is None:
        mod = None
        if simd != "baseline":
            try:
                mod = importlib.import_module(f"{__package__}._ext.{base}_{simd}")
            except ImportError:
                mod = None
        if mod is None:
            mod = importlib.import_module(f"{__package__}._ext.{base}")
        _family_cache[base] = mod
    return mod

openmp_enabled = _kernels.openmp_enabled
_threads._omp_max_threads = _kernels.omp_max_threads


# Threads handed out to kernels running now, across all Python threads: a
# call gets at most the CPUs not already busy (and always at least one), so
# concurrent callers never oversubscribe the machine.
_busy = 0
_busy_lock = threading.Lock()


def run(kernel, *args):
    """Call ``kernel(*args, nthreads)`` with this call's share of threads."""
    global _busy
    want = _threads.get_num_threads()
    if want > 1:
        with _busy_lock:
            n = max(1, min(want, _threads._CPUS - _busy))
            _busy += n
        _threads._team_started = True
        try:
            return kernel(*args, n)
        finally:
            with _busy_lock:
                _busy -= n
    return kernel(*args, 1)


_run = run


def _as5d(a, nd):
    if nd == 3:
        return a
    if nd == 2:
        return a[:, :, None]
    return a[:, :, None, None]


def _three(values, fill):
    return (fill,) * (3 - len(values)) + tuple(values)


# The kernels run in the result's layout and read any strides, but a planar
# kernel reading channels-last memory (or the reverse) touches every cache
# line once per channel.  When the input's memory is exactly the other
# layout (a C-contiguous array in that layout, as PyTorch's channels_last
# tensors and NCHW arrays seen through moveaxis are), the kernel runs in the
# input's layout into a scratch result, copied into the caller's: the same
# values, at a fraction of the cost.
_SWAP_MIN = 1 << 16     # elements; below this the strided read costs little


def _layout_swap(x, out):
    """``"cl"`` or ``"planar"``: the layout to run in when it differs from
    the result's; None to run in place."""
    if (x.shape[1] < 2 or x.size < _SWAP_MIN or out.size == 0
            or x.size == x.shape[0] * x.shape[1]):
        return None
    out_cl = out.strides[1] == out.itemsize
    if not out_cl and np.moveaxis(x, 1, -1).flags.c_contiguous:
        return "cl"
    if out_cl and x.flags.c_contiguous:
        return "planar"
    return None


def _scratch_like(out, swap):
    """A scratch result of ``out``'s shape and dtype in layout ``swap``, as
    its ``(N, C, *spatial)`` view."""
    if swap == "cl":
        return np.moveaxis(np.empty(out.shape[:1] + out.shape[2:] + out.shape[1:2],
                                    out.dtype), -1, 1)
    return np.empty(out.shape, out.dtype)


def max_pool(x, geom, out, indices):
    nd = geom.nd
    swap = _layout_swap(x, out)
    res, res_idx = out, indices
    if swap is not None:
        out = _scratch_like(res, swap)
        indices = None if res_idx is None else _scratch_like(res_idx, swap)
    _run(_kernels.max_pool_forward,
         _as5d(x, nd), _as5d(out, nd),
         None if indices is None else _as5d(indices, nd),
         _three(geom.kernel, 1), _three(geom.stride, 1),
         _three(geom.dilation, 1), _three(geom.pad_before, 0))
    if swap is not None:
        np.copyto(res, out)
        if res_idx is not None:
            np.copyto(res_idx, indices)


def max_pool_backward(grad_output, indices, geom, grad_input, stream=False):
    """``stream``: ``grad_input`` is the caller's array, not fresh memory (see
    the kernel); the windows' stride and padding, where ``geom`` has them,
    let the kernel stream each plane out while it builds it (into fresh
    memory as well)."""
    nd = geom.nd
    bounds = None
    if getattr(geom, "stride", None) is not None and _kernels._streams(grad_input.nbytes):
        bounds = row_bounds(_three(grad_output.shape[2:], 1), _three(grad_input.shape[2:], 1),
                            _three(geom.stride, 1), _three(geom.pad_before, 0))
    return _run(functools.partial(_kernels.max_pool_backward, stream=stream, bounds=bounds),
                _as5d(grad_output, nd), _as5d(indices, nd), _as5d(grad_input, nd))


def row_bounds(pooled, full, stride, pad):
    """For each row ``(d, h)`` of a pooled ``(D, H, W)`` volume (3-tuples), a
    flat offset into the full-size volume below which no window of a later
    row has a tap: the least first tap of the next row and of the next
    slice's first row (windows start at ``o * stride - pad``; in-bounds taps
    at or after that), the volume's size after the last row.  int64,
    ``D * H`` elements; the streamed scatters (``scatter_stream.h``) write
    out what lies below a row's bound once the row is done."""
    (OD, OH, _), (D, H, W), (sd, sh, _), (pd, ph, _) = pooled, full, stride, pad
    if max(sd, sh, pd, ph, OD, OH) >= 2**31:
        return None         # (no streaming; keeps the products below in range)
    P = D * H * W
    od = np.arange(OD, dtype=np.int64)[:, None]
    oh = np.arange(OH, dtype=np.int64)[None, :]
    # first slices and rows, clipped to the volume (every product <= P)
    d0 = np.clip(od * sd - pd, 0, D - 1)
    nxt_row = (d0 * H + np.clip((oh + 1) * sh - ph, 0, H)) * W
    nxt_row[:, -1] = P
    nxt_slice = np.clip((od + 1) * sd - pd, 0, D - 1) * (H * W)
    nxt_slice[-1] = P
    return np.minimum(nxt_row, nxt_slice).ravel()


def avg_pool(x, geom, out, count_include_pad, divisor_override, rounding="truncate"):
    nd = geom.nd
    swap = _layout_swap(x, out)
    res = out
    if swap is not None:
        out = _scratch_like(res, swap)
    _run(_kernels.avg_pool_forward,
         _as5d(x, nd), _as5d(out, nd),
         _three(geom.kernel, 1), _three(geom.stride, 1),
         _three(geom.pad_before, 0), _three(geom.pad_after, 0),
         count_include_pad, divisor_override or 0, rounding == "nearest")
    if swap is not None:
        np.copyto(res, out)


def avg_pool_backward(grad_output, geom, grad_input, count_include_pad,
                      divisor_override, stream=False):
    """``stream``: ``grad_input`` is the caller's array, not fresh memory (see
    the kernel)."""
    nd = geom.nd
    _run(functools.partial(_kernels.avg_pool_backward, stream=stream),
         _as5d(grad_output, nd), _as5d(grad_input, nd),
         _three(geom.kernel, 1), _three(geom.stride, 1),
         _three(geom.pad_before, 0), _three(geom.pad_after, 0),
         count_include_pad, divisor_override or 0)
