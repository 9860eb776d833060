#!/usr/bin/env python
"""Benchmark cypool's pooling operators against PyTorch CPU.

    python benchmarks/bench_pool.py                  # full run, markdown table
    python benchmarks/bench_pool.py --quick          # small inputs, < 1 minute
    python benchmarks/bench_pool.py --cases "max k2s2" --threads 1 --json out.json

See benchmarks/README.md for what the columns mean.  To add a case, append a
:class:`Case` to :data:`CASES` (the helpers :func:`fwd`, :func:`max_bwd` and
:func:`avg_bwd` cover the common shapes of a case).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import cypool

try:
    import torch
    import torch.nn.functional as F
except Exception:  # not installed, or broken: the torch column shows "—"
    torch = None
    F = None

FULL_SHAPE = (32, 64, 112, 112)   # 25.7 M float32 elements, 103 MB
QUICK_SHAPE = (4, 64, 56, 56)     # 0.8 M float32 elements, 3.2 MB
REFERENCE_MAX_ELEMENTS = 2_000_000  # time the slow reference backend below this
COPY_BYTES = 1 << 30               # 1 GiB copy for the bandwidth baseline
DASH = "—"


# --------------------------------------------------------------------- inputs

def make_data(kind: str, shape, dtype=np.float32, seed=0) -> np.ndarray:
    """An input array.  ``random``: standard normal.  ``ramp``: strictly
    increasing within every (n, c) plane (exact in float32), so every window's
    maximum is its last element, which a branchy kernel predicts perfectly."""
    if kind == "random":
        return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
    if kind == "ramp":
        plane = int(np.prod(shape[2:]))
        return (np.arange(int(np.prod(shape)), dtype=np.int64) % plane).astype(dtype).reshape(shape)
    if kind == "zeros":
        return np.zeros(shape, dtype=dtype)
    raise ValueError(f"unknown data kind {kind!r}")


# ---------------------------------------------------------------------- cases

@dataclass(frozen=True)
class Case:
    """One benchmark case.

    ``setup(shape)`` builds the inputs once (untimed) as a dict of arrays and
    other values.  ``cypool(ctx)`` and ``torch(tctx)`` are the timed calls;
    ``tctx`` is ``ctx`` with every ndarray wrapped by ``torch.from_numpy`` (no
    copy, strides kept).  ``reads`` names the ctx arrays the call reads: their
    bytes plus the bytes of every array the cypool call returns give the
    effective bandwidth.  ``shape``/``quick_shape`` override the defaults.
    ``exact``: compare outputs with torch bit for bit instead of allclose.
    """

    name: str
    setup: Callable[[tuple], dict]
    cypool: Callable[[dict], Any]
    torch: Callable[[dict], Any] | None = None
    reads: tuple[str, ...] = ("x",)
    shape: tuple | None = None
    quick_shape: tuple | None = None
    exact: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)


def _as_tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def fwd(name, op, kernel_size, stride=None, data="random", **kw) -> Case:
    """Forward case: ``cypool.<op>(x, k, s, **kw)`` vs ``F.<op>(x, k, s, **kw)``."""
    def cy(c):
        return getattr(cypool, op)(c["x"], kernel_size, stride, **kw)

    def th(t):
        return getattr(F, op)(t["x"], kernel_size, stride, **kw)

    return Case(name, lambda shape: {"x": make_data(data, shape)}, cy, th,
                reads=("x",), exact=op.startswith("max"))


def max_bwd(name, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Case:
    """Backward of 2-d max pooling given the forward's indices (computed in setup)."""
    def setup(shape):
        x = make_data("random", shape)
        y, idx = cypool.max_pool2d(x, kernel_size, stride, padding, dilation,
                                   ceil_mode, return_indices=True)
        grad = make_data("random", y.shape, seed=1)
        return {"x": x, "grad": grad, "idx": idx}

    def cy(c):
        return cypool.max_pool2d_backward(c["grad"], c["idx"], c["x"].shape,
                                          kernel_size, stride, padding, dilation, ceil_mode)

    k = list(_as_tuple(kernel_size))
    s = list(_as_tuple(stride if stride is not None else kernel_size))
    p, d = list(_as_tuple(padding)), list(_as_tuple(dilation))

    def th(t):
        return torch.ops.aten.max_pool2d_with_indices_backward(
            t["grad"], t["x"], k, s, p, d, ceil_mode, t["idx"])

    return Case(name, setup, cy, th, reads=("grad", "idx"))


