"""Type stub of ``cypool._ext._pool``: the compiled max and average pooling
kernels (also ``_pool_avx2`` and ``_pool_avx512``, the same source built for
wider instruction sets).

Private API: :mod:`cypool._compiled` calls these with validated arguments.
Every array is a 5-d ``(N, C, D, H, W)`` view, window parameters are
``(d, h, w)`` triples, and ``nthreads`` is the OpenMP team size of the call.
"""

import numpy as np
import numpy.typing as npt

_Triple = tuple[int, int, int]

def openmp_enabled() -> bool:
    """True when the extension was compiled with OpenMP."""

def omp_max_threads() -> int:
    """``omp_get_max_threads()`` of the calling thread (1 without OpenMP)."""

def max_pool_forward(
    x: npt.NDArray[np.generic],
    out: npt.NDArray[np.generic],
    idx: npt.NDArray[np.int64] | None,
    kernel: _Triple,
    stride: _Triple,
    dilation: _Triple,
    pad: _Triple,
    nthreads: int,
) -> None:
    """Fill ``out`` (and ``idx`` unless None) with the max pooling of ``x``."""

def avg_pool_forward(
    x: npt.NDArray[np.generic],
    out: npt.NDArray[np.generic],
    kernel: _Triple,
    stride: _Triple,
    pad: _Triple,
    pad_after: _Triple,
    count_include_pad: bool,
    divisor_override: int,
    nearest: bool,
    nthreads: int,
) -> None:
    """Fill ``out`` with the average pooling of ``x`` (``divisor_override``
    0 means none; ``nearest`` rounds integer averages to nearest)."""

def max_pool_backward(
    grad_out: npt.NDArray[np.floating],
    idx: npt.NDArray[np.int64],
    grad_in: npt.NDArray[np.floating],
    nthreads: int,
    stream: bool = False,
    bounds: npt.NDArray[np.int64] | None = None,
) -> bool:
    """Scatter ``grad_out`` into ``grad_in`` (zeroed here) through ``idx``;
    False when some index lies outside its plane.  ``stream``: ``grad_in``
    is the caller's array (a large one is written with non-temporal
    stores); with ``bounds`` (``cypool._compiled.row_bounds``) a large one
    is streamed out while it is built, fresh or not."""

def avg_pool_backward(
    grad_out: npt.NDArray[np.floating],
    grad_in: npt.NDArray[np.floating],
    kernel: _Triple,
    stride: _Triple,
    pad: _Triple,
    pad_after: _Triple,
    count_include_pad: bool,
    divisor_override: int,
    nthreads: int,
    stream: bool = False,
) -> None:
    """Fill ``grad_in`` with the gradient of average pooling.  ``stream``:
    ``grad_in`` is the caller's array (a large one is written with
    non-temporal stores)."""
