# cython: language_level=3, cdivision=True, cpow=True
"""cypool's kernels (``_pool.pyx``) compiled for AVX2: setup.py adds the
instruction-set flags, and ``cypool._compiled`` loads this module only on a
CPU (and OS) that supports them.  The source is the same, so results are
identical; only the width of the vectorised inner loops changes."""

include "_pool.pyx"