def avg_bwd(name, kernel_size, stride=None, padding=0, ceil_mode=False,
            count_include_pad=True, divisor_override=None) -> Case:
    """Backward of 2-d average pooling."""
    def setup(shape):
        x = np.zeros(shape, dtype=np.float32)  # only its shape is used
        out_shape = cypool.avg_pool2d(x[:1, :1], kernel_size, stride, padding,
                                      ceil_mode).shape[2:]
        grad = make_data("random", shape[:2] + out_shape, seed=1)
        return {"x": x, "grad": grad}

    def cy(c):
        return cypool.avg_pool2d_backward(c["grad"], c["x"].shape, kernel_size, stride,
                                          padding, ceil_mode, count_include_pad,
                                          divisor_override)

    k = list(_as_tuple(kernel_size))
    s = list(_as_tuple(stride if stride is not None else kernel_size))
    p = list(_as_tuple(padding))

    def th(t):
        return torch.ops.aten.avg_pool2d_backward(
            t["grad"], t["x"], k, s, p, ceil_mode, count_include_pad, divisor_override)

    return Case(name, setup, cy, th, reads=("grad",))


def cl_fwd(name, op, kernel_size, stride=None, shape=(32, 112, 112, 64),
           quick_shape=(4, 56, 56, 64), dtype=np.float32, torch_nchw_copy=False,
           **kw) -> Case:
    """Channels-last forward: cypool on ``(N, H, W, C)`` (``channels_last=True``)
    vs PyTorch on the same memory as an NCHW tensor in ``channels_last``
    memory format (its vectorised channels-last kernel).  ``torch_nchw_copy``:
    PyTorch gets an NCHW copy instead (made inside the timed call), where its
    channels-last kernel rejects the input."""
    def setup(shp):
        x = make_data("random", shp, dtype=np.float32)
        if np.dtype(dtype).kind in "iu":
            x = (np.abs(x) * 60).astype(dtype)
        return {"x": x}

    def cy(c):
        return getattr(cypool, op)(c["x"], kernel_size, stride, channels_last=True, **kw)

    def th(t):
        x = t["x"]
        x4 = (x[None] if x.dim() == 3 else x).permute(0, 3, 1, 2)
        if torch_nchw_copy:
            x4 = x4.contiguous()  # timed: a user of this input must pay it too
        y = getattr(F, op)(x4, kernel_size, stride, **kw).permute(0, 2, 3, 1)
        return y[0] if x.dim() == 3 else y

    return Case(name, setup, cy, th, reads=("x",), shape=shape, quick_shape=quick_shape,
                exact=op.startswith("max"))


