"""Layer objects for NumPy networks: every cypool operator as a layer.

Each layer holds its operator's arguments, computes the forward pass with
``forward(x)`` (or by calling it) and the input gradient with
``backward(grad_output)``.  In training mode (the default) ``forward`` keeps
exactly what ``backward`` needs -- the input's shape, and the indices of
max-style operators (computed even when the layer does not return them), or
the input and output of Lp pooling -- and nothing more.  ``eval()`` switches
that off, so that inference runs the fast forward without indices;
``train()`` switches it back on.

>>> import numpy as np
>>> from cypool.nn import MaxPool2d
>>> pool = MaxPool2d(kernel_size=3, stride=2, padding=1)
>>> pool
MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False)
>>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
>>> y = pool(x)
>>> dx = pool.backward(np.ones_like(y))
>>> dx.shape
(2, 3, 8, 8)

``repr`` is PyTorch's (``torch.nn``) for PyTorch's own arguments; the
keywords PyTorch lacks (``channels_last``, ``rounding``, ``seed``, ...) are
appended when they differ from their defaults.
"""

from __future__ import annotations

import numpy as np

from . import _adaptive, _fractional, _lp, _pooling, _unpool

__all__ = [
    "Module",
    "MaxPool1d", "MaxPool2d", "MaxPool3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "LPPool1d", "LPPool2d", "LPPool3d",
    "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
    "GlobalMaxPool", "GlobalAvgPool",
    "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d",
    "SpatialPyramidPool", "SpatialPyramidPool1d", "SpatialPyramidPool2d",
    "SpatialPyramidPool3d",
    "FractionalMaxPool2d", "FractionalMaxPool3d",
]


def _fn(module, name):
    return getattr(module, name)


def _tuple_repr(value, nd):
    """PyTorch's ``_single``/``_pair``/``_triple`` rendering of an argument."""
    if isinstance(value, (tuple, list)):
        return repr(tuple(value))
    return repr((value,) * nd)


