"""Type stub of ``cypool._ext._unpool``: max unpooling kernels (private API,
called by :mod:`cypool._unpool` with validated 5-d arrays; ``nthreads`` is the
OpenMP team size)."""

import numpy as np
import numpy.typing as npt

def openmp_enabled() -> bool:
    """True when the extension was compiled with OpenMP."""

def max_unpool_forward(
    x: npt.NDArray[np.generic],
    idx: npt.NDArray[np.int64],
    out: npt.NDArray[np.generic],
    nthreads: int,
    zeroed: bool = False,
    bounds: npt.NDArray[np.int64] | None = None,
) -> bool:
    """Zero ``out`` (unless ``zeroed``: it is all zeros already) and scatter
    ``x`` into it through ``idx``; False when an index other than -1 lies
    outside its plane.  With ``bounds`` (``cypool._compiled.row_bounds``)
    contiguous planes are streamed out while they are built."""

def max_unpool_backward(
    grad_out: npt.NDArray[np.floating],
    idx: npt.NDArray[np.int64],
    grad_in: npt.NDArray[np.floating],
    nthreads: int,
) -> bool:
    """Gather ``grad_out`` through ``idx``; False when an index lies outside
    its plane."""
