"""Arrays of more than 2**31 elements: 64-bit index arithmetic end to end.

A single uint8 plane of 46342 x 46342 (just over 2**31 elements, 2.1 GB):
flat in-plane indices past 2**31 must come out right.  Marked ``large`` (about
8 GB of memory with the int64 indices); deselect with ``-m "not large"`` on
small machines.  ``.ci/run`` runs it.  (A backward over such a plane needs a
float gradient of 8.6 GB more, so it is not run here.)
"""

import numpy as np
import pytest

import cypool

pytestmark = pytest.mark.large

SIDE = 46342  # SIDE**2 = 2_147_580_964 > 2**31


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(2024)
    x = np.frombuffer(rng.bytes(SIDE * SIDE), dtype=np.uint8).reshape(1, 1, SIDE, SIDE)
    assert x.size > 2**31
    return x


def _tail_argmax(x, rows):
    """Flat indices of the 2x2 maxima of the last ``rows`` output rows,
    by reshaping (first maximum in row-major window order, as PyTorch)."""
    h0 = SIDE - 2 * rows
    blk = x[0, 0, h0:].reshape(rows, 2, SIDE // 2, 2).transpose(0, 2, 1, 3).reshape(
        rows, SIDE // 2, 4)
    k = blk.argmax(axis=-1)
    oh = np.arange(rows)[:, None]
    ow = np.arange(SIDE // 2)[None, :]
    return (h0 + 2 * oh + k // 2) * SIDE + 2 * ow + k % 2


@pytest.mark.skipif("compiled" not in cypool.available_backends(),
                    reason="the compiled extension is not available")
def test_compiled_max_pool_over_2_31_elements(big):
    with cypool.backend("compiled"):
        y, idx = cypool.max_pool2d(big, 2, return_indices=True)
    want = big[0, 0].reshape(SIDE // 2, 2, SIDE // 2, 2).max(axis=(1, 3))
    np.testing.assert_array_equal(y[0, 0], want)
    assert idx.max() > 2**31
    np.testing.assert_array_equal(idx[0, 0, -8:], _tail_argmax(big, 8))


def test_reference_max_pool_over_2_31_elements(big):
    with cypool.backend("reference"):
        y = cypool.max_pool2d(big[:, :, :, :], 2)
    want = big[0, 0].reshape(SIDE // 2, 2, SIDE // 2, 2).max(axis=(1, 3))
    np.testing.assert_array_equal(y[0, 0], want)
