"""cypool: fast, exact pooling operators for NumPy arrays.

Max and average pooling in 1, 2 and 3 dimensions, forward and backward, with
PyTorch's semantics (output sizes, ceil mode, padding, dilation, NaN and
ties, indices, divisors).  Two backends answer the same API: ``compiled``
(Cython kernels, GIL released, parallel with OpenMP) and ``reference`` (plain
NumPy, the oracle the compiled kernels are tested against, and the fallback
where the extension cannot load).

>>> import numpy as np, cypool
>>> x = np.random.default_rng(0).random((8, 3, 32, 32), dtype=np.float32)
>>> y, idx = cypool.max_pool2d(x, kernel_size=3, stride=2, padding=1, return_indices=True)
>>> y.shape
(8, 3, 16, 16)
>>> dx = cypool.max_pool2d_backward(np.ones_like(y), idx, x.shape, 3, 2, 1)
"""

from ._version import __version__
from ._backend import (CypoolFallbackWarning, available_backends, backend,
                       get_backend, set_backend)
from ._threads import get_num_threads, num_threads, set_num_threads
from ._pooling import (
    avg_pool1d, avg_pool1d_backward, avg_pool2d, avg_pool2d_backward,
    avg_pool3d, avg_pool3d_backward, max_pool1d, max_pool1d_backward,
    max_pool2d, max_pool2d_backward, max_pool3d, max_pool3d_backward,
)
from . import _adaptive, _fractional, _lp, _unpool
from ._adaptive import *  # noqa: F401,F403
from ._lp import *  # noqa: F401,F403
from ._unpool import *  # noqa: F401,F403
from ._fractional import *  # noqa: F401,F403
from . import nn  # noqa: E402  (layer objects: cypool.nn.MaxPool2d, ...)

__all__ = [
    "__version__",
    "get_backend", "set_backend", "backend", "available_backends",
    "CypoolFallbackWarning",
    "get_num_threads", "set_num_threads", "num_threads",
    "openmp_enabled",
    "max_pool1d", "max_pool2d", "max_pool3d",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
    *_adaptive.__all__, *_lp.__all__, *_unpool.__all__, *_fractional.__all__,
]


def openmp_enabled() -> bool:
    """True when the compiled extension is loaded and was built with OpenMP."""
    from . import _backend as b

    return b._compiled is not None and bool(b._compiled.openmp_enabled())
