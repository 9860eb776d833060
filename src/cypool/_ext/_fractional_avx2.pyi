"""Type stub of ``cypool._ext._fractional_avx2``: ``_fractional`` built for AVX2."""

from ._fractional import *
