"""How fast cypool pools the arrays users hand it, against the same data
C-contiguous: views (reversed axes, every other channel, crops), PyTorch
``channels_last`` memory seen as NCHW, and Fortran order.

    python benchmarks/bench_strides.py [--threads 1 2] [--repeat 11] [--smoke]

Prints a markdown table: median ms of each view and its speed relative to
a C-contiguous copy of the same data, timed in the same run (1.00: as
fast).  Float32
``(32, 64, 112, 112)`` by default; ``--smoke`` uses a tiny shape to check
that the script runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import cypool


def views(shape, rng):
    n, c, h, w = shape
    base = rng.random(shape, dtype=np.float32)
    wide = rng.random((n, 2 * c, h, w), dtype=np.float32)
    padded = rng.random((n, c, h + 8, w + 8), dtype=np.float32)
    return base, {
        "contiguous": base,
        "reversed W (x[..., ::-1])": base[..., ::-1],
        "reversed H (x[:, :, ::-1])": base[:, :, ::-1],
        "every other channel (x[:, ::2])": wide[:, ::2],
        "crop (x[:, :, 4:-4, 4:-4])": padded[:, :, 4:-4, 4:-4],
        "channels-last memory (torch channels_last)":
            np.moveaxis(np.ascontiguousarray(np.moveaxis(base, 1, -1)), -1, 1),
        "Fortran order": np.asfortranarray(base),
    }


OPS = {
    "max k2s2": lambda a: cypool.max_pool2d(a, 2),
    "max k3s2p1": lambda a: cypool.max_pool2d(a, 3, 2, 1),
    "avg k2s2": lambda a: cypool.avg_pool2d(a, 2),
}


def median_time(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--smoke", action="store_true", help="tiny shape, 1 repeat")
    args = ap.parse_args(argv)
    shape = (2, 4, 12, 12) if args.smoke else (32, 64, 112, 112)
    repeat = 1 if args.smoke else args.repeat
    _, cases = views(shape, np.random.default_rng(0))
    base = cases["contiguous"]
    print(f"cypool {cypool.__version__}, backend {cypool.get_backend()}, "
          f"float32 {shape}, median of {repeat}\n")
    print("| operation | input | threads | median ms | vs contiguous |")
    print("|---|---|---:|---:|---:|")
    for op, f in OPS.items():
        for th in args.threads:
            with cypool.num_threads(th):
                for name, v in cases.items():
                    same = np.ascontiguousarray(v)     # the same data, contiguous
                    assert np.array_equal(f(v), f(same))
                    ref = median_time(lambda: f(same), repeat)
                    t = ref if v is base else median_time(lambda: f(v), repeat)
                    print(f"| {op} | {name} | {th} | {t * 1e3:.1f} | {ref / t:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
