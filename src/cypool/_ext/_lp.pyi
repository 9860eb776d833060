"""Type stub of ``cypool._ext._lp``: Lp (power-average) pooling kernels
(private API, called by :mod:`cypool._lp` with validated 5-d arrays and
``(d, h, w)`` window triples; ``nthreads`` is the OpenMP team size)."""

import numpy as np
import numpy.typing as npt

def openmp_enabled() -> bool:
    """True when the extension was compiled with OpenMP."""

def lp_pool_forward(
    x: npt.NDArray[np.floating],
    out: npt.NDArray[np.floating],
    kernel: tuple[int, int, int],
    stride: tuple[int, int, int],
    p: float,
    nthreads: int,
    stream: bool = False,
) -> None:
    """``stream``: write the fused stride-2 rows with non-temporal stores
    where the rows allow it (the caller decides by the output's size and
    origin)."""

def lp_pool_backward(
    grad_out: npt.NDArray[np.floating],
    x: npt.NDArray[np.floating],
    grad_in: npt.NDArray[np.floating],
    kernel: tuple[int, int, int],
    stride: tuple[int, int, int],
    p: float,
    nthreads: int,
) -> None: ...
