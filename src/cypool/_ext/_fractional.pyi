"""Type stub of ``cypool._ext._fractional``: fractional max pooling kernels
(private API, called by :mod:`cypool._fractional` with validated 5-d arrays;
``nthreads`` is the OpenMP team size)."""

import numpy as np
import numpy.typing as npt

def fractional_max_pool_forward(
    x: npt.NDArray[np.generic],
    out: npt.NDArray[np.generic],
    idx: npt.NDArray[np.int64] | None,
    u: npt.NDArray[np.float64],
    kernel: tuple[int, int, int],
    single: bool,
    nthreads: int,
) -> None:
    """Fill ``out`` (and ``idx`` unless None) with the fractional max pooling
    of ``x`` for the samples ``u`` (``(N, C, 3)``, in ``[0, 1)``)."""
