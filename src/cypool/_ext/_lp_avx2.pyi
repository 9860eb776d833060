"""Type stub of ``cypool._ext._lp_avx2``: ``_lp`` built for AVX2."""

from ._lp import *
