"""Every instruction-set variant of the compiled kernels against the
reference backend.

On x86-64 the kernels are built three times (baseline SSE2, AVX2, AVX-512)
and ``cypool._compiled`` runs the widest one the CPU supports; the rest of
the suite tests that one.  Here every variant this CPU can run is swapped in
turn and checked on random cases of every operator, so that a variant never
ships untested.
"""

import contextlib
import os
import platform

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from cases import FLOATS, cases, grad_like
from conftest import requires_compiled

pytestmark = requires_compiled

VARIANTS = ("baseline", "avx2", "avx512")


def _variant(name):
    from cypool import _compiled

    mod = _compiled.variant_usable(name)
    if mod is None:
        pytest.skip(f"kernel variant {name} is not built or this CPU cannot run it")
    return _compiled, mod


@contextlib.contextmanager
def _using(name):
    """Run the compiled backend on kernel variant ``name`` inside the block."""
    compiled, mod = _variant(name)
    saved = compiled._kernels
    compiled._kernels = mod
    try:
        yield
    finally:
        compiled._kernels = saved


def _pair(fn, *args, **kwargs):
    with cypool.backend("reference"):
        ref = fn(*args, **kwargs)
    with cypool.backend("compiled"):
        got = fn(*args, **kwargs)
    return ref, got


def _bits(a):
    return a.view(np.uint32 if a.itemsize == 4 else np.uint64) if a.dtype.kind == "f" else a


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_matches_reference(name):
    _variant(name)  # skip early when unusable

    @settings(max_examples=60)
    @given(cases())
    def check(case):
        with _using(name):
            _check_case(case)

    check()


def _check_case(case):
    f = getattr(cypool, f"max_pool{case.nd}d")
    (r, ri), (g, gi) = _pair(f, case.x, *case.max_args(), return_indices=True)
    np.testing.assert_array_equal(_bits(r), _bits(g))
    np.testing.assert_array_equal(ri, gi)
    r, g = _pair(f, case.x, *case.max_args())
    np.testing.assert_array_equal(_bits(r), _bits(g))
    if case.x.dtype.kind == "f":
        b = getattr(cypool, f"max_pool{case.nd}d_backward")
        grad = grad_like(np.random.default_rng(0), ri.shape, case.x.dtype)
        r, g = _pair(b, grad, ri, case.x.shape, *case.max_args())
        np.testing.assert_array_equal(_bits(r), _bits(g))
        if all(d == 1 for d in case.dilation):
            a = getattr(cypool, f"avg_pool{case.nd}d")
            r, g = _pair(a, case.x, *case.avg_args())
            np.testing.assert_allclose(g, r, rtol=2e-6 if case.x.dtype == np.float32 else 1e-13)
            ab = getattr(cypool, f"avg_pool{case.nd}d_backward")
            r, g = _pair(ab, grad, case.x.shape, *case.avg_args())
            np.testing.assert_allclose(g, r, rtol=2e-6 if case.x.dtype == np.float32 else 1e-13,
                                       atol=1e-6)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_variant_large_rows(name, dtype):
    """Rows long enough for every vector width and its remainder loop."""
    with _using(name):
        _large_rows(dtype)


def _large_rows(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 203)).astype(dtype)
    x[0, 1, 4, 77] = np.nan
    for args in [(2,), (3, 2, 1), (3, 1, 1), (2, 1)]:
        r, g = _pair(cypool.max_pool2d, x, *args)
        np.testing.assert_array_equal(_bits(r), _bits(g))
        r, g = _pair(cypool.avg_pool2d, x, *args)
        np.testing.assert_allclose(g, r, rtol=1e-5)


def test_widest_variant_is_used():
    """On an x86-64 CPU with AVX2 the build must contain (and import) the
    AVX2 or AVX-512 kernels: a silently missing variant fails here."""
    from cypool import _compiled

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("SIMD variants are built for x86-64 only")
    if os.environ.get("CYPOOL_SIMD", "auto").strip().lower() not in ("", "auto"):
        pytest.skip("CYPOOL_SIMD forces a variant")
    feats = _compiled._cpu_features()
    best = next((v for v, need in _compiled.SIMD_VARIANTS.items()
                 if all(feats.get(f) for f in need)), "baseline")
    assert _compiled.variant_usable(best) is not None, f"variant {best} was not built"
    assert _compiled.simd == best


# The operator families built in the same variants as ``_pool`` (setup.py's
# KERNEL_MODULES): ``cypool._compiled.family`` loads the variant ``_pool``
# runs, so each is swapped in here in turn as well.
FAMILY_VARIANTS = ("_lp", "_fractional")


@contextlib.contextmanager
def _using_family(base, name):
    import importlib

    from cypool import _compiled

    _variant(name)
    mod_name = f"cypool._ext.{base}" + ("" if name == "baseline" else f"_{name}")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError:
        pytest.fail(f"{mod_name} is not built, though _pool's {name} variant is")
    saved = _compiled.family(base)
    _compiled._family_cache[base] = mod
    try:
        yield
    finally:
        _compiled._family_cache[base] = saved


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_family_variants_match_reference(name, dtype):
    """Lp pooling (forward and backward) and fractional max pooling (values,
    indices, backward) on rows long enough for every vector width and its
    remainder, in each variant, against the reference."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 11, 203)).astype(dtype)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    with _using_family("_lp", name):
        for p, k, s, ceil in [(2, 2, 2, False), (2, 3, 2, True), (1, 2, 1, False),
                              (3, (2, 4), (2, 3), True)]:
            r, g = _pair(cypool.lp_pool2d, x, p, k, s, ceil_mode=ceil)
            np.testing.assert_allclose(g, r, rtol=rtol, atol=1e-6)
            if p == 2 and k == 2:
                np.testing.assert_array_equal(_bits(g), _bits(r))
            go = grad_like(rng, r.shape, dtype)
            r, g = _pair(cypool.lp_pool2d_backward, go, x, r, p, k, s, ceil_mode=ceil)
            np.testing.assert_allclose(g, r, rtol=rtol * 10, atol=1e-6)
    xf = x.copy()
    xf[1, 2, 5, 100] = np.nan
    u = rng.random((2, 3, 2)).astype(dtype)
    with _using_family("_fractional", name):
        for k, ratio in [(2, 0.5), (3, 0.6), ((2, 3), (0.7, 0.5))]:
            (r, ri), (g, gi) = _pair(cypool.fractional_max_pool2d, xf, k, output_ratio=ratio,
                                     return_indices=True, random_samples=u)
            np.testing.assert_array_equal(_bits(g), _bits(r))
            np.testing.assert_array_equal(gi, ri)
            go = grad_like(rng, r.shape, dtype)
            r, g = _pair(cypool.fractional_max_pool2d_backward, go, ri, xf.shape)
            np.testing.assert_array_equal(_bits(g), _bits(r))
