"""Channels-last average pooling over square 2x2 / 3x3 windows: the
interior positions of an output row (every tap in bounds, one divisor) go
through one loop (``_avg_cl_run``), the border positions one by one.

Compared with the reference backend bit for bit (NaN payloads aside), on
widths around every split between them, strides 1-3, padding, ceil mode,
``count_include_pad`` both ways, divisor overrides (a power of two, which
multiplies, and not), channel counts that take the loop and one that does
not, 1 and 2 threads, with both kinds of prefetch hints (``_big_input(0)``:
hint the next output row's input rows), and a 3-d ``(1, k, k)`` window."""

import itertools
import zlib

import numpy as np
import pytest

import cypool
from conftest import requires_compiled, same_bits_or_nan as _same, with_specials

pytestmark = requires_compiled

def _data(rng, shape, dtype):
    return with_specials(rng, shape, dtype, 50)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("big", [False, True], ids=["hints ahead", "next-row hints"])
def test_runs(dtype, k, big):
    from cypool._compiled import _kernels
    rng = np.random.default_rng(zlib.crc32(repr((k, big, str(dtype))).encode()))
    old = _kernels._big_input(0 if big else -1)
    try:
        for w in (2, 3, 4, 5, 6, 9, 10, 11, 24, 37):
            for s, p, ceil in itertools.product((1, 2, 3), range(k // 2 + 1), (False, True)):
                if w + 2 * p < k:
                    continue
                c = int(rng.choice([8, 16, 32, 48]))
                x = _data(rng, (2, 5, w, c), dtype)
                for cip, dov in [(True, None), (False, None), (True, 4), (False, 5)]:
                    args = ((k, k), (s, s), p, ceil, cip, dov)
                    with cypool.backend("reference"):
                        want = cypool.avg_pool2d(x, *args, channels_last=True)
                    for th in (1, 2):
                        with cypool.num_threads(th):
                            got = cypool.avg_pool2d(x, *args, channels_last=True)
                        _same(got, want, f"width {w} stride {s} padding {p} ceil {ceil} "
                                         f"C {c} count_include_pad {cip} override {dov}")
    finally:
        if big:
            _kernels._big_input(old)


def test_volume_window():
    rng = np.random.default_rng(3)
    x = _data(rng, (2, 3, 6, 13, 32), np.float32)
    for k, s, p in [((1, 3, 3), (2, 1, 1), (0, 1, 1)), ((1, 2, 2), 1, 0)]:
        with cypool.backend("reference"):
            want = cypool.avg_pool3d(x, k, s, p, channels_last=True)
        _same(cypool.avg_pool3d(x, k, s, p, channels_last=True), want, str(k))
