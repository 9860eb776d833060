"""Spatial pyramid pooling (He et al., 2014; SEMANTICS.md section 7): the
concatenation, level by level, of flattened adaptive pools; fixed length for
any input size; the same vector for channels-last input; backward."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cypool
from cases import FLOATS, INTS, random_values

BACKENDS = cypool.available_backends()


def spp_by_hand(x, nd, levels, mode):
    """The definition: per level, adaptive pooling flattened in C order."""
    f = getattr(cypool, f"adaptive_{mode}_pool{nd}d")
    parts = [f(x, lv).reshape(x.shape[0], -1) for lv in levels]
    return np.concatenate(parts, axis=1)


@pytest.mark.parametrize("name", BACKENDS)
def test_shape_and_definition(name):
    rng = np.random.default_rng(0)
    with cypool.backend(name):
        for shape in [(2, 3, 11, 13), (1, 4, 3, 2), (3, 2, 40, 7)]:
            x = rng.standard_normal(shape).astype(np.float32)
            for mode in ("max", "avg"):
                v = cypool.spatial_pyramid_pool(x, (1, 2, 4), mode)
                assert v.shape == (shape[0], shape[1] * 21) and v.dtype == x.dtype
                np.testing.assert_array_equal(v, spp_by_hand(x, 2, (1, 2, 4), mode))
        # the first level of max mode is the global max, channel by channel
        x = rng.standard_normal((2, 3, 9, 9))
        v = cypool.spatial_pyramid_pool2d(x, levels=(1, 3))
        np.testing.assert_array_equal(v[:, :3], x.max(axis=(2, 3)))
        np.testing.assert_array_equal(v[:, 3:30].reshape(2, 3, 3, 3),
                                      x.reshape(2, 3, 3, 3, 3, 3).max(axis=(3, 5)))
        # SPP-net's window formula gives 5 bins for a=11, n=4; adaptive bins 4
        assert cypool.spatial_pyramid_pool1d(rng.standard_normal((1, 1, 11)), (4,)).shape \
            == (1, 4)
        assert cypool.spatial_pyramid_pool3d(rng.standard_normal((2, 2, 5, 6, 7)),
                                             (1, 2)).shape == (2, 2 * 9)
        assert cypool.spatial_pyramid_pool1d(rng.standard_normal((3, 10))).shape == (21,)


@settings(max_examples=60)
@given(st.integers(1, 3), st.sampled_from(FLOATS + INTS), st.sampled_from(["max", "avg"]),
       st.lists(st.integers(1, 5), min_size=1, max_size=3), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_layouts_and_backends_agree(nd, dtype, mode, levels, batched, seed):
    rng = np.random.default_rng(seed)
    size = tuple(rng.integers(1, {1: 25, 2: 9, 3: 6}[nd], nd))
    x = random_values(rng, (2, 3) + size, dtype)
    f = getattr(cypool, f"spatial_pyramid_pool{nd}d")
    xin = x if batched else x[0]
    c_axis = 1 if batched else 0
    results = []
    for name in BACKENDS:
        with cypool.backend(name):
            results.append(f(xin, levels, mode))
            results.append(f(np.moveaxis(xin, c_axis, -1), levels, mode, channels_last=True))
            if mode == "max":
                v, idx = f(xin, levels, mode, return_indices=True)
                results.append(v)
                assert len(idx) == len(levels)
        with cypool.backend("reference"):
            want = spp_by_hand(x, nd, levels, mode)
    want = want if batched else want[0]
    for r in results:
        assert r.dtype == x.dtype
        if x.dtype.kind == "f":
            np.testing.assert_allclose(r, want, rtol=1e-5, atol=1e-6, equal_nan=True)
        else:
            np.testing.assert_array_equal(r, want)


@settings(max_examples=40)
@given(st.integers(1, 3), st.sampled_from(["max", "avg"]),
       st.lists(st.integers(1, 4), min_size=1, max_size=3), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_backward_against_torch(nd, mode, levels, channels_last, seed):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    size = tuple(rng.integers(1, {1: 20, 2: 8, 3: 5}[nd], nd))
    x = rng.standard_normal((2, 3) + size)
    t = torch.from_numpy(x).requires_grad_()
    pool = getattr(F, f"adaptive_{mode}_pool{nd}d")
    vt = torch.cat([pool(t, lv).reshape(2, -1) for lv in levels], dim=1)
    g = rng.standard_normal(vt.shape)
    (gt,) = torch.autograd.grad(vt, t, torch.from_numpy(g))
    xu = np.moveaxis(x, 1, -1) if channels_last else x
    f = getattr(cypool, f"spatial_pyramid_pool{nd}d")
    fb = getattr(cypool, f"spatial_pyramid_pool{nd}d_backward")
    for name in BACKENDS:
        with cypool.backend(name):
            if mode == "max":
                v, idx = f(xu, levels, mode, return_indices=True, channels_last=channels_last)
                for lv, i in zip(levels, idx):
                    want = ((2,) + (lv,) * nd + (3,)) if channels_last else (2, 3) + (lv,) * nd
                    assert i.shape == want and i.dtype == np.int64
            else:
                v, idx = f(xu, levels, mode, channels_last=channels_last), None
            np.testing.assert_allclose(v, vt.detach().numpy(), rtol=1e-12, atol=1e-12)
            gi = fb(g, xu.shape, levels, mode, indices=idx, channels_last=channels_last)
        gi = np.moveaxis(gi, -1, 1) if channels_last else gi
        np.testing.assert_allclose(gi, gt.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BACKENDS)
def test_finite_difference_avg(name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 6))
    levels = (1, 2, 4)
    with cypool.backend(name):
        v = cypool.spatial_pyramid_pool(x, levels, "avg")
        g = rng.standard_normal(v.shape)
        an = cypool.spatial_pyramid_pool_backward(g, x.shape, levels, "avg")
        eps = 1e-6
        num = np.empty_like(x)
        for p in np.ndindex(*x.shape):
            xp = x.copy()
            xp[p] += eps
            xm = x.copy()
            xm[p] -= eps
            num[p] = np.sum(g * (cypool.spatial_pyramid_pool(xp, levels, "avg")
                                 - cypool.spatial_pyramid_pool(xm, levels, "avg"))) / (2 * eps)
    np.testing.assert_allclose(an, num, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_out_and_unbatched_backward(name):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 7, 5))
    with cypool.backend(name):
        v, idx = cypool.spatial_pyramid_pool(x, (1, 2), return_indices=True)
        assert v.shape == (15,) and idx[1].shape == (3, 2, 2)
        o = np.empty(x.shape)
        assert cypool.spatial_pyramid_pool_backward(np.ones(15), x.shape, (1, 2),
                                                    indices=idx, out=o) is o
        assert o.sum() == 15


@pytest.mark.parametrize("name", BACKENDS)
def test_errors(name):
    x = np.zeros((2, 3, 4, 4), np.float32)
    f = cypool.spatial_pyramid_pool2d
    with cypool.backend(name):
        for bad in [(), (0,), (1, -2)]:
            with pytest.raises(ValueError, match="levels"):
                f(x, bad)
        for bad in [(1.5,), "12", 3, (True,)]:
            with pytest.raises(TypeError, match="levels"):
                f(x, bad)
        with pytest.raises(ValueError, match="mode"):
            f(x, mode="sum")
        with pytest.raises(TypeError, match="mode"):
            f(x, mode=None)
        with pytest.raises(ValueError, match="return_indices"):
            f(x, mode="avg", return_indices=True)
        with pytest.raises(ValueError, match="input"):
            f(x[0, 0])
        with pytest.raises(TypeError, match="dtype"):
            f(x.astype(np.float16))
        v, idx = f(x, return_indices=True)
        fb = cypool.spatial_pyramid_pool2d_backward
        with pytest.raises(ValueError, match="indices"):
            fb(v, x.shape)
        with pytest.raises(ValueError, match="indices"):
            fb(v, x.shape, indices=idx[:2])
        with pytest.raises(ValueError, match="indices"):
            fb(v, x.shape, indices=(idx[0], idx[2], idx[1]))
        with pytest.raises(ValueError, match="grad_output"):
            fb(v[:, :-1], x.shape, indices=idx)
        with pytest.raises(ValueError, match="grad_output"):
            fb(v, (2, 4, 4, 4), indices=idx)
        bad = list(idx)
        bad[2] = bad[2] + 100
        with pytest.raises(ValueError, match="indices"):
            fb(v, x.shape, indices=tuple(bad))
