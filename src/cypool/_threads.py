"""Thread count of the compiled kernels.

The count is resolved on every call, in this order: the innermost
:func:`num_threads` context, then :func:`set_num_threads`, then OpenMP's own
default for the calling thread (``OMP_NUM_THREADS``, or a limit set through
threadpoolctl), capped by the CPUs this process may use (affinity and cgroup
quota) when ``OMP_NUM_THREADS`` is not set.  The result is passed to each
kernel as its team size, so the setting holds whichever Python thread calls.

In a child process created by ``fork()`` after the parent ran a parallel
kernel, every call is single-threaded (GNU OpenMP cannot start a team there);
use the ``spawn`` or ``forkserver`` start methods for parallel children.
"""

from __future__ import annotations

from collections.abc import Iterator

import contextlib
import contextvars
import math
import operator
import os

__all__ = ["get_num_threads", "set_num_threads", "num_threads"]

_setting: int | None = None
_context: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "cypool_num_threads", default=None
)
_omp_max_threads = None  # set by the compiled backend when it loads

# GNU OpenMP's thread pool does not survive fork(): a child that starts a
# team after its parent had one can hang (GCC bug 60035).  A child forked
# after the parent ran a parallel kernel therefore runs single-threaded.
_team_started = False
_forked_after_team = False


def _after_fork_in_child():
    global _forked_after_team
    if _team_started:
        _forked_after_team = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _available_cpus() -> int:
    """CPUs this process may run on: affinity mask and cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, quota)
    return max(n, 1)


def _cgroup_quota() -> int | None:
    try:  # cgroup v2
        with open("/sys/fs/cgroup/cpu.max") as f:
            q, p = f.read().split()[:2]
        if q != "max":
            return max(1, math.ceil(int(q) / int(p)))
        return None
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            q = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            p = int(f.read())
        if q > 0 and p > 0:
            return max(1, math.ceil(q / p))
    except (OSError, ValueError):
        pass
    return None


_CPUS = _available_cpus()
# OpenMP reads OMP_NUM_THREADS once, at startup: so does this module (a
# look-up in os.environ per call was a tenth of a small call's cost)
_OMP_ENV = "OMP_NUM_THREADS" in os.environ


def _check(n):
    if isinstance(n, bool):
        raise TypeError("the number of threads must be an integer, not bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(
            f"the number of threads must be an integer, not {type(n).__name__}"
        ) from None
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1, got {n}")
    return n


def get_num_threads() -> int:
    """The number of threads the next compiled call will use at most."""
    if _forked_after_team:
        return 1
    n = _context.get()
    if n is not None:
        return n
    if _setting is not None:
        return _setting
    if _omp_max_threads is None:
        return 1
    n = _omp_max_threads()
    if not _OMP_ENV:
        n = min(n, _CPUS)
    return max(n, 1)


def set_num_threads(n: int | None) -> None:
    """Set the thread count for the whole process; ``None`` restores the default."""
    global _setting
    _setting = None if n is None else _check(n)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Context manager: use ``n`` threads inside the block (this context only)."""
    token = _context.set(_check(n))
    try:
        yield
    finally:
        _context.reset(token)
