# cython: language_level=3, cdivision=True, cpow=True
"""cypool's ``_fractional`` kernels compiled for AVX-512: setup.py adds the
instruction-set flags, and ``cypool._compiled.family`` loads this module
when ``_pool``'s AVX-512 variant is the one selected (the CPU and OS support
it).  The source is the same, so results are identical; only the width of
the vectorised inner loops changes."""

include "_fractional.pyx"
