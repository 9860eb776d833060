"""Type stub of ``cypool._ext._lp_avx512``: ``_lp`` built for AVX-512."""

from ._lp import *
