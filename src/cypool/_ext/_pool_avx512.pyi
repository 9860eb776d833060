"""Type stub of ``cypool._ext._pool_avx512``: ``_pool`` built for AVX512."""

from ._pool import *
