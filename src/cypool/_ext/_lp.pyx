# cython: language_level=3, cdivision=True, cpow=True
"""Kernels of one operator family (placeholder until its kernels land)."""