class Module:
    """Base class: ``__call__`` runs :meth:`forward`; ``train()``/``eval()``
    switch saving what :meth:`backward` needs on and off."""

    #: PyTorch's repr shows these arguments (in this order), always.
    _shown: tuple[str, ...] = ()
    #: cypool's own keywords and their defaults, shown only when set otherwise.
    _hidden: dict = {}

    def __init__(self):
        self.training = True
        self._saved = None

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def train(self, mode: bool = True):
        """Training mode (the default): ``forward`` keeps what ``backward`` needs."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"train: mode must be a bool, not {type(mode).__name__}")
        self.training = bool(mode)
        if not self.training:
            self._saved = None
        return self

    def eval(self):
        """Inference mode: ``forward`` keeps nothing; ``backward`` is unavailable."""
        return self.train(False)

    def forward(self, x):  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def backward(self, grad_output):  # pragma: no cover - every layer overrides it
        raise NotImplementedError

    def _need_saved(self):
        if self._saved is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward needs a forward call in training "
                "mode first (call train() and forward(x))"
            )
        return self._saved

    def _arg_repr(self, name):
        return repr(getattr(self, name))

    def extra_repr(self) -> str:
        parts = [f"{n}={self._arg_repr(n)}" for n in self._shown]
        for n, default in self._hidden.items():
            v = getattr(self, n)
            if v is not default and v != default:
                parts.append(f"{n}={v!r}")
        return ", ".join(parts)

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


# ------------------------------------------------------------------ max pool

class _MaxPoolNd(Module):
    nd = 0
    _shown = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
    _hidden = {"channels_last": False}

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices=False, ceil_mode=False, *, channels_last=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode
        self.channels_last = channels_last

    def _args(self):
        return (self.kernel_size, self.stride, self.padding, self.dilation,
                self.ceil_mode)

    def forward(self, x):
        fwd = _fn(_pooling, f"max_pool{self.nd}d")
        want = self.return_indices or self.training
        res = fwd(x, *self._args(), return_indices=want,
                  channels_last=self.channels_last)
        if not want:
            self._saved = None
            return res
        y, idx = res
        self._saved = (idx, np.shape(x)) if self.training else None
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output):
        idx, shape = self._need_saved()
        bwd = _fn(_pooling, f"max_pool{self.nd}d_backward")
        return bwd(grad_output, idx, shape, *self._args(),
                   channels_last=self.channels_last)


class MaxPool1d(_MaxPoolNd):
    """Layer form of :func:`cypool.max_pool1d` (``torch.nn.MaxPool1d``)."""
    nd = 1


class MaxPool2d(_MaxPoolNd):
    """Layer form of :func:`cypool.max_pool2d` (``torch.nn.MaxPool2d``)."""
    nd = 2


class MaxPool3d(_MaxPoolNd):
    """Layer form of :func:`cypool.max_pool3d` (``torch.nn.MaxPool3d``)."""
    nd = 3


# ------------------------------------------------------------------ avg pool

class _AvgPoolNd(Module):
    nd = 0
    _shown = ("kernel_size", "stride", "padding")
    _hidden = {"channels_last": False, "rounding": "truncate"}

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, *,
                 channels_last=False, rounding="truncate"):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override
        self.channels_last = channels_last
        self.rounding = rounding

    def _args(self):
        return (self.kernel_size, self.stride, self.padding, self.ceil_mode,
                self.count_include_pad, self.divisor_override)

    def forward(self, x):
        y = _fn(_pooling, f"avg_pool{self.nd}d")(
            x, *self._args(), channels_last=self.channels_last,
            rounding=self.rounding)
        self._saved = (np.shape(x), y.dtype) if self.training else None
        return y

    def backward(self, grad_output):
        shape, _ = self._need_saved()
        return _fn(_pooling, f"avg_pool{self.nd}d_backward")(
            grad_output, shape, *self._args(), channels_last=self.channels_last)


class AvgPool1d(_AvgPoolNd):
    """Layer form of :func:`cypool.avg_pool1d` (``torch.nn.AvgPool1d``)."""
    nd = 1

    def _arg_repr(self, name):
        # torch.nn.AvgPool1d stores its arguments as 1-tuples
        return _tuple_repr(getattr(self, name), 1)


class AvgPool2d(_AvgPoolNd):
    """Layer form of :func:`cypool.avg_pool2d` (``torch.nn.AvgPool2d``)."""
    nd = 2


class AvgPool3d(_AvgPoolNd):
    """Layer form of :func:`cypool.avg_pool3d` (``torch.nn.AvgPool3d``)."""
    nd = 3


# ------------------------------------------------------------------ Lp pool

class _LPPoolNd(Module):
    nd = 0
    _shown = ("norm_type", "kernel_size", "stride", "ceil_mode")
    _hidden = {"channels_last": False}

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                 channels_last=False):
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode
        self.channels_last = channels_last

    def _args(self):
        return (self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def forward(self, x):
        y = _fn(_lp, f"lp_pool{self.nd}d")(x, *self._args(),
                                            channels_last=self.channels_last)
        self._saved = (x, y) if self.training else None
        return y

    def backward(self, grad_output):
        x, y = self._need_saved()
        return _fn(_lp, f"lp_pool{self.nd}d_backward")(
            grad_output, x, y, *self._args(), channels_last=self.channels_last)


class LPPool1d(_LPPoolNd):
    """Layer form of :func:`cypool.lp_pool1d` (``torch.nn.LPPool1d``)."""
    nd = 1


class LPPool2d(_LPPoolNd):
    """Layer form of :func:`cypool.lp_pool2d` (``torch.nn.LPPool2d``)."""
    nd = 2


class LPPool3d(_LPPoolNd):
    """Layer form of :func:`cypool.lp_pool3d` (``torch.nn.LPPool3d``)."""
    nd = 3


# ------------------------------------------------------------- adaptive pool

class _AdaptiveMaxPoolNd(Module):
    nd = 0
    _shown = ("output_size",)
    _hidden = {"channels_last": False}

    def __init__(self, output_size, return_indices=False, *, channels_last=False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices
        self.channels_last = channels_last

    def forward(self, x):
        fwd = _fn(_adaptive, f"adaptive_max_pool{self.nd}d")
        want = self.return_indices or self.training
        res = fwd(x, self.output_size, return_indices=want,
                  channels_last=self.channels_last)
        if not want:
            self._saved = None
            return res
        y, idx = res
        self._saved = (idx, np.shape(x)) if self.training else None
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output):
        idx, shape = self._need_saved()
        return _fn(_adaptive, f"adaptive_max_pool{self.nd}d_backward")(
            grad_output, idx, shape, channels_last=self.channels_last)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Layer form of :func:`cypool.adaptive_max_pool1d`."""
    nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Layer form of :func:`cypool.adaptive_max_pool2d`."""
    nd = 2


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Layer form of :func:`cypool.adaptive_max_pool3d`."""
    nd = 3


