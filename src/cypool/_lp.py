"""Operator family module (filled in by its implementation)."""

__all__: list[str] = []
