"""Shared test configuration: hypothesis profiles and backend fixtures."""

import os

import pytest
from hypothesis import HealthCheck, settings

import cypool

# "default": random, for development and CI; "repro": derandomised with no
# example database, for wheel tests and for reproducing a CI failure.
settings.register_profile(
    "default", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "repro", parent=settings.get_profile("default"), derandomize=True, database=None,
)
settings.register_profile(
    "thorough", parent=settings.get_profile("default"), max_examples=1500,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

HAS_COMPILED = "compiled" in cypool.available_backends()

requires_compiled = pytest.mark.skipif(
    not HAS_COMPILED, reason="the compiled extension is not available"
)


@pytest.fixture(params=cypool.available_backends())
def each_backend(request):
    """Run the test once under every backend that can load."""
    with cypool.backend(request.param):
        yield request.param


@pytest.fixture(params=[1, 2])
def threads(request):
    """Run the test with cypool's thread count set to 1, then 2."""
    old = cypool.get_num_threads()
    cypool.set_num_threads(request.param)
    yield request.param
    cypool.set_num_threads(old)


@pytest.fixture
def stream_everything():
    """The compiled backend, with every output large enough to be streamed
    (``_stream_min(0)``: the streaming paths run on small test arrays)."""
    from cypool._compiled import _kernels
    old = _kernels._stream_min(0)
    try:
        with cypool.backend("compiled"):
            yield
    finally:
        _kernels._stream_min(old)


def both_backends_equal(fn, x, *args, **kw):
    """``fn(x, ...)`` under the compiled backend equals the reference
    backend's result exactly."""
    import numpy as np
    with cypool.backend("reference"):
        want = fn(x, *args, **kw)
    with cypool.backend("compiled"):
        got = fn(x, *args, **kw)
    np.testing.assert_array_equal(got, want)


def same_bits_or_nan(got, want, msg=""):
    """``got`` equals ``want`` bit for bit (signed zeros included), except
    that any NaN matches any NaN (which NaN a sum of NaNs keeps is not
    specified); shapes and dtypes equal."""
    import numpy as np
    assert got.shape == want.shape and got.dtype == want.dtype
    u = {4: np.uint32, 8: np.uint64}[got.dtype.itemsize]
    g = np.ascontiguousarray(got)
    w = np.ascontiguousarray(want)
    same = (g.view(u) == w.view(u)) | (np.isnan(g) & np.isnan(w))
    assert same.all(), f"{msg}: {np.argwhere(~same)[:5]}"


def with_specials(rng, shape, dtype, every):
    """Standard normal data of ``dtype`` with about one element in
    ``every`` replaced by NaN, +-inf, -0 or +0."""
    import numpy as np
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    idx = rng.integers(0, flat.size, size=max(1, flat.size // every))
    flat[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype=dtype),
                           idx.size)
    return x


import contextlib


@contextlib.contextmanager
def small_planes(mode):
    """Planar max/average pooling's small-plane paths (tiling kernels and
    tap tables) and the separable 3x3/2 max kernel: "auto" (the built-in
    thresholds), "on" (every planar call the small-plane paths can take, 2-d
    tilings at 128-bit vectors, indices through the table; the separable
    kernel off, so that 3x3/2 windows take the table), "wide" (2-d 3x3
    tilings at the build's vector width, indices of 2-d tilings through the
    tiling argmax kernel where the build has it, the separable kernel at
    every row length) or "off" (the row kernels only); the AVX-512 kernels
    of short rows (pair_kernels.h) with "auto" only.  The compiled kernels'
    settings, restored afterwards."""
    from cypool._compiled import _kernels
    big = 1 << 40
    limits = {"auto": None, "on": (big, big, big, 1, big), "wide": (0, big, 0, 1, big),
              "off": (0, 0, 0, 0, 0)}[mode]
    sep = {"auto": None, "on": (0, 0), "wide": (1, 0), "off": (0, 0)}[mode]
    # the AVX-512 kernels of short rows (pair_kernels.h, tested on their own
    # in test_pair_kernels.py) stay on with "auto" only, so that the other
    # modes reach the paths they name
    pair = {"auto": None, "on": 0, "wide": 0, "off": 0}[mode]
    old = _kernels._small_rows()
    old_sep = _kernels._sep3()
    old_pair = _kernels._pair_rows()
    try:
        if limits is not None:
            _kernels._small_rows(*limits)
        if sep is not None:
            _kernels._sep3(*sep)
        if pair is not None:
            _kernels._pair_rows(pair)
        yield
    finally:
        _kernels._small_rows(*old)
        _kernels._sep3(*old_sep)
        _kernels._pair_rows(old_pair)