class _AdaptiveAvgPoolNd(Module):
    nd = 0
    _shown = ("output_size",)
    _hidden = {"channels_last": False, "rounding": "truncate"}

    def __init__(self, output_size, *, channels_last=False, rounding="truncate"):
        super().__init__()
        self.output_size = output_size
        self.channels_last = channels_last
        self.rounding = rounding

    def forward(self, x):
        y = _fn(_adaptive, f"adaptive_avg_pool{self.nd}d")(
            x, self.output_size, rounding=self.rounding,
            channels_last=self.channels_last)
        self._saved = np.shape(x) if self.training else None
        return y

    def backward(self, grad_output):
        shape = self._need_saved()
        return _fn(_adaptive, f"adaptive_avg_pool{self.nd}d_backward")(
            grad_output, shape, channels_last=self.channels_last)


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Layer form of :func:`cypool.adaptive_avg_pool1d`."""
    nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Layer form of :func:`cypool.adaptive_avg_pool2d`."""
    nd = 2


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Layer form of :func:`cypool.adaptive_avg_pool3d`."""
    nd = 3


# --------------------------------------------------------------- global pool

class GlobalMaxPool(Module):
    """Layer form of :func:`cypool.global_max_pool`: one maximum per
    ``(n, c)`` plane of ``(N, C, *spatial)`` input (Keras'
    ``GlobalMaxPooling{1,2,3}D``)."""
    _hidden = {"keepdims": False, "return_indices": False, "channels_last": False}

    def __init__(self, keepdims=False, return_indices=False, *, channels_last=False):
        super().__init__()
        self.keepdims = keepdims
        self.return_indices = return_indices
        self.channels_last = channels_last

    def forward(self, x):
        want = self.return_indices or self.training
        res = _adaptive.global_max_pool(x, keepdims=self.keepdims,
                                        return_indices=want,
                                        channels_last=self.channels_last)
        if not want:
            self._saved = None
            return res
        y, idx = res
        self._saved = (idx, np.shape(x)) if self.training else None
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output):
        idx, shape = self._need_saved()
        return _adaptive.global_max_pool_backward(
            grad_output, idx, shape, keepdims=self.keepdims,
            channels_last=self.channels_last)


class GlobalAvgPool(Module):
    """Layer form of :func:`cypool.global_avg_pool`: one mean per ``(n, c)``
    plane (Keras' ``GlobalAveragePooling{1,2,3}D``)."""
    _hidden = {"keepdims": False, "channels_last": False, "rounding": "truncate"}

    def __init__(self, keepdims=False, *, channels_last=False, rounding="truncate"):
        super().__init__()
        self.keepdims = keepdims
        self.channels_last = channels_last
        self.rounding = rounding

    def forward(self, x):
        y = _adaptive.global_avg_pool(x, keepdims=self.keepdims,
                                      rounding=self.rounding,
                                      channels_last=self.channels_last)
        self._saved = np.shape(x) if self.training else None
        return y

    def backward(self, grad_output):
        shape = self._need_saved()
        return _adaptive.global_avg_pool_backward(
            grad_output, shape, keepdims=self.keepdims,
            channels_last=self.channels_last)


# ----------------------------------------------------------------- unpooling

class _MaxUnpoolNd(Module):
    nd = 0
    _shown = ("kernel_size", "stride", "padding")
    _hidden = {"channels_last": False}

    def __init__(self, kernel_size, stride=None, padding=0, *, channels_last=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.channels_last = channels_last

    def _arg_repr(self, name):
        # torch.nn.MaxUnpoolNd stores its arguments as nd-tuples
        return _tuple_repr(getattr(self, name), self.nd)

    def forward(self, x, indices, output_size=None):
        y = _fn(_unpool, f"max_unpool{self.nd}d")(
            x, indices, self.kernel_size, self.stride, self.padding, output_size,
            channels_last=self.channels_last)
        self._saved = indices if self.training else None
        return y

    def backward(self, grad_output):
        """The gradient with respect to the unpooled values (a gather)."""
        indices = self._need_saved()
        return _fn(_unpool, f"max_unpool{self.nd}d_backward")(
            grad_output, indices, channels_last=self.channels_last)


class MaxUnpool1d(_MaxUnpoolNd):
    """Layer form of :func:`cypool.max_unpool1d` (``torch.nn.MaxUnpool1d``)."""
    nd = 1


class MaxUnpool2d(_MaxUnpoolNd):
    """Layer form of :func:`cypool.max_unpool2d` (``torch.nn.MaxUnpool2d``)."""
    nd = 2


class MaxUnpool3d(_MaxUnpoolNd):
    """Layer form of :func:`cypool.max_unpool3d` (``torch.nn.MaxUnpool3d``)."""
    nd = 3


# ---------------------------------------------------- spatial pyramid pooling

class _SpatialPyramidPoolNd(Module):
    nd = 0
    _shown = ("levels", "mode")
    _hidden = {"return_indices": False, "channels_last": False}

    def __init__(self, levels=(1, 2, 4), mode="max", return_indices=False, *,
                 channels_last=False):
        super().__init__()
        self.levels = tuple(levels) if isinstance(levels, list) else levels
        self.mode = mode
        self.return_indices = return_indices
        self.channels_last = channels_last

    def forward(self, x):
        fwd = _fn(_adaptive, f"spatial_pyramid_pool{self.nd}d")
        want = self.return_indices or (self.training and self.mode == "max")
        res = fwd(x, self.levels, self.mode, return_indices=want,
                  channels_last=self.channels_last)
        y, idx = res if want else (res, None)
        self._saved = (idx, np.shape(x)) if self.training else None
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output):
        idx, shape = self._need_saved()
        return _fn(_adaptive, f"spatial_pyramid_pool{self.nd}d_backward")(
            grad_output, shape, self.levels, self.mode, indices=idx,
            channels_last=self.channels_last)


class SpatialPyramidPool1d(_SpatialPyramidPoolNd):
    """Layer form of :func:`cypool.spatial_pyramid_pool1d`."""
    nd = 1


class SpatialPyramidPool2d(_SpatialPyramidPoolNd):
    """Layer form of :func:`cypool.spatial_pyramid_pool2d` (He et al., 2014):
    a fixed-length ``(N, C * sum(l*l))`` vector for any input size."""
    nd = 2


class SpatialPyramidPool3d(_SpatialPyramidPoolNd):
    """Layer form of :func:`cypool.spatial_pyramid_pool3d`."""
    nd = 3


SpatialPyramidPool = SpatialPyramidPool2d


# ----------------------------------------------------- fractional max pooling

class _FractionalMaxPoolNd(Module):
    nd = 0
    _hidden = {"output_size": None, "output_ratio": None, "return_indices": False,
               "seed": None, "channels_last": False}
    _shown = ("kernel_size",)

    def __init__(self, kernel_size, output_size=None, output_ratio=None,
                 return_indices=False, _random_samples=None, *, seed=None,
                 channels_last=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.output_size = output_size
        self.output_ratio = output_ratio
        self.return_indices = return_indices
        self._random_samples = _random_samples
        self.seed = seed
        self.channels_last = channels_last
        # one generator per layer: successive forward calls draw fresh
        # windows, and the whole sequence is reproducible from ``seed``
        self._rng = np.random.default_rng(seed)

    def forward(self, x):
        fwd = _fn(_fractional, f"fractional_max_pool{self.nd}d")
        want = self.return_indices or self.training
        samples = self._random_samples
        kwargs = {"random_samples": samples} if samples is not None else {
            "seed": self._rng}
        res = fwd(x, self.kernel_size, self.output_size, self.output_ratio,
                  return_indices=want, channels_last=self.channels_last, **kwargs)
        if not want:
            self._saved = None
            return res
        y, idx = res
        self._saved = (idx, np.shape(x)) if self.training else None
        return (y, idx) if self.return_indices else y

    def backward(self, grad_output):
        idx, shape = self._need_saved()
        return _fn(_fractional, f"fractional_max_pool{self.nd}d_backward")(
            grad_output, idx, shape, channels_last=self.channels_last)


class FractionalMaxPool2d(_FractionalMaxPoolNd):
    """Layer form of :func:`cypool.fractional_max_pool2d`
    (``torch.nn.FractionalMaxPool2d``)."""
    nd = 2


class FractionalMaxPool3d(_FractionalMaxPoolNd):
    """Layer form of :func:`cypool.fractional_max_pool3d`
    (``torch.nn.FractionalMaxPool3d``)."""
    nd = 3
