"""Backend selection, the fallback to the reference backend, and threads.

SPEC.md "Backends and threads": ``get_backend``/``set_backend``/``backend``,
``CYPOOL_BACKEND`` (read at import), a failing extension import that warns
once and falls back to the reference backend, ``set_num_threads`` /
``get_num_threads`` / ``num_threads``, thread-count independent results, safe
concurrent calls from Python threads, and no hang after ``fork``.

Import-time behaviour runs in child interpreters (``subprocess``), where the
extension's import is made to fail with ``sys.modules["cypool._ext._pool"] =
None``.  Expected values are computed with NumPy reshape-reductions.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cypool

HAS_COMPILED = "compiled" in cypool.available_backends()
requires_compiled = pytest.mark.skipif(
    not HAS_COMPILED, reason="the compiled extension is not available")


@pytest.fixture(autouse=True)
def _restore_global_settings():
    """Tests below change process-wide settings; put them back."""
    before = cypool.get_backend()
    yield
    cypool.set_backend(before)
    cypool.set_num_threads(None)


def _reshape_max(x, k):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).max(axis=(3, 5))


def _reshape_mean(x, k):
    n, c, h, w = x.shape
    return x.astype(np.float64).reshape(n, c, h // k, k, w // k, k).mean(axis=(3, 5))


def _reshape_argmax(x, k):
    """First maximum of each k x k window (no NaN in x), as h*W + w."""
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // k, k, w // k, k).transpose(0, 1, 2, 4, 3, 5)
    tap = win.reshape(n, c, h // k, w // k, k * k).argmax(axis=-1)
    oh = np.arange(h // k)[:, None]
    ow = np.arange(w // k)[None, :]
    return ((oh * k + tap // k) * w + ow * k + tap % k).astype(np.int64)


def _child(code, timeout=60, **env_changes):
    """Run ``code`` (a str, or a list of pieces dedented one by one) in a
    fresh interpreter; ``None`` values in ``env_changes`` remove variables."""
    env = dict(os.environ)
    env.pop("CYPOOL_BACKEND", None)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    if isinstance(code, str):
        code = [code]
    code = "".join(textwrap.dedent(part) for part in code)
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _json_child(code, **env):
    r = _child(code, **env)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- selection

def test_default_backend_in_a_fresh_process():
    res = _json_child("""
        import json, cypool
        print(json.dumps([cypool.get_backend(), list(cypool.available_backends())]))
    """)
    name, available = res
    assert "reference" in available
    assert name == ("compiled" if "compiled" in available else "reference")
    if HAS_COMPILED:  # this process loaded it, so a fresh one must too
        assert name == "compiled"
        assert available == ["compiled", "reference"]
    # an empty CYPOOL_BACKEND means the default
    assert _json_child("""
        import json, cypool
        print(json.dumps(cypool.get_backend()))
    """, CYPOOL_BACKEND="") == name


def test_available_backends():
    names = cypool.available_backends()
    assert isinstance(names, tuple)
    assert "reference" in names
    assert set(names) <= {"compiled", "reference"}
    assert cypool.get_backend() in names


def test_set_and_get_backend():
    for name in cypool.available_backends():
        cypool.set_backend(name)
        assert cypool.get_backend() == name
    cypool.set_backend("reference")
    assert cypool.get_backend() == "reference"
    cypool.set_backend(" REFERENCE ")  # names are normalised
    assert cypool.get_backend() == "reference"


@requires_compiled
def test_set_backend_compiled():
    cypool.set_backend("reference")
    cypool.set_backend("Compiled")
    assert cypool.get_backend() == "compiled"


@pytest.mark.parametrize("name", ["bogus", "", "numpy", "cython", "compiled2", "ref"])
def test_unknown_backend_name(name):
    before = cypool.get_backend()
    with pytest.raises(ValueError, match="backend"):
        cypool.set_backend(name)
    with pytest.raises(ValueError, match="backend"):
        with cypool.backend(name):
            pass  # pragma: no cover
    assert cypool.get_backend() == before


@pytest.mark.parametrize("name", [None, 1, 0, True, b"compiled", ["reference"],
                                  ("reference",), object()], ids=repr)
def test_backend_name_not_a_str(name):
    before = cypool.get_backend()
    with pytest.raises(TypeError, match="backend"):
        cypool.set_backend(name)
    with pytest.raises(TypeError, match="backend"):
        with cypool.backend(name):
            pass  # pragma: no cover
    assert cypool.get_backend() == before


def test_backend_context_restores_on_exit_and_exception():
    other = {"compiled": "reference", "reference": "compiled"}
    for outer in cypool.available_backends():
        cypool.set_backend(outer)
        for inner in cypool.available_backends():
            with cypool.backend(inner):
                assert cypool.get_backend() == inner
            assert cypool.get_backend() == outer
            with pytest.raises(KeyError):
                with cypool.backend(inner):
                    assert cypool.get_backend() == inner
                    raise KeyError("boom")
            assert cypool.get_backend() == outer
        # nested contexts
        with cypool.backend("reference"):
            if other[outer] in cypool.available_backends():
                with cypool.backend(other[outer]):
                    assert cypool.get_backend() == other[outer]
            assert cypool.get_backend() == "reference"
        assert cypool.get_backend() == outer


def test_set_backend_inside_context_applies_after_it():
    cypool.set_backend("reference")
    with cypool.backend("reference"):
        if HAS_COMPILED:
            cypool.set_backend("compiled")
            assert cypool.get_backend() == "reference"  # the context wins
    if HAS_COMPILED:
        assert cypool.get_backend() == "compiled"


def test_backend_context_selects_the_kernels():
    """A result computed under a backend is the one that backend produces:
    break the reference module's max_pool and see that only the reference
    context is affected."""
    import cypool._reference as ref

    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    original = ref.max_pool

    def poisoned(x, geom, out, indices):
        original(x, geom, out, indices)
        out[...] = -7

    ref.max_pool = poisoned
    try:
        with cypool.backend("reference"):
            assert (cypool.max_pool2d(x, 2) == -7).all()
        if HAS_COMPILED:
            with cypool.backend("compiled"):
                np.testing.assert_array_equal(cypool.max_pool2d(x, 2),
                                              [[[[5, 7], [13, 15]]]])
    finally:
        ref.max_pool = original


def test_both_backends_give_identical_results():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 12)).astype(np.float32)
    exp_max, exp_idx, exp_avg = _reshape_max(x, 2), _reshape_argmax(x, 2), _reshape_mean(x, 2)
    results = {}
    for name in cypool.available_backends():
        with cypool.backend(name):
            y, idx = cypool.max_pool2d(x, 2, return_indices=True)
            a = cypool.avg_pool2d(x, 2)
            gx = cypool.max_pool2d_backward(np.ones_like(y), idx, x.shape, 2)
            y3, idx3 = cypool.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                                         return_indices=True)
        np.testing.assert_array_equal(y, exp_max)
        np.testing.assert_array_equal(idx, exp_idx)
        np.testing.assert_allclose(a, exp_avg, rtol=1e-6, atol=1e-7)
        exp_g = np.zeros((6, 96), np.float32)
        exp_g[np.arange(6)[:, None], exp_idx.reshape(6, -1)] = 1
        np.testing.assert_array_equal(gx, exp_g.reshape(x.shape))
        results[name] = (y3, idx3)
    if len(results) == 2:  # overlapping windows, padding, ceil: bit-identical
        np.testing.assert_array_equal(results["compiled"][0], results["reference"][0])
        np.testing.assert_array_equal(results["compiled"][1], results["reference"][1])


# ----------------------------------------------------------------- fallback

_FAILING_IMPORT = """
    import json, sys, warnings
    sys.modules["cypool._ext._pool"] = None   # the extension's import raises ImportError
