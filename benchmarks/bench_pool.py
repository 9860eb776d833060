#!/usr/bin/env python
"""Benchmark cypool's pooling operators against PyTorch CPU, NumPy, scikit-image and tinybrain.

    python benchmarks/bench_pool.py                  # full suite, markdown table (about 8 minutes)
    python benchmarks/bench_pool.py --quick          # a subset on smaller inputs, < 1 minute
    python benchmarks/bench_pool.py --cases "max k2s2" --threads 1 --repeat 11
    python benchmarks/bench_pool.py --smoke          # every case on tiny inputs (code-path check)

See benchmarks/README.md for what the columns mean.  A case is a :class:`Case`
in :data:`CASES`; its ``setup(shape)`` builds the inputs (untimed) and returns
a :class:`Bench` holding one zero-argument callable per implementation.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import gc
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import cypool

try:
    import torch
    import torch.nn.functional as F
except Exception:  # not installed, or broken: its rows are left out
    torch = None
    F = None

# tinybrain 1.x calls np.maximum(a, b, out) positionally (deprecated in NumPy 2.4)
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"tinybrain\.")

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
REFERENCE_MAX_ELEMENTS = 4_000_000   # time cypool's (slow) reference backend below this
COPY_MIB = 1024                      # copy-bandwidth baseline: 1 GiB
DASH = "—"

# implementation names (the table's "implementation" column)
CY = "cypool"
CY_OUT = "cypool out= (preallocated)"
CY_REF = "cypool reference"
# in the ramp cases: the same call on the random input, timed in turns with
# the ramp (round-robin), for the data-independence target
CY_RAND = "cypool, random input (in turns)"
TH = "torch"
TH_DNN = "torch oneDNN"
TH_CL = "torch channels-last"
NP_ = "numpy"
SK = "skimage"
TB = "tinybrain"
SINGLE_THREADED = {CY_REF, NP_, SK, TB}


# ------------------------------------------------------------------ peers

_SKIMAGE = None
_TINYBRAIN = None


def skimage_block_reduce():
    """``skimage.measure.block_reduce`` or None when scikit-image is absent."""
    global _SKIMAGE
    if _SKIMAGE is None:
        try:
            from skimage.measure import block_reduce
            _SKIMAGE = block_reduce
        except Exception:
            _SKIMAGE = False
    return _SKIMAGE or None


def tinybrain_module():
    global _TINYBRAIN
    if _TINYBRAIN is None:
        try:
            import tinybrain
            _TINYBRAIN = tinybrain
        except Exception:
            _TINYBRAIN = False
    return _TINYBRAIN or None


def peer_versions() -> dict:
    v = {"numpy": np.__version__, "torch": torch.__version__ if torch is not None else None}
    try:
        import skimage
        v["scikit-image"] = skimage.__version__
    except Exception:
        v["scikit-image"] = None
    tb = tinybrain_module()
    if tb is not None:
        try:
            from importlib.metadata import version
            v["tinybrain"] = version("tinybrain")
        except Exception:
            v["tinybrain"] = "?"
    else:
        v["tinybrain"] = None
    return v


# --------------------------------------------------------------------- inputs

def make_data(kind: str, shape, dtype=np.float32, seed=0) -> np.ndarray:
    """An input array.  ``random``: standard normal (floats) or uniform over
    0..255 (integers), seeded.  ``ramp``: strictly increasing within every
    plane (exact in float32 for planes under 2**24 elements), so every
    window's maximum is its last element, which a branchy kernel predicts
    perfectly."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if kind == "random":
        if dtype.kind in "iu":
            return rng.integers(0, 256, size=shape, dtype=np.int64).astype(dtype)
        return rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    if kind == "ramp":
        plane = int(np.prod(shape[2:]))
        return (np.arange(int(np.prod(shape)), dtype=np.int64) % plane).astype(dtype).reshape(shape)
    raise ValueError(f"unknown data kind {kind!r}")


def prefaulted_empty(shape, dtype) -> np.ndarray:
    a = np.empty(shape, dtype)
    a.fill(0)  # touch every page now, not in the timed call
    return a