CASES: list[Case] = [
    fwd("max k2s2", "max_pool2d", 2, 2),
    fwd("max k2s2 ramp", "max_pool2d", 2, 2, data="ramp"),
    fwd("max k3s2p1", "max_pool2d", 3, 2, padding=1),
    fwd("max k2s2 with indices", "max_pool2d", 2, 2, return_indices=True),
    fwd("avg k2s2", "avg_pool2d", 2, 2),
    max_bwd("max k3s2p1 backward", 3, 2, 1),
    avg_bwd("avg k2s2 backward", 2, 2),
    cl_fwd("channels-last max k3s2p1", "max_pool2d", 3, 2, padding=1),
    cl_fwd("channels-last avg k2s2", "avg_pool2d", 2, 2),
    # torch 2.13's channels-last uint8 max pooling raises "Expected input_depth *
    # input_height * input_width <= std::numeric_limits<integer_t>::max()" on
    # this image, so its peer is the NCHW kernel on a copy
    cl_fwd("channels-last max k2s2 uint8 image (torch: NCHW copy)", "max_pool2d", 2, 2,
           shape=(4096, 4096, 3), quick_shape=(512, 512, 3), dtype=np.uint8,
           torch_nchw_copy=True),
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
    """OpenMP runtime libraries mapped into this process (one shared copy is
    normal: torch's and cypool's libgomp have the same soname)."""
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
    """(total, idle) CPU time of the machine in seconds, and this process's CPU
    time in seconds, or None where /proc/stat is missing."""
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
    """Fraction of all CPUs busy over ``interval`` seconds while this process
    sleeps: other load on the machine, which skews multi-threaded timings."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle
    try:
        t0, i0 = sample()
        time.sleep(interval)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return 1 - (i1 - i0) / max(t1 - t0, 1)


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
        "numpy": np.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "cypool": cypool.__version__,
        "cypool_openmp": cypool.openmp_enabled(),
        "cypool_backends": list(cypool.available_backends()),
        "openmp_runtimes": openmp_runtimes(),
    }


def copy_bandwidth(threads: list[int], repeat: int) -> dict[int, dict]:
    """GB/s of ``np.copyto`` of a 1 GiB float32 array (bytes read + written),
    split into n contiguous slices copied concurrently by n Python threads."""
    n_el = COPY_BYTES // 4
    src = np.ones(n_el, dtype=np.float32)
    dst = np.zeros(n_el, dtype=np.float32)  # touched: no page faults when timed
    out = {}
    for n in threads:
        bounds = np.linspace(0, n_el, n + 1).astype(np.int64)
        parts = [(dst[a:b], src[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            def once():
                if n == 1:
                    np.copyto(*parts[0])
                else:
                    list(pool.map(lambda p: np.copyto(*p), parts))
            once()  # warm-up (also starts the pool's threads)
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                once()
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        out[n] = {"times_s": times, "median_s": med, "gbps": 2 * COPY_BYTES / med / 1e9}
    del src, dst, parts
    gc.collect()
    return out


# ------------------------------------------------------------------ timing

def _arrays(result) -> list:
    seq = result if isinstance(result, (tuple, list)) else (result,)
    return [np.asarray(a) if torch is None or not isinstance(a, torch.Tensor) else a.numpy()
            for a in seq]


def _matches(cy_result, th_result, exact: bool) -> bool:
    a, b = _arrays(cy_result), _arrays(th_result)
    if len(a) != len(b):
        return False
    for u, v in zip(a, b):
        if u.shape != v.shape:
            return False
        if exact or u.dtype.kind in "iu":
            if not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
                return False
        elif not np.allclose(u, v, rtol=1e-5, atol=1e-6, equal_nan=True):
            return False
    return True


def time_peers(peers: dict[str, Callable[[], Any]], warmup: int, repeat: int):
    """Warm up every peer, then time them round-robin (so that machine noise
    spreads over all peers alike).  Returns ({peer: [seconds]}, {peer: last
    warm-up result})."""
    last = {}
    for name, fn in peers.items():
        for _ in range(warmup):
            last[name] = None
            last[name] = fn()
    times = {name: [] for name in peers}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, fn in peers.items():
                t0 = time.perf_counter()
                r = fn()
                t1 = time.perf_counter()
                del r  # freed outside the timed region
                times[name].append(t1 - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times, last


def run_case(case: Case, shape, threads, warmup, repeat, with_reference, log):
    ctx = case.setup(shape)
    tctx = None
    if torch is not None and case.torch is not None:
        tctx = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                for k, v in ctx.items()}
    in_shape = tuple(ctx["x"].shape) if "x" in ctx else None
    ctx_dtype = ctx["x"].dtype if "x" in ctx else np.dtype(np.float32)
    n_elements = int(np.prod(in_shape)) if in_shape else 0
    reference = with_reference and n_elements < REFERENCE_MAX_ELEMENTS
    in_bytes = sum(ctx[k].nbytes for k in case.reads)
    out_bytes = None
    match = None
    rows = []
    for n in threads:
        log(f"  {case.name}: {n} thread(s)")
        peers = {"cypool": lambda: case.cypool(ctx)}
        if tctx is not None:
            peers["torch"] = lambda: case.torch(tctx)
        if reference:
            def ref():
                with cypool.backend("reference"):
                    return case.cypool(ctx)
            peers["reference"] = ref
        if torch is not None:
            torch.set_num_threads(n)
        with cypool.num_threads(n):
            times, last = time_peers(peers, warmup, repeat)
        if out_bytes is None:
            out_bytes = sum(a.nbytes for a in _arrays(last["cypool"]))
        if match is None and "torch" in last:
            match = _matches(last["cypool"], last["torch"], case.exact)
        del last
        rows.append({
            "threads": n,
            "peers": {p: {"times_s": t, "median_s": statistics.median(t)}
                      for p, t in times.items()},
        })
    del ctx, tctx
    gc.collect()
    return {
        "case": case.name,
        "input_shape": list(in_shape) if in_shape else None,
        "dtype": str(ctx_dtype),
        "bytes_read": in_bytes,
        "bytes_written": out_bytes,
        "torch_matches": match,
        "results": rows,
    }


# ----------------------------------------------------------------- reporting

def fmt_ms(s):
    return DASH if s is None else f"{s * 1e3:.2f}"


def table(results, copy_bw) -> str:
    lines = [
        "| case | threads | cypool ms | torch ms | torch/cypool | reference ms "
        "| cypool GB/s | % of copy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        name = res["case"] + ("" if res["torch_matches"] in (True, None) else " (MISMATCH)")
        nbytes = res["bytes_read"] + res["bytes_written"]
        for row in res["results"]:
            p = row["peers"]
            cy = p["cypool"]["median_s"]
            th = p.get("torch", {}).get("median_s")
            ref = p.get("reference", {}).get("median_s")
            gbps = nbytes / cy / 1e9
            pct = 100 * gbps / copy_bw[row["threads"]]["gbps"]
            ratio = DASH if th is None else f"{th / cy:.2f}"
            lines.append(f"| {name} | {row['threads']} | {fmt_ms(cy)} | {fmt_ms(th)} "
                         f"| {ratio} | {fmt_ms(ref)} | {gbps:.1f} | {pct:.0f}% |")
    return "\n".join(lines)


def plot(results, threads, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"\nNote: matplotlib is not installed; no plot written to {path}.")
        return
    names = [r["case"] for r in results]
    width = 0.8 / len(threads)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(names)), 4.5))
    for j, n in enumerate(threads):
        vals = []
        for r in results:
            row = next(x for x in r["results"] if x["threads"] == n)
            th = row["peers"].get("torch")
            vals.append(th["median_s"] / row["peers"]["cypool"]["median_s"] if th else 0.0)
        xs = [i + (j - (len(threads) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, vals, width, label=f"{n} thread{'s' if n > 1 else ''}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("PyTorch time / cypool time (>1: cypool faster)")
    ax.set_title("cypool vs PyTorch CPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"\nPlot written to {path}")


# ---------------------------------------------------------------------- main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2",
                    help="comma-separated thread counts (default: 1,2)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="timed repetitions after 2 warm-up runs (default: 7; 5 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help=f"small inputs {QUICK_SHAPE}, also times the reference backend")
    ap.add_argument("--cases", default=None,
                    help="comma-separated substrings; run the cases whose name contains one")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    ap.add_argument("--plot", metavar="PATH", help="save a PNG bar chart of the ratios")
    ap.add_argument("--list", action="store_true", help="list the case names and exit")
    args = ap.parse_args(argv)
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        ap.error("--threads takes comma-separated integers, e.g. 1,2")
    if not args.threads or min(args.threads) < 1:
        ap.error("--threads needs at least one count >= 1")
    if args.repeat is None:
        args.repeat = 5 if args.quick else 7
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        print("\n".join(c.name for c in CASES))
        return 0
    cases = CASES
    if args.cases:
        wanted = [w.strip() for w in args.cases.split(",") if w.strip()]
        cases = [c for c in CASES if any(w in c.name for w in wanted)]
        if not cases:
            print(f"no case matches {args.cases!r}; cases: "
                  + ", ".join(c.name for c in CASES), file=sys.stderr)
            return 2

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t_start = time.perf_counter()
    busy = system_busy()
    info = machine_info()
    info["busy_before_run"] = busy
    counters0 = _cpu_counters()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    default_shape = QUICK_SHAPE if args.quick else FULL_SHAPE
    print("# cypool pooling benchmark\n")
    print(f"- Machine: {info['cpu']}, {info['logical_cpus']} logical CPUs "
          f"({info['usable_cpus']} usable), {info['platform']}")
    print(f"- Date: {date}")
    print(f"- Versions: Python {info['python']}, numpy {info['numpy']}, "
          f"torch {info['torch'] or 'not installed'}, cypool {info['cypool']}; "
          f"cypool.openmp_enabled() = {info['cypool_openmp']}")
    print(f"- OpenMP runtime(s) loaded: {', '.join(info['openmp_runtimes']) or 'none'}")
    if busy is not None:
        print(f"- Other load before the run: {100 * busy:.0f}% of all CPUs busy"
              + (" -- WARNING: the machine is not idle; multi-threaded timings will "
                 "be unreliable" if busy > 0.2 else ""))
    print(f"- Input: float32 NCHW {default_shape}; {args.repeat} timed runs after 2 "
          f"warm-ups, median; threads {','.join(map(str, args.threads))}"
          + (" (quick)" if args.quick else ""))

    log("measuring copy bandwidth ...")
    copy_bw = copy_bandwidth(args.threads, repeat=5)
    print("- Copy bandwidth (np.copyto of 1 GiB float32, read + write): "
          + ", ".join(f"{n} thread{'s' if n > 1 else ''}: {v['gbps']:.1f} GB/s"
                      for n, v in copy_bw.items()))
    print()
    sys.stdout.flush()

    results = []
    for case in cases:
        shape = (case.quick_shape or QUICK_SHAPE) if args.quick else (case.shape or FULL_SHAPE)
        log(f"{case.name} {shape}")
        results.append(run_case(case, shape, args.threads, 2, args.repeat,
                                with_reference=args.quick, log=log))
    during = other_load(counters0, _cpu_counters())
    info["busy_during_run"] = during
    print(table(results, copy_bw))
    print("\ntorch/cypool > 1 means cypool is faster. GB/s = (bytes of the input arrays "
          "read + output arrays written, indices included) / cypool median; "
          "% of copy compares it with the copy bandwidth at the same thread count.")
    if during is not None:
        print(f"\nOther load during the run: {100 * during:.0f}% of all CPUs busy"
              + (" -- WARNING: the machine was not idle; multi-threaded timings are "
                 "unreliable" if during > 0.1 else ""))
    bad = [r["case"] for r in results if r["torch_matches"] is False]
    if bad:
        print(f"\nWARNING: cypool and PyTorch outputs differ for: {', '.join(bad)}")
    elapsed = time.perf_counter() - t_start
    print(f"\nTotal runtime: {elapsed:.1f} s")

    if args.json:
        doc = {
            "machine": info,
            "date": date,
            "threads": args.threads,
            "repeat": args.repeat,
            "warmup": 2,
            "quick": args.quick,
            "copy_bandwidth": {str(n): v for n, v in copy_bw.items()},
            "cases": results,
            "total_runtime_s": elapsed,
        }
        for r in results:
            nbytes = r["bytes_read"] + r["bytes_written"]
            for row in r["results"]:
                cy = row["peers"]["cypool"]["median_s"]
                row["cypool_gbps"] = nbytes / cy / 1e9
                row["cypool_pct_of_copy"] = 100 * row["cypool_gbps"] / copy_bw[row["threads"]]["gbps"]
                if "torch" in row["peers"]:
                    row["torch_over_cypool"] = row["peers"]["torch"]["median_s"] / cy
        d = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(d, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"\nJSON written to {args.json}")
    if args.plot:
        plot(results, args.threads, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