"""

_FALLBACK_CHILD = [_FAILING_IMPORT, """
    import numpy as np
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import cypool
        x = np.random.default_rng(0).standard_normal((2, 3, 6, 8)).astype(np.float32)
        y = cypool.max_pool2d(x, 2)
        y2, idx = cypool.max_pool2d(x, 2, return_indices=True)
        a = cypool.avg_pool2d(x, 2)
    expected = x.reshape(2, 3, 3, 2, 4, 2).max(axis=(3, 5))
    expected_avg = x.astype(np.float64).reshape(2, 3, 3, 2, 4, 2).mean(axis=(3, 5))
    out = {
        "n_fallback": sum(issubclass(w.category, cypool.CypoolFallbackWarning)
                          for w in caught),
        "n_warnings": len(caught),
        "is_runtime_warning": issubclass(cypool.CypoolFallbackWarning, RuntimeWarning),
        "messages": [str(w.message) for w in caught],
        "backend": cypool.get_backend(),
        "available": list(cypool.available_backends()),
        "max_ok": bool(np.array_equal(y, expected) and np.array_equal(y2, expected)),
        "avg_ok": bool(np.allclose(a, expected_avg, rtol=1e-6, atol=1e-7)),
        "openmp": cypool.openmp_enabled(),
        "threads": cypool.get_num_threads(),
    }
    for label, fn in [("set", lambda: cypool.set_backend("compiled")),
                      ("ctx", lambda: cypool.backend("compiled").__enter__())]:
        try:
            fn()
        except Exception as exc:
            out[label] = [type(exc).__name__, str(exc)]
        else:
            out[label] = None
    out["backend_after"] = cypool.get_backend()
    print(json.dumps(out))