def _tup(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


# --------------------------------------------------------- numpy peer kernels

def np_nonoverlap(x, op, k, axes, count_dtype=None):
    """Reshape-reduce over non-overlapping windows ``k`` along ``axes``
    (window = stride, no padding, floor mode)."""
    sl = [slice(None)] * x.ndim
    for a, kk in zip(axes, k):
        sl[a] = slice(0, x.shape[a] // kk * kk)
    xs = x[tuple(sl)]
    shape, red = [], []
    for a, n in enumerate(xs.shape):
        if a in axes:
            kk = k[axes.index(a)]
            shape += [n // kk, kk]
            red.append(len(shape) - 1)
        else:
            shape.append(n)
    xr = xs.reshape(shape)
    red = tuple(red)
    if op == "max":
        return xr.max(axis=red)
    if op == "avg":
        if x.dtype.kind in "iu":  # integer average, truncated like cypool's default
            s = xr.sum(axis=red, dtype=np.int64)
            return (s // int(np.prod(k))).astype(x.dtype)
        return xr.mean(axis=red)
    if op == "lp2":
        return np.sqrt(np.square(xr).sum(axis=red))
    raise ValueError(op)


def np_taps(x, op, k, s, p, axes):
    """Overlapping windows: strided ``np.maximum`` / ``np.add`` over the
    kernel taps, each tap clipped to the rows/columns it covers (implicit
    padding; averages divide by the full window, PyTorch's default
    ``count_include_pad=True``)."""
    out_shape = list(x.shape)
    for a, kk, ss, pp in zip(axes, k, s, p):
        out_shape[a] = (x.shape[a] + 2 * pp - kk) // ss + 1
    if op == "max":
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        out = np.full(out_shape, fill, dtype=x.dtype)
    else:
        out = np.zeros(out_shape, dtype=x.dtype)
    for taps in itertools.product(*(range(kk) for kk in k)):
        osl = [slice(None)] * x.ndim
        isl = [slice(None)] * x.ndim
        empty = False
        for a, d, ss, pp in zip(axes, taps, s, p):
            lo = max(0, -((d - pp) // ss))          # ceil((p - d) / s)
            hi = min(out_shape[a] - 1, (x.shape[a] - 1 + pp - d) // ss)
            if hi < lo:
                empty = True
                break
            osl[a] = slice(lo, hi + 1)
            start = lo * ss - pp + d
            isl[a] = slice(start, start + (hi - lo) * ss + 1, ss)
        if empty:
            continue
        o = out[tuple(osl)]
        if op == "max":
            np.maximum(o, x[tuple(isl)], out=o)
        else:
            np.add(o, x[tuple(isl)], out=o)
    if op == "avg":
        out /= np.prod(k)
    return out


# ------------------------------------------------------------- torch helpers

def to_numpy(r) -> list[np.ndarray]:
    """A result (array, tensor, or tuple of them) as a list of ndarrays."""
    seq = r if isinstance(r, (tuple, list)) else (r,)
    out = []
    for a in seq:
        if torch is not None and isinstance(a, torch.Tensor):
            if a.layout == torch._mkldnn:
                a = a.to_dense()
            a = a.numpy()
        out.append(np.asarray(a))
    return out


def nchw_to_nhwc(r):
    """Torch NCHW (or NCDHW) results in channels-last order, for comparison."""
    return [a if a.ndim < 3 else np.moveaxis(a, 1, -1) for a in to_numpy(r)]


def torch_cl(t):
    fmt = torch.channels_last if t.dim() == 4 else torch.channels_last_3d
    return t.contiguous(memory_format=fmt)


# ---------------------------------------------------------------------- cases

@dataclass
class Impl:
    """One implementation of a case: ``fn()`` is the timed call (inputs are
    bound in setup).  ``convert(result)`` (untimed) returns the result as
    ndarrays in cypool's layout, for the comparison with cypool."""

    fn: Callable[[], Any]
    convert: Callable[[Any], list] = to_numpy
    note: str = ""
    compare: bool = True    # False: a different input (not compared with cypool)


@dataclass
class Bench:
    """What ``Case.setup`` returns: the implementations, the bytes the
    operation reads (the output bytes come from cypool's result), and notes
    for implementations that are left out (shown as rows)."""

    impls: dict[str, Impl]
    bytes_read: int
    elements: int
    shape: tuple
    dtype: str
    skipped: dict[str, str] = field(default_factory=dict)
    exact: bool = False
    rtol: float = 1e-5
    atol: float = 1e-5


@dataclass
class Case:
    name: str
    setup: Callable[[tuple, dict], Bench]
    full: tuple
    quick: tuple
    tiny: tuple
    needs: tuple[str, ...] = ()       # cypool attributes the case needs
    in_quick: bool = False            # part of the --quick subset
    latency: bool = False             # per-call latency: many calls per sample
    prealloc: bool = False            # gets the out= rows (--out-prealloc)


def _with_reference(impls, cy_fn, elements, skipped):
    if elements <= REFERENCE_MAX_ELEMENTS:
        def ref():
            with cypool.backend("reference"):
                return cy_fn()
        impls[CY_REF] = Impl(ref)
    else:
        skipped[CY_REF] = (f"skipped: large input ({elements / 1e6:.1f} M elements > "
                           f"{REFERENCE_MAX_ELEMENTS / 1e6:.0f} M)")


def window_case(name, op, nd, kernel, stride=None, padding=0, *, full, quick, tiny,
                data="random", dtype=np.float32, layout="nchw", return_indices=False,
                in_quick=False, latency=False, prealloc=False) -> Case:
    """Max (``op="max"``) or average pooling, ``nd``-d, on NCHW (``layout="nchw"``)
    or channels-last (``"nhwc"``) input, with every peer that has the operator."""
    k = _tup(kernel, nd)
    s = _tup(stride if stride is not None else kernel, nd)
    p = _tup(padding, nd)
    cy_op = getattr(cypool, f"{op}_pool{nd}d")
    cl = layout == "nhwc"
    nonoverlap = k == s and not any(p)

    def setup(shape, opts):
        x = make_data(data, shape, dtype)
        batched = x.ndim == nd + 2
        axes = tuple(range(x.ndim - nd - 1, x.ndim - 1)) if cl else tuple(range(x.ndim - nd, x.ndim))
        kw = {"return_indices": True} if return_indices else {}
        impls, skipped = {}, {}

        def cy():
            return cy_op(x, k, s, p, channels_last=cl, **kw)
        impls[CY] = Impl(cy)
        if data == "ramp":
            xr = make_data("random", shape, dtype)
            impls[CY_RAND] = Impl(lambda: cy_op(xr, k, s, p, channels_last=cl, **kw),
                                  note="the random input, timed in turns with the ramp",
                                  compare=False)
        if prealloc and opts.get("out_prealloc"):
            y0 = cy()
            bufs = tuple(prefaulted_empty(a.shape, a.dtype) for a in to_numpy(y0))
            del y0
            out = bufs if return_indices else bufs[0]
            impls[CY_OUT] = Impl(lambda: cy_op(x, k, s, p, channels_last=cl, out=out, **kw))
        _with_reference(impls, cy, x.size, skipped)

        if torch is not None:
            # torch's NCHW tensor: the same memory for NCHW input, a copy
            # (made here, untimed) for channels-last input
            x4 = x if batched else x[None]
            if cl:
                t_nchw = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x4, -1, 1)))
                t_cl = torch.from_numpy(x4).movedim(-1, 1)  # channels_last format, no copy
            else:
                t_nchw = torch.from_numpy(x4)
                t_cl = torch_cl(t_nchw) if nd > 1 and x4.shape[1] > 1 else None
            th_op = getattr(F, f"{op}_pool{nd}d")
            tkw = {"return_indices": True} if return_indices else {}
            if op == "avg" and x.dtype.kind in "iu":
                # torch has no integer average pooling: convert (timed), pool,
                # truncate back like cypool's rounding="truncate"
                def th_fn(t):
                    return th_op(t.float(), k, s, p).to(t.dtype)
                conv_note = "uint8 -> float32 -> uint8 in the timed call"
            else:
                def th_fn(t):
                    return th_op(t, k, s, p, **tkw)
                conv_note = ""

            def conv(r):
                arrs = nchw_to_nhwc(r) if cl else to_numpy(r)
                return arrs if batched else [a[0] for a in arrs]

            note = "NCHW copy of the input made in setup" if cl else ""
            impls[TH] = Impl(lambda: th_fn(t_nchw), conv, "; ".join(filter(None, [note, conv_note])))
            if nd > 1 and not return_indices and (op == "max" or x.dtype.kind == "f"):
                try:
                    t_dnn = t_nchw.to_mkldnn()
                    impls[TH_DNN] = Impl(lambda: th_fn(t_dnn), conv, "to_mkldnn() in setup")
                except Exception as e:  # dtype oneDNN does not take
                    skipped[TH_DNN] = f"n/a: {type(e).__name__}: {str(e)[:60]}"
            if t_cl is not None:
                impls[TH_CL] = Impl(lambda: th_fn(t_cl), conv,
                                    "same memory" if cl else "channels_last copy in setup")

        if not return_indices:
            if nonoverlap:
                impls[NP_] = Impl(lambda: np_nonoverlap(x, op, k, axes), note="reshape-reduce")
            elif x.dtype.kind == "f":
                impls[NP_] = Impl(lambda: np_taps(x, op, k, s, p, axes),
                                  note="strided np.maximum/np.add over taps")
            br = skimage_block_reduce()
            if br is not None and nonoverlap:
                block = [1] * x.ndim
                for a, kk in zip(axes, k):
                    block[a] = kk
                block = tuple(block)
                func = np.max if op == "max" else np.mean
                impls[SK] = Impl(lambda: br(x, block, func),
                                 note="block_reduce" + (", float64 result" if op == "avg" and x.dtype.kind in "iu" else ""))
            tb = tinybrain_module()
            if (tb is not None and nd == 2 and k == (2, 2) and s == (2, 2) and not any(p)
                    and all(x.shape[a] % 2 == 0 for a in axes)
                    and x.dtype in (np.float32, np.float64, np.uint8)):
                tb_fn = tb.downsample_with_max_pooling if op == "max" else tb.downsample_with_averaging
                if cl:
                    # tinybrain's layout is (x, y, channel[, batch]): H, W first
                    if batched:
                        def tbf():
                            return tb_fn(np.moveaxis(x, 0, -1), (2, 2, 1, 1))[0]

                        def tbconv(r):
                            return [np.moveaxis(to_numpy(r)[0], -1, 0)]
                    else:
                        def tbf():
                            return tb_fn(x, (2, 2, 1))[0]
                        tbconv = to_numpy
                    tbnote = "(H, W, C[, N]) view" + (", Fortran copy inside (timed)"
                                                      if op == "avg" else "")
                else:
                    # x.T is (W, H, C, N) in Fortran order: tinybrain's own layout, no copy
                    factor = (2, 2) + (1,) * (x.ndim - 2)

                    def tbf():
                        return tb_fn(x.T, factor)[0]

                    def tbconv(r):
                        return [to_numpy(r)[0].T]
                    tbnote = "x.T (Fortran view, no copy)"
                impls[TB] = Impl(tbf, tbconv, tbnote)
        return Bench(impls, x.nbytes, x.size, x.shape, str(x.dtype), skipped,
                     exact=op == "max", atol=1.0 if x.dtype.kind in "iu" else 1e-5)

    return Case(name, setup, full, quick, tiny, (), in_quick, latency, prealloc)


def max_bwd_case(name, kernel, stride, padding, *, full, quick, tiny, in_quick=False) -> Case:
    k, s, p = _tup(kernel, 2), _tup(stride, 2), _tup(padding, 2)

    def setup(shape, opts):
        x = make_data("random", shape)
        y, idx = cypool.max_pool2d(x, k, s, p, return_indices=True)
        grad = make_data("random", y.shape, seed=1)
        del y
        impls, skipped = {}, {}

        def cy():
            return cypool.max_pool2d_backward(grad, idx, x.shape, k, s, p)
        impls[CY] = Impl(cy)
        if opts.get("out_prealloc"):
            gbuf = prefaulted_empty(x.shape, x.dtype)
            impls[CY_OUT] = Impl(lambda: cypool.max_pool2d_backward(grad, idx, x.shape, k, s, p,
                                                                    out=gbuf))
        _with_reference(impls, cy, grad.size, skipped)
        if torch is not None:
            tg, tx, ti = (torch.from_numpy(a) for a in (grad, x, idx))
            args = (list(k), list(s), list(p), [1, 1], False)
            impls[TH] = Impl(lambda: torch.ops.aten.max_pool2d_with_indices_backward(tg, tx, *args, ti),
                             note="aten.max_pool2d_with_indices_backward")
            cg, cx, ci = torch_cl(tg), torch_cl(tx), torch_cl(ti)
            impls[TH_CL] = Impl(lambda: torch.ops.aten.max_pool2d_with_indices_backward(cg, cx, *args, ci),
                                note="channels_last copies in setup")
        return Bench(impls, grad.nbytes + idx.nbytes, x.size, x.shape, str(x.dtype), skipped,
                     exact=True)

    return Case(name, setup, full, quick, tiny, (), in_quick)


def avg_bwd_case(name, kernel, stride, *, full, quick, tiny, in_quick=False) -> Case:
    k, s = _tup(kernel, 2), _tup(stride, 2)

    def setup(shape, opts):
        n, c, h, w = shape
        ho, wo = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
        grad = make_data("random", (n, c, ho, wo), seed=1)
        impls, skipped = {}, {}

        def cy():
            return cypool.avg_pool2d_backward(grad, shape, k, s)
        impls[CY] = Impl(cy)
        if opts.get("out_prealloc"):
            gbuf = prefaulted_empty(tuple(shape), np.float32)
            impls[CY_OUT] = Impl(lambda: cypool.avg_pool2d_backward(grad, shape, k, s, out=gbuf))
        _with_reference(impls, cy, n * c * h * w, skipped)
        if torch is not None:
            tg = torch.from_numpy(grad)
            tx = torch.empty(shape)  # only its shape is read
            args = (list(k), list(s), [0, 0], False, True, None)
            impls[TH] = Impl(lambda: torch.ops.aten.avg_pool2d_backward(tg, tx, *args),
                             note="aten.avg_pool2d_backward")
            cg, cx = torch_cl(tg), torch_cl(tx)
            impls[TH_CL] = Impl(lambda: torch.ops.aten.avg_pool2d_backward(cg, cx, *args),
                                note="channels_last copy in setup")
        if k == s and h % k[0] == 0 and w % k[1] == 0:
            scale = np.float32(1 / (k[0] * k[1]))

            def np_bwd():
                g = (grad * scale)[:, :, :, None, :, None]
                return np.broadcast_to(g, (n, c, ho, k[0], wo, k[1])).reshape(shape)
            impls[NP_] = Impl(np_bwd, note="broadcast + reshape")
        return Bench(impls, grad.nbytes, n * c * h * w, tuple(shape), "float32", skipped)

    return Case(name, setup, full, quick, tiny, (), in_quick)


def adaptive_case(name, out_size, *, full, quick, tiny) -> Case:
    def setup(shape, opts):
        x = make_data("random", shape)
        impls, skipped = {}, {}

        def cy():
            return cypool.adaptive_avg_pool2d(x, out_size)
        impls[CY] = Impl(cy)
        _with_reference(impls, cy, x.size, skipped)
        if torch is not None:
            tx = torch.from_numpy(x)
            impls[TH] = Impl(lambda: F.adaptive_avg_pool2d(tx, out_size))
            td = tx.to_mkldnn()
            impls[TH_DNN] = Impl(lambda: F.adaptive_avg_pool2d(td, out_size), note="to_mkldnn() in setup")
            tc = torch_cl(tx)
            impls[TH_CL] = Impl(lambda: F.adaptive_avg_pool2d(tc, out_size), note="channels_last copy in setup")
        h, w = shape[2:]
        if h % out_size == 0 and w % out_size == 0:  # equal bins: non-overlapping windows
            kk = (h // out_size, w // out_size)
            impls[NP_] = Impl(lambda: np_nonoverlap(x, "avg", kk, (2, 3)), note="reshape-reduce (equal bins)")
            br = skimage_block_reduce()
            if br is not None:
                impls[SK] = Impl(lambda: br(x, (1, 1) + kk, np.mean), note="block_reduce")
            tb = tinybrain_module()
            if tb is not None and kk == (2, 2):
                impls[TB] = Impl(lambda: tb.downsample_with_averaging(x.T, (2, 2, 1, 1))[0],
                                 lambda r: [to_numpy(r)[0].T], "x.T (Fortran view, no copy)")
        return Bench(impls, x.nbytes, x.size, x.shape, "float32", skipped)

    return Case(name, setup, full, quick, tiny, ("adaptive_avg_pool2d",))


def global_avg_case(name, *, full, quick, tiny) -> Case:
    def setup(shape, opts):
        x = make_data("random", shape)
        n, c = shape[:2]
        impls, skipped = {}, {}

        def cy():
            return cypool.global_avg_pool(x)
        impls[CY] = Impl(cy)
        _with_reference(impls, cy, x.size, skipped)

        def flat(r):
            return [to_numpy(r)[0].reshape(n, c)]
        if torch is not None:
            tx = torch.from_numpy(x)
            impls[TH] = Impl(lambda: F.adaptive_avg_pool2d(tx, 1), flat, "adaptive_avg_pool2d(x, 1)")
            impls["torch x.mean((2, 3))"] = Impl(lambda: tx.mean((2, 3)))
            td = tx.to_mkldnn()
            impls[TH_DNN] = Impl(lambda: F.adaptive_avg_pool2d(td, 1), flat, "to_mkldnn() in setup")
            tc = torch_cl(tx)
            impls[TH_CL] = Impl(lambda: F.adaptive_avg_pool2d(tc, 1), flat, "channels_last copy in setup")
        impls[NP_] = Impl(lambda: x.mean(axis=(2, 3)), note="x.mean(axis=(2, 3))")
        br = skimage_block_reduce()
        if br is not None:
            impls[SK] = Impl(lambda: br(x, (1, 1) + tuple(shape[2:]), np.mean), flat, "block_reduce")
        return Bench(impls, x.nbytes, x.size, x.shape, "float32", skipped)

    return Case(name, setup, full, quick, tiny, ("global_avg_pool",))


def lp_case(name, norm_type, kernel, stride, *, full, quick, tiny) -> Case:
    def setup(shape, opts):
        x = make_data("random", shape)
        impls, skipped = {}, {}

        def cy():
            return cypool.lp_pool2d(x, norm_type, kernel, stride)
        impls[CY] = Impl(cy)
        _with_reference(impls, cy, x.size, skipped)
        if torch is not None:
            tx = torch.from_numpy(x)
            impls[TH] = Impl(lambda: F.lp_pool2d(tx, norm_type, kernel, stride))
            tc = torch_cl(tx)
            impls[TH_CL] = Impl(lambda: F.lp_pool2d(tc, norm_type, kernel, stride),
                                note="channels_last copy in setup")
        if norm_type == 2 and kernel == stride:
            impls[NP_] = Impl(lambda: np_nonoverlap(x, "lp2", (kernel, kernel), (2, 3)),
                              note="sqrt of reshape-summed squares")
        return Bench(impls, x.nbytes, x.size, x.shape, "float32", skipped, rtol=1e-4, atol=1e-4)

    return Case(name, setup, full, quick, tiny, ("lp_pool2d",))


def unpool_case(name, kernel, stride, *, full, quick, tiny) -> Case:
    def setup(shape, opts):
        x = make_data("random", shape)
        y, idx = cypool.max_pool2d(x, kernel, stride, return_indices=True)
        del x
        n, c, h, w = shape
        impls, skipped = {}, {}

        def cy():
            return cypool.max_unpool2d(y, idx, kernel, stride)
        impls[CY] = Impl(cy)
        if opts.get("out_prealloc"):
            ubuf = prefaulted_empty(tuple(shape), y.dtype)
            impls[CY_OUT] = Impl(lambda: cypool.max_unpool2d(y, idx, kernel, stride, out=ubuf))
        _with_reference(impls, cy, n * c * h * w, skipped)
        if torch is not None:
            ty, ti = torch.from_numpy(y), torch.from_numpy(idx)
            impls[TH] = Impl(lambda: F.max_unpool2d(ty, ti, kernel, stride))
            cyy, cii = torch_cl(ty), torch_cl(ti)
            impls[TH_CL] = Impl(lambda: F.max_unpool2d(cyy, cii, kernel, stride),
                                note="channels_last copies in setup")

        def np_unpool():
            out = np.zeros((n, c, h * w), y.dtype)
            np.put_along_axis(out, idx.reshape(n, c, -1), y.reshape(n, c, -1), axis=2)
            return out.reshape(n, c, h, w)
        impls[NP_] = Impl(np_unpool, note="zeros + put_along_axis")
        return Bench(impls, y.nbytes + idx.nbytes, n * c * h * w, tuple(shape), "float32",
                     skipped, exact=True)

    return Case(name, setup, full, quick, tiny, ("max_unpool2d",))


def fractional_case(name, kernel, ratio, *, full, quick, tiny) -> Case:
    def setup(shape, opts):
        x = make_data("random", shape)
        samples = np.random.default_rng(2).random((shape[0], shape[1], 2), dtype=np.float32)
        impls, skipped = {}, {}

        def cy():
            return cypool.fractional_max_pool2d(x, kernel, output_ratio=ratio, random_samples=samples)
        impls[CY] = Impl(cy)
        _with_reference(impls, cy, x.size, skipped)
        if torch is not None:
            tx, ts = torch.from_numpy(x), torch.from_numpy(samples)
            impls[TH] = Impl(lambda: F.fractional_max_pool2d(tx, kernel, output_ratio=(ratio, ratio),
                                                             _random_samples=ts),
                             note="same random_samples")
            tc = torch_cl(tx)
            impls[TH_CL] = Impl(lambda: F.fractional_max_pool2d(tc, kernel, output_ratio=(ratio, ratio),
                                                                _random_samples=ts),
                                note="channels_last copy in setup")
        return Bench(impls, x.nbytes, x.size, x.shape, "float32", skipped, exact=True)

    return Case(name, setup, full, quick, tiny, ("fractional_max_pool2d",))


NCHW = (32, 64, 112, 112)
NCHW_Q = (8, 64, 112, 112)
NCHW_T = (2, 3, 8, 8)
NHWC = (32, 112, 112, 64)
NHWC_Q = (8, 112, 112, 64)
NHWC_T = (2, 8, 8, 3)

CASES: list[Case] = [
    window_case("max k2s2", "max", 2, 2, 2, full=NCHW, quick=NCHW_Q, tiny=NCHW_T,
                in_quick=True, prealloc=True),
    window_case("max k2s2 ramp", "max", 2, 2, 2, data="ramp", full=NCHW, quick=NCHW_Q,
                tiny=NCHW_T, in_quick=True),
    window_case("max k3s2p1", "max", 2, 3, 2, 1, full=NCHW, quick=NCHW_Q, tiny=NCHW_T,
                in_quick=True),
    window_case("max k3s2p1 ramp", "max", 2, 3, 2, 1, data="ramp", full=NCHW, quick=NCHW_Q,
                tiny=NCHW_T),
    window_case("max k2s2 with indices", "max", 2, 2, 2, return_indices=True, full=NCHW,
                quick=NCHW_Q, tiny=NCHW_T, prealloc=True),
    window_case("avg k2s2", "avg", 2, 2, 2, full=NCHW, quick=NCHW_Q, tiny=NCHW_T, in_quick=True),
    window_case("avg k3s1p1", "avg", 2, 3, 1, 1, full=NCHW, quick=NCHW_Q, tiny=NCHW_T,
                prealloc=True),
    window_case("channels-last max k2s2", "max", 2, 2, 2, layout="nhwc", full=NHWC,
                quick=NHWC_Q, tiny=NHWC_T),
    window_case("channels-last max k3s2p1", "max", 2, 3, 2, 1, layout="nhwc", full=NHWC,
                quick=NHWC_Q, tiny=NHWC_T, in_quick=True),
    window_case("channels-last avg k2s2", "avg", 2, 2, 2, layout="nhwc", full=NHWC,
                quick=NHWC_Q, tiny=NHWC_T),
    window_case("channels-last uint8 image max k2s2", "max", 2, 2, 2, layout="nhwc",
                dtype=np.uint8, full=(4096, 4096, 3), quick=(2048, 2048, 3), tiny=(8, 8, 3)),
    max_bwd_case("max k3s2p1 backward", 3, 2, 1, full=NCHW, quick=NCHW_Q, tiny=NCHW_T,
                 in_quick=True),
    avg_bwd_case("avg k2s2 backward", 2, 2, full=NCHW, quick=NCHW_Q, tiny=NCHW_T),
    # small planes (the last stages of VGG and AlexNet-style networks):
    # (32, 512, 14, 14) and (32, 256, 13, 13)
    window_case("max k2s2 14x14 planes", "max", 2, 2, 2, full=(32, 512, 14, 14),
                quick=(8, 512, 14, 14), tiny=(2, 3, 14, 14)),
    window_case("max k2s2 with indices 14x14 planes", "max", 2, 2, 2,
                return_indices=True, full=(32, 512, 14, 14), quick=(8, 512, 14, 14),
                tiny=(2, 3, 14, 14)),
    window_case("avg k2s2 14x14 planes", "avg", 2, 2, 2, full=(32, 512, 14, 14),
                quick=(8, 512, 14, 14), tiny=(2, 3, 14, 14)),
    window_case("max k3s2 13x13 planes", "max", 2, 3, 2, full=(32, 256, 13, 13),
                quick=(8, 256, 13, 13), tiny=(2, 3, 13, 13)),
    adaptive_case("adaptive avg 14x14 -> 7x7", 7, full=(32, 512, 14, 14), quick=(8, 512, 14, 14),
                  tiny=(2, 3, 14, 14)),
    global_avg_case("global avg", full=(32, 2048, 7, 7), quick=(8, 2048, 7, 7), tiny=(2, 3, 7, 7)),
    window_case("max_pool1d k2", "max", 1, 2, 2, full=(64, 128, 16384), quick=(16, 128, 16384),
                tiny=(2, 3, 16)),
    window_case("max_pool3d k2s2", "max", 3, 2, 2, full=(4, 32, 64, 64, 64),
                quick=(1, 32, 64, 64, 64), tiny=(1, 2, 4, 4, 4)),
    window_case("avg_pool3d k2s2", "avg", 3, 2, 2, full=(4, 32, 64, 64, 64),
                quick=(1, 32, 64, 64, 64), tiny=(1, 2, 4, 4, 4)),
    window_case("float64 max k2s2", "max", 2, 2, 2, dtype=np.float64, full=(16, 64, 112, 112),
                quick=(4, 64, 112, 112), tiny=NCHW_T),
    window_case("image 8192x8192 max 2x2", "max", 2, 2, 2, full=(1, 1, 8192, 8192),
                quick=(1, 1, 4096, 4096), tiny=(1, 1, 8, 8), prealloc=True),
    window_case("image 8192x8192 mean 2x2", "avg", 2, 2, 2, full=(1, 1, 8192, 8192),
                quick=(1, 1, 4096, 4096), tiny=(1, 1, 8, 8)),
    window_case("uint8 image (4096, 4096, 3) mean 2x2", "avg", 2, 2, 2, layout="nhwc",
                dtype=np.uint8, full=(4096, 4096, 3), quick=(2048, 2048, 3), tiny=(8, 8, 3)),
    lp_case("lp_pool2d p=2 k2s2", 2, 2, 2, full=NCHW, quick=NCHW_Q, tiny=NCHW_T),
    unpool_case("max_unpool2d k2s2", 2, 2, full=NCHW, quick=NCHW_Q, tiny=NCHW_T),
    fractional_case("fractional max k2 ratio 0.5", 2, 0.5, full=NCHW, quick=NCHW_Q, tiny=NCHW_T),
    window_case("latency max k2s2 (1, 1, 2, 2)", "max", 2, 2, 2, full=(1, 1, 2, 2),
                quick=(1, 1, 2, 2), tiny=(1, 1, 2, 2), latency=True, in_quick=True),
    window_case("latency max k2s2 (1, 16, 28, 28)", "max", 2, 2, 2, full=(1, 16, 28, 28),
                quick=(1, 16, 28, 28), tiny=(1, 16, 28, 28), latency=True),
]


# -------------------------------------------------------------------- machine

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def openmp_runtimes() -> list[str]:
    """OpenMP runtime libraries mapped into this process."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                name = line.split()[-1]
                base = os.path.basename(name)
                if any(k in base for k in ("libgomp", "libiomp", "libomp")):
                    libs.add(name)
    except OSError:
        pass
    return sorted(libs)


def _cpu_counters():
    """(total, idle) CPU seconds of the machine and this process's CPU
    seconds, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    t = os.times()
    return sum(v[:8]) / hz, (v[3] + (v[4] if len(v) > 4 else 0)) / hz, t.user + t.system


def other_load(start, end) -> float | None:
    """Fraction of all CPUs that other processes kept busy between two
    :func:`_cpu_counters` samples."""
    if start is None or end is None:
        return None
    total = end[0] - start[0]
    busy = total - (end[1] - start[1]) - (end[2] - start[2])
    return min(max(busy / total, 0.0), 1.0) if total > 0 else None


def system_busy(interval=0.5) -> float | None:
    """Fraction of all CPUs busy over ``interval`` seconds while this process sleeps."""
    start = _cpu_counters()
    time.sleep(interval)
    return other_load(start, _cpu_counters())


def max_rss() -> int | None:
    """Peak resident memory of this process in bytes (None where unknown)."""
    try:
        import resource
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except Exception:
        return None
    return kib * (1 if sys.platform == "darwin" else 1024)


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": peer_versions(),
        "cypool": cypool.__version__,
        "cypool_backends": list(cypool.available_backends()),
        "cypool_openmp": cypool.openmp_enabled(),
        "openmp_runtimes": openmp_runtimes(),
    }


def copy_bandwidth(threads: list[int], repeat: int, mib: int) -> dict[int, list[float]]:
    """Seconds of one ``np.copyto`` of ``mib`` MiB of float32 into a
    pre-faulted destination, per thread count.  With n threads the arrays are
    cut into n contiguous slices copied concurrently by n Python threads
    (``np.copyto`` releases the GIL)."""
    n_el = mib * (1 << 20) // 4
    src = np.ones(n_el, dtype=np.float32)
    dst = np.empty(n_el, dtype=np.float32)
    dst.fill(0)  # every page faulted now, not in the timed copies
    res = {}
    for n in threads:
        bounds = np.linspace(0, n_el, n + 1).astype(np.int64)
        parts = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            def once():
                if n == 1:
                    np.copyto(*parts[0])
                else:
                    list(pool.map(lambda q: np.copyto(*q), parts))
            once()  # warm-up (also starts the pool's threads)
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                once()
                times.append(time.perf_counter() - t0)
        res[n] = times
    del src, dst, parts
    gc.collect()
    return res


# ------------------------------------------------------------------ timing

def _compare(cy_arrs, peer_arrs, bench: Bench) -> str | None:
    """None when the peer's result equals cypool's (within the case's
    tolerance), else a short description of the difference."""
    for i, (u, v) in enumerate(zip(cy_arrs, peer_arrs)):
        if u.shape != v.shape:
            return f"shape {v.shape} vs cypool {u.shape}"
        if bench.exact and v.dtype == u.dtype:
            ok = np.array_equal(u, v, equal_nan=u.dtype.kind == "f")
        else:
            ok = np.allclose(v.astype(np.float64), u.astype(np.float64),
                             rtol=bench.rtol, atol=bench.atol, equal_nan=True)
        if not ok:
            d = np.nanmax(np.abs(v.astype(np.float64) - u.astype(np.float64)))
            return f"differs from cypool{' (indices)' if i else ''}: max |diff| {d:.3g}"
    return None


def time_impls(impls: dict[str, Impl], warmup: int, repeat: int, number: int,
               budget_s: float = float("inf"), on_result: Callable[[str, Any], None] | None = None,
               settle_s: float = 0.0):
    """Warm up each implementation, then time them round-robin (machine
    noise spreads over all alike): ``repeat`` samples of ``number`` calls.
    An implementation whose first call shows that ``repeat`` runs would take
    more than ``budget_s`` gets fewer runs (at least 3) and, when a call
    takes over a second, a single warm-up.  Returns ({name: [seconds per
    call]}, {name: last warm-up result}, {name: error message}); with
    ``on_result``, each last warm-up result is handed to it instead (and
    freed before the next implementation runs: one large result alive at a
    time).  ``settle_s``: an untimed pause before each timed sample, so that
    the previous implementation's OpenMP workers (cypool's and PyTorch's are
    separate runtimes, each spinning a while after a parallel region) are
    asleep and do not take a core from the one being timed."""
    last, errors, runs = {}, {}, {}
    for name, imp in list(impls.items()):
        try:
            for w in range(max(warmup, 1)):
                last[name] = None
                t0 = time.perf_counter()
                last[name] = imp.fn()
                first = time.perf_counter() - t0
                if w == 0:
                    runs[name] = repeat
                    if first * repeat > budget_s:
                        runs[name] = max(3, min(repeat, int(budget_s / first)))
                        if first > 1.0:
                            break
        except Exception as e:
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"
            last.pop(name, None)
        if on_result is not None and name in last:
            on_result(name, last.pop(name))
    live = [n for n in impls if n not in errors]
    times = {name: [] for name in live}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(repeat):
            for name in live:
                if i >= runs[name]:
                    continue
                fn = impls[name].fn
                if settle_s:
                    time.sleep(settle_s)
                if number == 1:
                    t0 = time.perf_counter()
                    r = fn()
                    t1 = time.perf_counter()
                    del r  # freed outside the timed region
                else:
                    t0 = time.perf_counter()
                    for _ in range(number):
                        fn()
                    t1 = time.perf_counter()
                times[name].append((t1 - t0) / number)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times, last, errors


def set_threads(n: int):
    cypool.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def run_case(case: Case, size: str, threads, warmup, repeat, opts, log) -> dict:
    shape = getattr(case, size)
    res = {"case": case.name, "input_shape": list(shape), "rows": [], "notes": []}
    missing = [n for n in case.needs if not hasattr(cypool, n)]
    if missing:
        res["skipped"] = f"cypool.{missing[0]} not available yet"
        return res
    bench = case.setup(shape, opts)
    res["dtype"] = bench.dtype
    res["bytes_read"] = bench.bytes_read
    number = opts["latency_number"] if case.latency else 1
    rep = max(repeat, opts["latency_repeat"]) if case.latency else repeat
    res["calls_per_sample"] = number
    res["repeat"] = rep
    state = {"cy": None, "n": None}
    checked = {}

    def on_result(name, r):
        # cypool runs first: its first result is kept for the comparisons (of
        # every implementation at every thread count, cypool's own included)
        # and the byte count
        if name == CY and state["cy"] is None:
            state["cy"] = to_numpy(r)
            res["bytes_written"] = int(sum(a.nbytes for a in state["cy"]))
            return
        if not bench.impls[name].compare:
            return
        arrs = bench.impls[name].convert(r)
        if "bytes_written" not in res and name in (CY_REF, TH):
            # cypool failed: count the bytes this one writes
            res["bytes_written"] = int(sum(a.nbytes for a in arrs))
        if state["cy"] is not None:
            checked[name, state["n"]] = _compare(state["cy"], arrs, bench)

    for i, n in enumerate(threads):
        set_threads(n)
        state["n"] = n
        impls = {k: v for k, v in bench.impls.items() if i == 0 or k not in SINGLE_THREADED}
        log(f"  {case.name}: {n} thread(s), {len(impls)} implementations")
        groups = [impls]
        if CY_RAND in impls:
            # the data-independence pair, timed in turns with each other only:
            # each call then follows the other, in the same allocator state
            # (a call right after a peer may find its freed output memory
            # returned to the system and fault it in afresh: 1.3 ms of page
            # faults on a 25.7 MB result, which is not the data's doing)
            pair = {k: impls[k] for k in (CY, CY_RAND) if k in impls}
            groups = [pair, {k: v for k, v in impls.items() if k not in pair}]
        times, errors = {}, {}
        for grp in groups:
            t, _, e = time_impls(grp, warmup, rep, number, opts["budget_s"], on_result,
                                 opts.get("settle_s", 0.0))
            times.update(t)
            errors.update(e)
        for name in impls:
            row = {"threads": n, "impl": name, "note": bench.impls[name].note}
            if name in errors:
                row["error"] = errors[name]
            else:
                row["times_s"] = times[name]
                row["median_s"] = statistics.median(times[name])
            row["single_threaded"] = name in SINGLE_THREADED
            if checked.get((name, n)):
                row["mismatch"] = checked[name, n]
            res["rows"].append(row)
        if i == 0:
            for name, why in bench.skipped.items():
                res["rows"].append({"threads": n, "impl": name, "skipped": why})
    del bench, state
    gc.collect()
    return res


def derive(results, copy_gbps):
    """Adds GB/s, % of copy and the ratio to PyTorch default to every row."""
    for res in results:
        if "skipped" in res or "bytes_written" not in res:
            continue
        nbytes = res["bytes_read"] + res["bytes_written"]
        res["bytes_moved"] = nbytes
        th = {r["threads"]: r["median_s"] for r in res["rows"]
              if r["impl"] == TH and "median_s" in r}
        for r in res["rows"]:
            if "median_s" not in r:
                continue
            r["gbps"] = nbytes / r["median_s"] / 1e9
            r["pct_of_copy"] = 100 * r["gbps"] / copy_gbps[r["threads"]]
            if r["threads"] in th:
                r["torch_over_this"] = th[r["threads"]] / r["median_s"]


# ----------------------------------------------------------------- reporting

def opts_repeat(res) -> int:
    return res.get("repeat", 1)


def fmt_ms(s):
    if s is None:
        return DASH
    ms = s * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3g}"


def table(results) -> str:
    lines = ["| case | threads | implementation | median ms | GB/s | % of copy | vs torch | notes |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for res in results:
        name = res["case"]
        if "skipped" in res:
            lines.append(f"| {name} | {DASH} | {DASH} | {DASH} | {DASH} | {DASH} | {DASH} "
                         f"| skipped: {res['skipped']} |")
            continue
        for r in res["rows"]:
            notes = []
            if "skipped" in r:
                lines.append(f"| {name} | {DASH} | {r['impl']} | {DASH} | {DASH} | {DASH} | {DASH} "
                             f"| {r['skipped']} |")
                continue
            if "error" in r:
                lines.append(f"| {name} | {r['threads']} | {r['impl']} | {DASH} | {DASH} | {DASH} "
                             f"| {DASH} | n/a: {r['error']} |")
                continue
            if r.get("single_threaded"):
                notes.append("single-threaded")
            if len(r["times_s"]) < opts_repeat(res):
                notes.append(f"{len(r['times_s'])} runs (time cap)")
            if r.get("note"):
                notes.append(r["note"])
            if res.get("calls_per_sample", 1) > 1:
                notes.append(f"{r['median_s'] * 1e6:.2f} µs per call")
            if r.get("mismatch"):
                notes.append(f"**{r['mismatch']}**")
            ratio = r.get("torch_over_this")
            gbps = f"{r['gbps']:.1f}" if "gbps" in r else DASH
            pct = f"{r['pct_of_copy']:.0f}%" if "pct_of_copy" in r else DASH
            lines.append(f"| {name} | {r['threads']} | {r['impl']} | {fmt_ms(r['median_s'])} "
                         f"| {gbps} | {pct} "
                         f"| {DASH if ratio is None else f'{ratio:.2f}'} | {'; '.join(notes)} |")
    return "\n".join(lines)


def summary(results, threads) -> str:
    """One line per case and thread count: cypool against PyTorch default,
    PyTorch oneDNN and the fastest other peer."""
    lines = ["| case | threads | cypool ms | % of copy | torch ms | torch/cypool "
             "| oneDNN/cypool | fastest other peer |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for res in results:
        if "skipped" in res:
            continue
        for n in threads:
            rows = {r["impl"]: r for r in res["rows"] if r.get("threads") == n and "median_s" in r}
            if n != threads[0]:  # single-threaded peers were timed at the first count only
                rows.update({r["impl"]: r for r in res["rows"]
                             if r.get("single_threaded") and "median_s" in r})
            cy = rows.get(CY)
            if cy is None:
                continue
            th, dnn = rows.get(TH), rows.get(TH_DNN)
            others = [(r["median_s"], k) for k, r in rows.items()
                      if k not in (CY, CY_OUT, CY_RAND, CY_REF, TH, TH_DNN)]
            best = min(others) if others else None
            cym = cy["median_s"]
            th_ms = fmt_ms(th["median_s"]) if th else DASH
            th_ratio = f"{th['median_s'] / cym:.1f}" if th else DASH
            dnn_ratio = f"{dnn['median_s'] / cym:.1f}" if dnn else DASH
            best_s = f"{best[1]} {fmt_ms(best[0])} ms" if best else DASH
            lines.append(f"| {res['case']} | {n} | {fmt_ms(cym)} | {cy.get('pct_of_copy', 0):.0f}% "
                         f"| {th_ms} | {th_ratio} | {dnn_ratio} | {best_s} |")
    return "\n".join(lines)


INDEX_TRAFFIC = ("indices", "backward", "unpool")  # cases held to the 60 % target
NCHW_MAX_FORWARD = ("max k2s2", "max k2s2 ramp", "max k3s2p1", "max k3s2p1 ramp")
RAMP_PAIRS = (("max k2s2", "max k2s2 ramp"), ("max k3s2p1", "max k3s2p1 ramp"))


def targets(results, threads) -> str:
    """The performance issue's targets, each checked on this run's numbers."""
    med = {}
    for res in results:
        for r in res.get("rows", []):
            if "median_s" in r:
                med[res["case"], r["impl"], r["threads"]] = r
    large = [r for r in results if "skipped" not in r and r.get("calls_per_sample", 1) == 1
             and "bytes_written" in r]
    latency = [r for r in results if "skipped" not in r and r.get("calls_per_sample", 1) > 1]
    lines = ["| target | case | threads | measured | |", "|---|---|---:|---:|---|"]

    def add(target, case, n, value, ok):
        lines.append(f"| {target} | {case} | {n} | {value} | {'met' if ok else '**missed**'} |")

    for res in large:
        c = res["case"]
        cy1 = med.get((c, CY, 1))
        if cy1:
            need = 60 if any(w in c for w in INDEX_TRAFFIC) else 70
            add(f">= {need} % of copy", c, 1, f"{cy1['pct_of_copy']:.0f} %", cy1["pct_of_copy"] >= need)
            dnn = med.get((c, TH_DNN, 1))
            if dnn:
                ratio = dnn["median_s"] / cy1["median_s"]
                add("faster than oneDNN", c, 1, f"{ratio:.2f}x", ratio > 1)
        for n in threads:
            cy, th = med.get((c, CY, n)), med.get((c, TH, n))
            if cy and th:
                ratio = th["median_s"] / cy["median_s"]
                if c in NCHW_MAX_FORWARD:
                    add(">= 10x PyTorch default", c, n, f"{ratio:.1f}x", ratio >= 10)
                else:
                    add("not slower than PyTorch default", c, n, f"{ratio:.2f}x", ratio >= 1)
        if 1 in threads and 2 in threads and med.get((c, CY, 1)) and med.get((c, CY, 2)):
            sp = med[c, CY, 1]["median_s"] / med[c, CY, 2]["median_s"]
            add(">= 1.2x from 2 threads", c, "1 -> 2", f"{sp:.2f}x", sp >= 1.2)
    for a, b in RAMP_PAIRS:
        for n in threads:
            # the random input timed in turns with the ramp (one window of
            # time, so the machine's drift between cases does not count);
            # else the two cases' own medians
            ra, rb = med.get((b, CY_RAND, n)), med.get((b, CY, n))
            label = f"{b}: ramp vs random input, timed in turns"
            if not ra:
                ra, label = med.get((a, CY, n)), f"{b} vs {a}"
            if ra and rb:
                d = abs(rb["median_s"] / ra["median_s"] - 1)
                add("ramp within 10 % of random", label, n, f"{100 * d:.0f} %", d <= 0.10)
    for res in latency:
        c = res["case"]
        for n in threads:
            cy, th = med.get((c, CY, n)), med.get((c, TH, n))
            if cy and th and "(1, 1, 2, 2)" in c:
                ratio = cy["median_s"] / th["median_s"]
                add("<= 1.5x PyTorch's per-call cost", c, n,
                    f"{cy['median_s'] * 1e6:.2f} us = {ratio:.2f}x", ratio <= 1.5)
        if 1 in threads and 2 in threads and med.get((c, CY, 1)) and med.get((c, CY, 2)):
            r12 = med[c, CY, 2]["median_s"] / med[c, CY, 1]["median_s"]
            add("small input: 2 threads not slower (10 % noise allowed)", c, "1 -> 2",
                f"{r12:.2f}x the time", r12 <= 1.10)
    for res in large:
        c = res["case"]
        for n in threads:
            a, b = med.get((c, CY, n)), med.get((c, CY_OUT, n))
            if a and b:
                lines.append(f"| out= preallocated vs fresh output (no target) | {c} | {n} "
                             f"| {fmt_ms(b['median_s'])} vs {fmt_ms(a['median_s'])} ms | |")
    return "\n".join(lines)


def plot(results, threads, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"\nmatplotlib is not installed (pip install matplotlib): no plot written to {path}.")
        return False
    done = [r for r in results if "skipped" not in r and "bytes_written" in r]
    impls = []
    for r in done:
        for row in r["rows"]:
            if "median_s" in row and row["impl"] not in impls:
                impls.append(row["impl"])
    names = [r["case"] for r in done]
    fig, axes = plt.subplots(len(threads), 1, figsize=(max(8, 0.9 * len(names) + 3), 4.5 * len(threads)),
                             squeeze=False)
    width = 0.85 / max(len(impls), 1)
    for ax, n in zip(axes[:, 0], threads):
        for j, imp in enumerate(impls):
            vals = []
            for r in done:
                th = next((x["median_s"] for x in r["rows"] if x["impl"] == TH
                           and x.get("threads") == n and "median_s" in x), None)
                # single-threaded implementations were timed at the first count only
                row = next((x for x in r["rows"] if x["impl"] == imp and "median_s" in x
                            and (x["threads"] == n or x.get("single_threaded"))), None)
                vals.append(th / row["median_s"] if row and th else np.nan)
            xs = [i + (j - (len(impls) - 1) / 2) * width for i in range(len(names))]
            ax.bar(xs, vals, width, label=imp)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("PyTorch default time / time\n(> 1: faster than PyTorch)")
        ax.set_title(f"{n} thread{'s' if n > 1 else ''} (single-threaded peers: timed once)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"\nPlot written to {path}")
    return True


# ---------------------------------------------------------------------- main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: 1,2)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="timed runs per implementation (default: 7; 5 with --quick; 1 with --smoke)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed runs first, at least 1 (default: 2; 1 with --smoke)")
    ap.add_argument("--quick", action="store_true",
                    help="a subset of the cases on smaller inputs (< 1 minute)")
    ap.add_argument("--sizes", choices=("full", "quick", "tiny"), default=None,
                    help="input sizes (default: full; quick with --quick; tiny with --smoke)")
    ap.add_argument("--smoke", action="store_true",
                    help="every case on tiny inputs, 1 run each, small copy baseline: checks the "
                         "code paths, not the speed")
    ap.add_argument("--budget", type=float, default=6.0, metavar="SECONDS",
                    help="fewer timed runs (at least 3) for an implementation whose runs would "
                         "take longer than this, per thread count (default: 6)")
    ap.add_argument("--settle", type=float, default=None, metavar="SECONDS",
                    help="untimed pause before each timed sample, so that the previous "
                         "implementation's spinning OpenMP threads are asleep (default: 0.01; "
                         "0 with --smoke)")
    ap.add_argument("--cases", default=None,
                    help="comma-separated substrings; run the cases whose name contains one")
    ap.add_argument("--out-prealloc", action=argparse.BooleanOptionalAction, default=True,
                    help="time cypool with out= a preallocated array on 'max k2s2' (also with indices), 'avg k3s1p1', "
                         "the backward cases, max_unpool2d and the 8192x8192 max (default: on)")
    ap.add_argument("--copy-mib", type=int, default=None,
                    help=f"size of the copy-bandwidth baseline in MiB (default: {COPY_MIB}; 16 with --smoke)")
    ap.add_argument("--json", metavar="PATH", default=None,
                    help="where to write all results as JSON (default: benchmarks/results/<date>.json)")
    ap.add_argument("--no-json", action="store_true", help="write no JSON file")
    ap.add_argument("--plot", metavar="PATH", help="save a PNG bar chart (needs matplotlib)")
    ap.add_argument("--list", action="store_true", help="list the case names and exit")
    args = ap.parse_args(argv)
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        ap.error("--threads takes comma-separated integers, e.g. 1,2")
    if not args.threads or min(args.threads) < 1:
        ap.error("--threads needs at least one count >= 1")
    if args.sizes is None:
        args.sizes = "tiny" if args.smoke else "quick" if args.quick else "full"
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 5 if args.quick else 7
    if args.warmup is None:
        args.warmup = 1 if args.smoke else 2
    if args.copy_mib is None:
        args.copy_mib = 16 if args.smoke else COPY_MIB
    if args.repeat < 1 or args.warmup < 1 or args.copy_mib < 1 or not args.budget > 0:
        ap.error("--repeat, --warmup and --copy-mib must be >= 1, --budget > 0")
    return args


def select_cases(args) -> list[Case]:
    cases = [c for c in CASES if c.in_quick] if args.quick and not args.cases else list(CASES)
    if args.cases:
        wanted = [w.strip() for w in args.cases.split(",") if w.strip()]
        cases = [c for c in cases if any(w in c.name for w in wanted)]
    return cases


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        for c in CASES:
            print(f"{c.name}{'  [quick]' if c.in_quick else ''}")
        return 0
    cases = select_cases(args)
    if not cases:
        print(f"no case matches {args.cases!r}; cases: " + ", ".join(c.name for c in CASES),
              file=sys.stderr)
        return 2

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    busy = system_busy()
    info = machine_info()
    info["busy_before_run"] = busy
    counters0 = _cpu_counters()
    now = datetime.datetime.now().astimezone()
    date = now.isoformat(timespec="seconds")
    threads_before = cypool.get_num_threads(), torch.get_num_threads() if torch is not None else None
    v = info["versions"]
    print("# cypool pooling benchmark\n")
    print(f"- Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs "
          f"({info['usable_cpus']} usable), {info['platform']}")
    print(f"- Date: {date}")
    print(f"- Versions: Python {info['python']}, cypool {info['cypool']} "
          f"(openmp {info['cypool_openmp']}), numpy {v['numpy']}, torch {v['torch'] or 'absent'}, "
          f"scikit-image {v['scikit-image'] or 'absent'}, tinybrain {v['tinybrain'] or 'absent'}")
    if busy is not None:
        print(f"- Other load before the run: {100 * busy:.0f}% of all CPUs busy"
              + (" -- WARNING: the machine is not idle; timings (2 threads above all) are "
                 "unreliable" if busy > 0.2 else ""))
    print(f"- Sizes: {args.sizes}; {args.warmup} warm-up + {args.repeat} timed runs per "
          f"implementation, median; threads {','.join(map(str, args.threads))}"
          + (" (--quick subset)" if args.quick else ""))

    log(f"measuring copy bandwidth ({args.copy_mib} MiB) ...")
    copy_start = copy_bandwidth(args.threads, 5, args.copy_mib)
    opts = {"out_prealloc": args.out_prealloc, "budget_s": args.budget,
            "latency_number": 5 if args.smoke else 200,
            "latency_repeat": 2 if args.smoke else 31,
            "settle_s": (0.0 if args.smoke else 0.01) if args.settle is None else args.settle}
    results = []
    try:
        for case in cases:
            log(f"{case.name} {getattr(case, args.sizes)}")
            t0 = time.perf_counter()
            results.append(run_case(case, args.sizes, args.threads, args.warmup, args.repeat, opts, log))
            results[-1]["case_runtime_s"] = time.perf_counter() - t0
            log(f"  ({results[-1]['case_runtime_s']:.1f} s)")
    finally:
        cypool.set_num_threads(threads_before[0])
        if torch is not None:
            torch.set_num_threads(threads_before[1])
    log("measuring copy bandwidth again ...")
    copy_end = copy_bandwidth(args.threads, 5, args.copy_mib)
    nbytes = 2 * args.copy_mib * (1 << 20)
    copy_gbps = {n: nbytes / statistics.median(copy_start[n] + copy_end[n]) / 1e9 for n in args.threads}
    derive(results, copy_gbps)
    during = other_load(counters0, _cpu_counters())
    info["busy_during_run"] = during

    print("- Copy bandwidth (np.copyto of "
          f"{args.copy_mib} MiB float32, bytes read + written, median of 5 before and 5 after "
          "the cases): " + ", ".join(
              f"{n} thread{'s' if n > 1 else ''}: {copy_gbps[n]:.1f} GB/s "
              f"(before {nbytes / statistics.median(copy_start[n]) / 1e9:.1f}, "
              f"after {nbytes / statistics.median(copy_end[n]) / 1e9:.1f})" for n in args.threads))
    print()
    print(table(results))
    print("\nmedian ms: per call. GB/s: (input + output [+ indices]) bytes of the operation "
          "(backward: grad_output + grad_input [+ indices]) / median, the same byte count for "
          "every implementation. % of copy: that against the copy bandwidth at the same thread "
          "count. vs torch: PyTorch default time / this time (> 1: faster than PyTorch default). "
          "Single-threaded implementations are timed once, at the first thread count.")
    print("\n## Summary\n")
    print(summary(results, args.threads))
    print("\n## Targets of the performance issue\n")
    if args.sizes != "full":
        print(f"({args.sizes} sizes: indicative only; the targets are for the full sizes)\n")
    print(targets(results, args.threads))
    if during is not None:
        print(f"\nOther load during the run: {100 * during:.0f}% of all CPUs busy"
              + (" -- WARNING: the machine was not idle; timings are unreliable"
                 if during > 0.1 else ""))
    bad = [f"{r['case']} / {row['impl']}" for r in results for row in r["rows"] if row.get("mismatch")]
    if bad:
        print(f"\nWARNING: results differ from cypool's for: {', '.join(bad)}")
    elapsed = time.perf_counter() - t_start
    info["max_rss_bytes"] = max_rss()
    print(f"\nTotal runtime: {elapsed:.1f} s"
          + (f"; peak memory (max RSS) {info['max_rss_bytes'] / 2**30:.2f} GiB"
             if info["max_rss_bytes"] else ""))

    if not args.no_json:
        path = args.json or os.path.join(
            RESULTS_DIR, now.strftime("%Y%m%d-%H%M%S") + f"-{args.sizes}.json")
        doc = {
            "machine": info,
            "date": date,
            "args": {k: getattr(args, k) for k in ("threads", "repeat", "warmup", "quick", "sizes",
                                                   "smoke", "cases", "out_prealloc", "copy_mib", "budget")},
            "copy_bandwidth": {str(n): {"gbps": copy_gbps[n], "times_s_before": copy_start[n],
                                        "times_s_after": copy_end[n]} for n in args.threads},
            "cases": results,
            "targets_markdown": targets(results, args.threads),
            "total_runtime_s": elapsed,
        }
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"\nJSON written to {path}")
    if args.plot:
        plot(results, args.threads, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
