"""cypool.nn layers against the functions they wrap, and against torch.nn."""

import numpy as np
import pytest

import cypool
from cypool import nn

RNG = np.random.default_rng(20261128)


def _x(shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def _eq(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for u, v in zip(a, b):
            _eq(u, v)
    else:
        np.testing.assert_array_equal(a, b)


# (layer, input shape, forward function call, backward function call)
# The backward calls take (grad, x, y, idx) and use only the function API.
def _cases():
    c = []
    for nd in (1, 2, 3):
        sp = (6,) * nd
        shape = (2, 3) + sp
        mp = getattr(cypool, f"max_pool{nd}d")
        mpb = getattr(cypool, f"max_pool{nd}d_backward")
        c.append((f"MaxPool{nd}d", getattr(nn, f"MaxPool{nd}d")(3, 2, 1), shape,
                  lambda x, mp=mp: mp(x, 3, 2, 1, return_indices=True),
                  lambda g, x, y, i, mpb=mpb: mpb(g, i, x.shape, 3, 2, 1)))
        ap = getattr(cypool, f"avg_pool{nd}d")
        apb = getattr(cypool, f"avg_pool{nd}d_backward")
        c.append((f"AvgPool{nd}d",
                  getattr(nn, f"AvgPool{nd}d")(3, 2, 1, ceil_mode=True,
                                               count_include_pad=False),
                  shape, lambda x, ap=ap: (ap(x, 3, 2, 1, True, False), None),
                  lambda g, x, y, i, apb=apb: apb(g, x.shape, 3, 2, 1, True, False)))
        lp = getattr(cypool, f"lp_pool{nd}d")
        lpb = getattr(cypool, f"lp_pool{nd}d_backward")
        c.append((f"LPPool{nd}d", getattr(nn, f"LPPool{nd}d")(2, 2), shape,
                  lambda x, lp=lp: (lp(x, 2, 2), None),
                  lambda g, x, y, i, lpb=lpb: lpb(g, x, y, 2, 2)))
        am = getattr(cypool, f"adaptive_max_pool{nd}d")
        amb = getattr(cypool, f"adaptive_max_pool{nd}d_backward")
        c.append((f"AdaptiveMaxPool{nd}d", getattr(nn, f"AdaptiveMaxPool{nd}d")(4),
                  shape, lambda x, am=am: am(x, 4, return_indices=True),
                  lambda g, x, y, i, amb=amb: amb(g, i, x.shape)))
        aa = getattr(cypool, f"adaptive_avg_pool{nd}d")
        aab = getattr(cypool, f"adaptive_avg_pool{nd}d_backward")
        c.append((f"AdaptiveAvgPool{nd}d", getattr(nn, f"AdaptiveAvgPool{nd}d")(4),
                  shape, lambda x, aa=aa: (aa(x, 4), None),
                  lambda g, x, y, i, aab=aab: aab(g, x.shape)))
        sp_f = getattr(cypool, f"spatial_pyramid_pool{nd}d")
        sp_b = getattr(cypool, f"spatial_pyramid_pool{nd}d_backward")
        c.append((f"SpatialPyramidPool{nd}d",
                  getattr(nn, f"SpatialPyramidPool{nd}d")((1, 2, 3)), shape,
                  lambda x, f=sp_f: f(x, (1, 2, 3), "max", return_indices=True),
                  lambda g, x, y, i, b=sp_b: b(g, x.shape, (1, 2, 3), "max", indices=i)))
    c.append(("GlobalMaxPool", nn.GlobalMaxPool(), (2, 3, 5, 4),
              lambda x: cypool.global_max_pool(x, return_indices=True),
              lambda g, x, y, i: cypool.global_max_pool_backward(g, i, x.shape)))
    c.append(("GlobalAvgPool", nn.GlobalAvgPool(keepdims=True), (2, 3, 5, 4),
              lambda x: (cypool.global_avg_pool(x, keepdims=True), None),
              lambda g, x, y, i: cypool.global_avg_pool_backward(g, x.shape,
                                                                 keepdims=True)))
    for nd in (2, 3):
        f = getattr(cypool, f"fractional_max_pool{nd}d")
        b = getattr(cypool, f"fractional_max_pool{nd}d_backward")
        samples = RNG.random((2, 3, nd))
        c.append((f"FractionalMaxPool{nd}d",
                  getattr(nn, f"FractionalMaxPool{nd}d")(2, output_size=3,
                                                         _random_samples=samples),
                  (2, 3) + (7,) * nd,
                  lambda x, f=f, s=samples: f(x, 2, 3, return_indices=True,
                                              random_samples=s),
                  lambda g, x, y, i, b=b: b(g, i, x.shape)))
    return c


CASES = _cases()


@pytest.mark.parametrize("name,layer,shape,fwd,bwd", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_functions(each_backend, name, layer, shape, fwd, bwd):
    x = _x(shape)
    layer.train()
    y = layer(x)
    y_f, idx = fwd(x)
    _eq(y, y_f)
    g = _x(np.shape(y))
    _eq(layer.backward(g), bwd(g, x, y_f, idx))
    # eval mode: the same forward, nothing kept, backward refused
    layer.eval()
    _eq(layer(x), y_f)
    with pytest.raises(RuntimeError, match="backward"):
        layer.backward(g)
    layer.train()


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="forward"):
        nn.MaxPool2d(2).backward(np.zeros((1, 1, 1, 1)))
    with pytest.raises(TypeError, match="mode"):
        nn.MaxPool2d(2).train("yes")


def test_return_indices_layers():
    x = _x((2, 3, 8, 8))
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    y_f, idx_f = cypool.max_pool2d(x, 2, return_indices=True)
    _eq((y, idx), (y_f, idx_f))
    pool = nn.AdaptiveMaxPool2d(3, return_indices=True).eval()
    _eq(pool(x), cypool.adaptive_max_pool2d(x, 3, return_indices=True))


def test_unpool_layer_roundtrip():
    x = _x((2, 3, 8, 8))
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)
    y, idx = pool(x)
    u = unpool(y, idx)
    _eq(u, cypool.max_unpool2d(y, idx, 2))
    g = _x(u.shape)
    _eq(unpool.backward(g), cypool.max_unpool2d_backward(g, idx))
    u2 = unpool(y, idx, output_size=(9, 9))
    assert u2.shape == (2, 3, 9, 9)


def test_channels_last_layers():
    x = _x((2, 7, 7, 3))
    nchw = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    for cl, plain in [(nn.MaxPool2d(3, 2, channels_last=True), nn.MaxPool2d(3, 2)),
                      (nn.AvgPool2d(2, channels_last=True), nn.AvgPool2d(2)),
                      (nn.AdaptiveAvgPool2d(3, channels_last=True), nn.AdaptiveAvgPool2d(3))]:
        y = cl(x)
        _eq(np.moveaxis(y, -1, 1), plain(nchw))
        g = _x(y.shape)
        _eq(np.moveaxis(cl.backward(g), -1, 1),
            plain.backward(np.ascontiguousarray(np.moveaxis(g, -1, 1))))


def test_fractional_layer_seeded():
    # 17 -> 8 with a 2-window: alpha = 15/7 is not an integer, so the windows
    # depend on the random samples (16 -> 8 would tile them deterministically)
    x = _x((2, 3, 17, 17))
    a = nn.FractionalMaxPool2d(2, output_ratio=(0.5, 0.5), seed=7)
    b = nn.FractionalMaxPool2d(2, output_ratio=(0.5, 0.5), seed=7)
    first = a(x)
    _eq(first, b(x))                  # same seed, same windows
    _eq(a(x), b(x))                   # and the same sequence afterwards
    draws = [nn.FractionalMaxPool2d(2, output_ratio=(0.5, 0.5), seed=s)(x)
             for s in range(6)]
    assert any(not np.array_equal(draws[0], d) for d in draws[1:])


TORCH_REPRS = [
    ("MaxPool1d", (2,), {}), ("MaxPool2d", (3, 2, 1), {}),
    ("MaxPool2d", ((2, 3),), {"return_indices": True}), ("MaxPool3d", (2,), {}),
    ("AvgPool1d", (2,), {}), ("AvgPool2d", (3, 2, 1, True, False), {}),
    ("AvgPool3d", (2,), {"divisor_override": 3}),
    ("LPPool1d", (2, 3, 2, True), {}), ("LPPool2d", (2, 3), {}), ("LPPool3d", (1.5, 2), {}),
    ("AdaptiveAvgPool2d", (7,), {}), ("AdaptiveAvgPool2d", ((None, 7),), {}),
    ("AdaptiveMaxPool2d", (3, True), {}), ("AdaptiveMaxPool1d", (3,), {}),
    ("AdaptiveAvgPool3d", ((2, 3, 4),), {}),
    ("MaxUnpool1d", (2,), {}), ("MaxUnpool2d", (2,), {}), ("MaxUnpool3d", (2, 1, 0), {}),
]


@pytest.mark.parametrize("cls,args,kwargs", TORCH_REPRS)
def test_repr_matches_torch(cls, args, kwargs):
    torch = pytest.importorskip("torch")
    assert repr(getattr(nn, cls)(*args, **kwargs)) == repr(
        getattr(torch.nn, cls)(*args, **kwargs))


def test_repr_shows_cypool_keywords():
    assert repr(nn.MaxPool2d(2, channels_last=True)) == (
        "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False, "
        "channels_last=True)")
    assert repr(nn.AvgPool2d(2, rounding="nearest")) == (
        "AvgPool2d(kernel_size=2, stride=2, padding=0, rounding='nearest')")
    assert repr(nn.FractionalMaxPool2d(3, output_ratio=0.5, seed=1)) == (
        "FractionalMaxPool2d(kernel_size=3, output_ratio=0.5, seed=1)")
    assert repr(nn.SpatialPyramidPool()) == "SpatialPyramidPool2d(levels=(1, 2, 4), mode='max')"
    assert repr(nn.GlobalAvgPool(keepdims=True)) == "GlobalAvgPool(keepdims=True)"


@pytest.mark.parametrize("cls,fn,args", [
    ("MaxPool2d", "max_pool2d", (3, 2, 1)),
    ("AvgPool2d", "avg_pool2d", (3, 2, 1)),
    ("LPPool2d", "lp_pool2d", (2, 2)),
    ("AdaptiveAvgPool2d", "adaptive_avg_pool2d", (3,)),
    ("AdaptiveMaxPool2d", "adaptive_max_pool2d", (3,)),
])
def test_layers_against_torch_modules(cls, fn, args):
    torch = pytest.importorskip("torch")
    x = _x((2, 3, 9, 9))
    ours = getattr(nn, cls)(*args)
    theirs = getattr(torch.nn, cls)(*args)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = theirs(xt)
    y = ours(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = _x(y.shape)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours.backward(g), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
