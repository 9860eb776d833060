"""``python -m cypool``: report the installation and self-check it.

Prints the version, the backend in use, whether the compiled kernels were
built with OpenMP and the thread count, then runs every operator on random
inputs under both backends and compares them (bit for bit for max pooling,
within float rounding for averages).  Exits with status 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import cypool

from ._backend import _import_error


def _cases(rng):
    """(name, function, args, kwargs) for a spread of shapes and options."""
    x1 = rng.standard_normal((3, 4, 97)).astype(np.float32)
    x2 = rng.standard_normal((2, 5, 33, 41)).astype(np.float32)
    x2[0, 0, 3, 4] = np.nan
    x3 = rng.standard_normal((2, 3, 9, 10, 11))
    xi = rng.integers(-100, 100, (2, 3, 40, 37), dtype=np.int16)
    xu = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8).transpose(2, 0, 1)
    yield "max_pool1d k3 s2 p1 d2", cypool.max_pool1d, (x1, 3, 2, 1, 2), {"return_indices": True}
    yield "max_pool2d k3 s2 p1 ceil", cypool.max_pool2d, (x2, 3, 2, 1), {"ceil_mode": True, "return_indices": True}
    yield "max_pool2d k2 (strided view)", cypool.max_pool2d, (x2[:, :, ::2, ::-1], 2), {}
    yield "max_pool2d int16 k(2,3)", cypool.max_pool2d, (xi, (2, 3)), {"return_indices": True}
    yield "max_pool2d uint8 k2", cypool.max_pool2d, (xu, 2), {}
    yield "max_pool3d k2 s(1,2,2)", cypool.max_pool3d, (x3, 2, (1, 2, 2)), {"return_indices": True}
    yield "avg_pool1d k4 s3 p2 ceil", cypool.avg_pool1d, (x1, 4, 3, 2), {"ceil_mode": True}
    yield "avg_pool2d k3 s2 p1", cypool.avg_pool2d, (x2, 3, 2, 1), {"count_include_pad": False}
    yield "avg_pool2d same", cypool.avg_pool2d, (x2, 4, 3, "same"), {"count_include_pad": False}
    yield "avg_pool3d k3 s2 p1 ceil", cypool.avg_pool3d, (x3, 3, 2, 1), {"ceil_mode": True}
    yield "avg_pool2d uint8 k2 nearest", cypool.avg_pool2d, (xu, 2), {"rounding": "nearest"}
    xcl = np.ascontiguousarray(np.moveaxis(x2, 1, -1))
    yield "max_pool2d channels-last k3 s2 p1", cypool.max_pool2d, (xcl, 3, 2, 1), {
        "channels_last": True, "return_indices": True}
    yield "avg_pool2d channels-last k2", cypool.avg_pool2d, (xcl, 2), {"channels_last": True}
    g2 = rng.standard_normal((2, 5, 17, 21)).astype(np.float32)
    _, idx = cypool.max_pool2d(x2, 3, 2, 1, ceil_mode=True, return_indices=True)
    yield "max_pool2d_backward", cypool.max_pool2d_backward, (g2, idx, x2.shape, 3, 2, 1), {"ceil_mode": True}
    g3 = rng.standard_normal(cypool.avg_pool3d(x3, 3, 2, 1, ceil_mode=True).shape)
    yield "avg_pool3d_backward", cypool.avg_pool3d_backward, (g3, x3.shape, 3, 2, 1), {"ceil_mode": True}


def _same(a, b, exact):
    if isinstance(a, tuple):
        return all(_same(u, v, exact) for u, v in zip(a, b))
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if exact or a.dtype.kind != "f":
        return np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    return np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)


def self_check(seed=0, verbose=True):
    """Compare the compiled backend with the reference; True when all agree."""
    if "compiled" not in cypool.available_backends():
        print("self-check: skipped (the compiled backend is not available)")
        return True
    ok = True
    rng = np.random.default_rng(seed)
    for name, fn, args, kwargs in _cases(rng):
        with cypool.backend("reference"):
            ref = fn(*args, **kwargs)
        with cypool.backend("compiled"):
            got = fn(*args, **kwargs)
        good = _same(ref, got, exact=name.startswith("max"))
        ok &= good
        if verbose or not good:
            print(f"  {'ok      ' if good else 'MISMATCH'} {name}")
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cypool", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only mismatches")
    args = parser.parse_args(argv)

    print(f"cypool {cypool.__version__} (numpy {np.__version__}, Python {sys.version.split()[0]})")
    print(f"backend in use:      {cypool.get_backend()}")
    print(f"backends available:  {', '.join(cypool.available_backends())}")
    if _import_error is not None:
        print(f"compiled extension:  not loaded ({_import_error})")
    print(f"OpenMP compiled in:  {'yes' if cypool.openmp_enabled() else 'no'}")
    if _import_error is None:
        from . import _compiled
        print(f"kernel variant:      {_compiled.simd} (CYPOOL_SIMD=auto picks the "
              "widest the CPU runs)")
    print(f"threads:             {cypool.get_num_threads()}")
    t0 = time.perf_counter()
    print("self-check, compiled against reference:")
    ok = self_check(args.seed, verbose=not args.quiet)
    print(f"self-check {'passed' if ok else 'FAILED'} in {time.perf_counter() - t0:.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
