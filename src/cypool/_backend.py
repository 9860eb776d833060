"""Backend selection and the fallback to the reference backend.

``compiled`` (the Cython/OpenMP kernels) is the default wherever the extension
loads.  If it cannot be imported, ``import cypool`` warns once and runs the
``reference`` backend (plain NumPy).  The environment variable
``CYPOOL_BACKEND`` picks the starting backend: ``reference`` never touches the
extension's kernels, ``compiled`` makes a missing extension an ImportError
instead of a fallback.
"""

from __future__ import annotations

from collections.abc import Iterator

import contextlib
import contextvars
import os
import warnings

from . import _reference

__all__ = ["get_backend", "set_backend", "backend", "available_backends",
           "CypoolFallbackWarning"]


class CypoolFallbackWarning(RuntimeWarning):
    """The compiled extension could not be loaded; the reference backend runs."""


_BACKENDS = {"reference": _reference}
_import_error: BaseException | None = None

try:
    from . import _compiled
except ImportError as exc:  # no extension for this platform, broken build, ...
    _compiled = None
    _import_error = exc
else:
    _BACKENDS["compiled"] = _compiled


def _initial_backend() -> str:
    requested = os.environ.get("CYPOOL_BACKEND", "").strip().lower()
    if requested not in ("", "compiled", "reference"):
        raise ValueError(
            f"CYPOOL_BACKEND must be 'compiled' or 'reference', got {requested!r}"
        )
    if requested == "reference":
        return "reference"
    if _compiled is None:
        if requested == "compiled":
            raise ImportError(
                "CYPOOL_BACKEND=compiled but cypool's compiled extension could not be "
                f"imported: {_import_error}"
            ) from _import_error
        warnings.warn(
            "cypool's compiled extension could not be imported "
            f"({_import_error}); running the pure-NumPy reference backend, which "
            "is much slower. Set CYPOOL_BACKEND=reference to silence this warning.",
            CypoolFallbackWarning,
            stacklevel=2,
        )
        return "reference"
    return "compiled"


_default = _initial_backend()
_context: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "cypool_backend", default=None
)


def available_backends() -> tuple[str, ...]:
    """Names of the backends that can run in this process."""
    return tuple(name for name in ("compiled", "reference") if name in _BACKENDS)


def _check_name(name):
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, not {type(name).__name__}")
    key = name.strip().lower()
    if key not in ("compiled", "reference"):
        raise ValueError(f"backend must be 'compiled' or 'reference', got {name!r}")
    if key not in _BACKENDS:
        raise RuntimeError(
            f"the compiled backend is not available: {_import_error}"
        )
    return key


def get_backend() -> str:
    """The name of the backend the next call will use."""
    return _context.get() or _default


def set_backend(name: str) -> None:
    """Select ``"compiled"`` or ``"reference"`` for the whole process."""
    global _default
    _default = _check_name(name)


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Context manager: use backend ``name`` inside the block (this context only)."""
    token = _context.set(_check_name(name))
    try:
        yield
    finally:
        _context.reset(token)


def use_compiled() -> bool:
    """True when the active backend is the compiled one (for operator
    families that keep their kernels in their own modules)."""
    return (_context.get() or _default) == "compiled"


def current():
    """The module implementing the active backend."""
    return _BACKENDS[_context.get() or _default]
