"""Blocks of output rows in the compiled planar 2x2 / 3x3 average pooling
(``_avg_sq_block``): the output rows whose window rows all lie in the input
run in one call, interior columns averaged in vector passes cut in two
(``_head_len``) and divided in the same pass (a power of two's exact
reciprocal multiplies), border columns window by window.

Compared with the reference backend bit for bit (both sum each window in
scan order from 0), on long rows (every remainder of the vector width),
tall planes, W strides 1 and 2, H strides 1 to 3, padding, ceil mode and
``count_include_pad`` (the rows left out of the block, and border columns
with smaller divisors), divisor overrides (powers of two, others, negative),
data with signed zeros, infinities and NaN, chunked rows, and 1 and 2
threads."""

import numpy as np
import pytest

import cypool
from conftest import requires_compiled

pytestmark = requires_compiled

UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _check(x, *args, **kw):
    with cypool.backend("reference"):
        want = cypool.avg_pool2d(x, *args, **kw)
    got = cypool.avg_pool2d(x, *args, **kw)
    assert got.shape == want.shape
    same = (got.view(UINT[got.dtype]) == want.view(UINT[want.dtype])) | (
        np.isnan(got) & np.isnan(want))
    assert same.all(), f"{x.shape} {args} {kw}: {np.argwhere(~same)[:5]}"


def _planes(rng, shape, dtype, special=False):
    x = rng.standard_normal(shape).astype(dtype)
    if special:
        flat = x.reshape(-1)
        idx = rng.integers(0, flat.size, size=max(1, flat.size // 200))
        flat[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], dtype=dtype),
                               idx.size)
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k,sw", [(2, 2), (2, 1), (3, 2), (3, 1)])
@pytest.mark.parametrize("sh", [1, 2, 3])
def test_blocks_bitwise(threads, dtype, k, sw, sh):
    rng = np.random.default_rng([k, sw, sh, np.dtype(dtype).itemsize])
    for h, w in [(9, 35), (13, 66), (30, 99), (5, 300)]:
        x = _planes(rng, (2, 2, h, w), dtype, special=(h == 13))
        for p in range(k // 2 + 1):
            for ceil in (False, True):
                for cip in (True, False):
                    _check(x, k, (sh, sw), p, ceil_mode=ceil, count_include_pad=cip)
        _check(x, k, (sh, sw), k // 2, divisor_override=8)
        _check(x, k, (sh, sw), 0, divisor_override=7)
        _check(x, k, (sh, sw), k // 2, divisor_override=-3)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_chunked_rows(threads, k, s, p):
    """Over 2048 outputs per row: work items take chunks of a row, so a
    block's border columns belong to its first or last chunk only."""
    rng = np.random.default_rng(k * 10 + s)
    x = _planes(rng, (1, 2, 6, s * 2048 + 41), np.float32)
    _check(x, k, s, p)
    _check(x, k, s, p, count_include_pad=False, ceil_mode=True)
