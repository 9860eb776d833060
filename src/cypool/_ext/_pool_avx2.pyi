"""Type stub of ``cypool._ext._pool_avx2``: ``_pool`` built for AVX2."""

from ._pool import *
