"""``python -m cypool`` and the suite under ``CYPOOL_BACKEND=reference``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _run(args, **env):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)


def test_python_m_cypool_reports_and_self_checks():
    r = _run(["-m", "cypool"])
    assert r.returncode == 0, r.stdout + r.stderr
    for field in ("cypool ", "backend in use:", "OpenMP compiled in:", "threads:",
                  "self-check passed"):
        assert field in r.stdout


def test_python_m_cypool_fails_on_a_mismatch():
    """A broken compiled kernel must make the self-check exit non-zero."""
    code = (
        "import sys, numpy as np, cypool, cypool._compiled as c\n"
        "if 'compiled' not in cypool.available_backends(): sys.exit(3)\n"
        "orig = c.max_pool\n"
        "def broken(x, geom, out, idx):\n"
        "    orig(x, geom, out, idx); out.reshape(-1)[:1] += 1\n"
        "c.max_pool = broken\n"
        "from cypool.__main__ import main\n"
        "sys.exit(main(['-q']))\n"
    )
    r = _run(["-c", code])
    if r.returncode == 3:
        pytest.skip("the compiled backend is not available")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "MISMATCH" in r.stdout


def test_suite_passes_under_reference_backend():
    """The backend-agnostic tests pass with CYPOOL_BACKEND=reference."""
    files = ["test_semantics_examples.py", "test_errors.py", "test_gradcheck.py"]
    files = [str(HERE / f) for f in files if (HERE / f).exists()]
    r = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
             CYPOOL_BACKEND="reference")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
