"""Type stub of ``cypool._ext._adaptive``: adaptive and global max/average
pooling kernels (private API, called by :mod:`cypool._adaptive` with validated
5-d ``(N, C, D, H, W)`` arrays; ``nthreads`` is the OpenMP team size)."""

import numpy as np
import numpy.typing as npt

def openmp_enabled() -> bool:
    """True when this module was compiled with OpenMP."""

def adaptive_max_forward(
    x: npt.NDArray[np.generic],
    out: npt.NDArray[np.generic],
    idx: npt.NDArray[np.int64] | None,
    nthreads: int,
) -> None: ...
def adaptive_avg_forward(
    x: npt.NDArray[np.generic],
    out: npt.NDArray[np.generic],
    nearest: bool,
    nthreads: int,
) -> None: ...
def adaptive_avg_backward(
    grad_out: npt.NDArray[np.floating],
    grad_in: npt.NDArray[np.floating],
    nthreads: int,
) -> None: ...
def global_max_forward(
    x: npt.NDArray[np.generic],
    out: npt.NDArray[np.generic],
    idx: npt.NDArray[np.int64] | None,
    nthreads: int,
) -> None: ...
def global_avg_forward(
    x: npt.NDArray[np.generic],
    out: npt.NDArray[np.generic],
    nearest: bool,
    nthreads: int,
) -> None: ...
def global_avg_backward(
    grad_out: npt.NDArray[np.floating],
    grad_in: npt.NDArray[np.floating],
    nthreads: int,
) -> None: ...
