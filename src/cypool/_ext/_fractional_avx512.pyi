"""Type stub of ``cypool._ext._fractional_avx512``: ``_fractional`` built for AVX-512."""

from ._fractional import *