"""]


def test_fallback_when_the_extension_cannot_load():
    res = _json_child(_FALLBACK_CHILD)
    assert res["n_fallback"] == 1, res["messages"]
    assert res["n_warnings"] == 1, res["messages"]  # nothing else either
    assert res["is_runtime_warning"]
    assert "reference" in res["messages"][0]
    assert res["backend"] == "reference"
    assert res["available"] == ["reference"]
    assert res["max_ok"] and res["avg_ok"]
    assert res["openmp"] is False
    assert res["threads"] >= 1
    # asking for the compiled backend fails clearly, and changes nothing
    for label in ("set", "ctx"):
        assert res[label] is not None, f"{label}: selecting 'compiled' did not raise"
        exc_type, message = res[label]
        assert exc_type in ("RuntimeError", "ImportError", "ValueError"), exc_type
        assert "compiled" in message and "not available" in message
    assert res["backend_after"] == "reference"


def test_fallback_with_cypool_backend_compiled_is_an_import_error():
    res = _json_child([_FAILING_IMPORT, """
        try:
            import cypool
        except ImportError as exc:
            print(json.dumps(["ImportError", str(exc)]))
        except Exception as exc:
            print(json.dumps([type(exc).__name__, str(exc)]))
        else:
            print(json.dumps(["no error", cypool.get_backend()]))
    """], CYPOOL_BACKEND="compiled")
    assert res[0] == "ImportError", res
    assert "compiled" in res[1]


@pytest.mark.parametrize("extension", ["failing", "loading"])
@pytest.mark.parametrize("value", ["reference", " Reference "])
def test_cypool_backend_reference(extension, value):
    code = [_FAILING_IMPORT if extension == "failing" else
            "import json, sys, warnings\n", """
        import numpy as np
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import cypool
            x = np.arange(16.0).reshape(1, 1, 4, 4)
            ok = np.array_equal(cypool.max_pool2d(x, 2), [[[[5, 7], [13, 15]]]])
        print(json.dumps({"warnings": [str(w.message) for w in caught],
                          "backend": cypool.get_backend(), "ok": bool(ok),
                          "available": list(cypool.available_backends())}))
    """]
    res = _json_child(code, CYPOOL_BACKEND=value)
    assert res["warnings"] == []
    assert res["backend"] == "reference"
    assert res["ok"]
    if extension == "loading" and HAS_COMPILED:
        # only the default changes; the compiled backend stays selectable
        assert res["available"] == ["compiled", "reference"]


@pytest.mark.parametrize("value", ["bogus", "numpy", "compiled,reference", "1"])
def test_invalid_cypool_backend_env_raises_at_import(value):
    r = _child("import cypool", CYPOOL_BACKEND=value)
    assert r.returncode != 0
    assert "ValueError" in r.stderr
    assert "CYPOOL_BACKEND" in r.stderr


# ------------------------------------------------------------------ threads

def test_num_threads_get_set():
    default = cypool.get_num_threads()
    assert isinstance(default, int) and default >= 1
    cypool.set_num_threads(3)
    assert cypool.get_num_threads() == 3
    cypool.set_num_threads(np.int64(1))
    assert cypool.get_num_threads() == 1
    cypool.set_num_threads(None)
    assert cypool.get_num_threads() == default


def test_num_threads_context_restores_and_nests():
    cypool.set_num_threads(5)
    with cypool.num_threads(2):
        assert cypool.get_num_threads() == 2
        with cypool.num_threads(1):
            assert cypool.get_num_threads() == 1
            cypool.set_num_threads(7)  # the context still wins
            assert cypool.get_num_threads() == 1
        assert cypool.get_num_threads() == 2
        with pytest.raises(KeyError):
            with cypool.num_threads(4):
                assert cypool.get_num_threads() == 4
                raise KeyError("boom")
        assert cypool.get_num_threads() == 2
    assert cypool.get_num_threads() == 7


@pytest.mark.parametrize("n,exc", [(0, ValueError), (-1, ValueError),
                                   (-(2**40), ValueError), (1.5, TypeError),
                                   (2.0, TypeError), (True, TypeError),
                                   (False, TypeError), ("2", TypeError),
                                   ([2], TypeError)], ids=repr)
def test_invalid_thread_counts(n, exc):
    cypool.set_num_threads(3)
    with pytest.raises(exc, match="thread"):
        cypool.set_num_threads(n)
    with pytest.raises(exc, match="thread"):
        with cypool.num_threads(n):
            pass  # pragma: no cover
    assert cypool.get_num_threads() == 3
    with pytest.raises(TypeError, match="thread"):
        with cypool.num_threads(None):
            pass  # pragma: no cover


@requires_compiled
def test_default_thread_count_follows_omp_num_threads():
    res = _json_child("""
        import json, cypool
        a = cypool.get_num_threads()
        cypool.set_num_threads(5)
        b = cypool.get_num_threads()
        cypool.set_num_threads(None)
        print(json.dumps([a, b, cypool.get_num_threads()]))
    """, OMP_NUM_THREADS="3")
    assert res == [3, 5, 3]


def _big_input():
    return np.random.default_rng(42).standard_normal((4, 8, 128, 128)).astype(np.float32)


def _all_ops(x):
    """Forward and backward passes on x, overlapping windows included."""
    y2, i2 = cypool.max_pool2d(x, 2, return_indices=True)
    y3, i3 = cypool.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                               return_indices=True)
    a3 = cypool.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                           count_include_pad=False)
    a2 = cypool.avg_pool2d(x, 2)
    g3 = np.linspace(-1, 1, y3.size, dtype=np.float32).reshape(y3.shape)
    gm = cypool.max_pool2d_backward(g3, i3, x.shape, 3, stride=2, padding=1,
                                    ceil_mode=True)
    ga = cypool.avg_pool2d_backward(g3, x.shape, 3, stride=2, padding=1,
                                    ceil_mode=True, count_include_pad=False)
    ga2 = cypool.avg_pool2d_backward(np.ones_like(a2), x.shape, 2)
    return dict(y2=y2, i2=i2, y3=y3, i3=i3, a3=a3, a2=a2, gm=gm, ga=ga, ga2=ga2)


def _check_independent(x, r):
    np.testing.assert_array_equal(r["y2"], _reshape_max(x, 2))
    np.testing.assert_array_equal(r["i2"], _reshape_argmax(x, 2))
    np.testing.assert_allclose(r["a2"], _reshape_mean(x, 2), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r["ga2"], np.full(x.shape, 0.25, np.float32))


@requires_compiled
def test_results_identical_with_1_and_2_threads():
    x = _big_input()
    with cypool.backend("compiled"):
        with cypool.num_threads(1):
            serial = _all_ops(x)
        for n in (2, 3):
            with cypool.num_threads(n):
                parallel = _all_ops(x)
            for key in serial:
                np.testing.assert_array_equal(parallel[key], serial[key], err_msg=key)
    _check_independent(x, serial)
    # and the same as the reference backend (max exactly, averages closely)
    with cypool.backend("reference"):
        ref = _all_ops(x)
    for key in ("y3", "i3", "gm"):
        np.testing.assert_array_equal(serial[key], ref[key], err_msg=key)
    for key in ("a3", "ga"):
        np.testing.assert_allclose(serial[key], ref[key], rtol=1e-5, atol=1e-6,
                                   err_msg=key)


@pytest.mark.parametrize("name", cypool.available_backends())
def test_concurrent_calls_from_python_threads(name):
    rng = np.random.default_rng(7)
    inputs = [rng.standard_normal((2, 4, 64, 64)).astype(np.float32) for _ in range(12)]
    cypool.set_num_threads(2)
    with cypool.backend(name):
        serial = [_all_ops(x) for x in inputs]

    def task(i):
        with cypool.backend(name):  # contexts are per thread
            return _all_ops(inputs[i])

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(task, [i for _ in range(2) for i in range(12)]))
    for j, r in enumerate(results):
        i = j % 12
        _check_independent(inputs[i], r)
        for key in r:
            np.testing.assert_array_equal(r[key], serial[i][key], err_msg=key)


def _fork_child(x, expected_max, expected_idx):
    with cypool.backend("compiled"), cypool.num_threads(2):
        y, idx = cypool.max_pool2d(x, 2, return_indices=True)
        a = cypool.avg_pool2d(x, 2)
    ok = (np.array_equal(y, expected_max) and np.array_equal(idx, expected_idx)
          and np.allclose(a, _reshape_mean(x, 2), rtol=1e-5, atol=1e-6))
    sys.exit(0 if ok else 3)


@requires_compiled
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_kernel_after_fork_does_not_hang():
    x = _big_input()
    exp_max, exp_idx = _reshape_max(x, 2), _reshape_argmax(x, 2)
    with cypool.backend("compiled"), cypool.num_threads(2):
        # the parent's OpenMP runtime starts its thread team here
        np.testing.assert_array_equal(cypool.max_pool2d(x, 2), exp_max)
        cypool.avg_pool2d(x, 2)
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_fork_child, args=(x, exp_max, exp_idx))
    proc.start()
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()
        proc.join(10)
        pytest.fail("a compiled kernel hung in a forked child (OpenMP after fork)")
    assert proc.exitcode == 0, f"child exit code {proc.exitcode}"
    # the parent still works after the fork
    with cypool.backend("compiled"), cypool.num_threads(2):
        np.testing.assert_array_equal(cypool.max_pool2d(x, 2), exp_max)


@pytest.mark.skipif(os.environ.get("CYPOOL_ALLOW_SERIAL") == "1",
                    reason="CYPOOL_ALLOW_SERIAL=1: a serial build is allowed")
@requires_compiled
def test_openmp_compiled_in():
    assert cypool.openmp_enabled() is True
