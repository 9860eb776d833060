"""Compiled kernels of cypool (Cython + OpenMP).  Nothing public lives here."""
