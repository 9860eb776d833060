"""Checks of the installed package that run wherever the suite runs (also
against each wheel cibuildwheel builds): the compiled backend is really
there, the type stubs cover what the compiled modules expose, the public API
is annotated, and cypool's OpenMP runtime coexists with PyTorch's.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import inspect
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import cypool

PKG = pathlib.Path(cypool.__file__).resolve().parent
EXT = PKG / "_ext"


def _compiled_modules():
    """Names of the compiled modules in this installation's ``cypool._ext``."""
    names = set()
    for path in EXT.iterdir():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:  # longest first
            if path.name.endswith(suffix):
                stem = path.name[: -len(suffix)]
                if "." not in stem:  # not a build for another interpreter
                    names.add(stem)
                break
    return sorted(names)


@pytest.mark.skipif(os.environ.get("CYPOOL_ALLOW_REFERENCE_ONLY") == "1",
                    reason="CYPOOL_ALLOW_REFERENCE_ONLY=1: a pure-Python install")
def test_compiled_backend_is_installed():
    """A build that silently fell back to pure Python (a compiler failure
    with CYPOOL_PURE_PYTHON=auto) would pass every other test on the
    reference backend; this one fails instead."""
    from cypool import _backend

    assert "compiled" in cypool.available_backends(), _backend._import_error
    assert "_pool" in _compiled_modules()


def test_py_typed_marker():
    assert (PKG / "py.typed").is_file()


def _stub_functions(name, seen=()):
    """{function: [parameter names]} declared by ``_ext/<name>.pyi``,
    following ``from .<module> import *``."""
    path = EXT / f"{name}.pyi"
    assert path.is_file(), f"no type stub {path.name} for the compiled module {name}"
    funcs = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            a = node.args
            funcs[node.name] = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
        elif (isinstance(node, ast.ImportFrom) and node.level == 1
              and [n.name for n in node.names] == ["*"] and node.module not in seen):
            funcs.update(_stub_functions(node.module, (*seen, name)))
    return funcs


@pytest.mark.parametrize("name", _compiled_modules() or ["(none built)"])
def test_kernel_module_stub_covers_its_defs(name):
    if name == "(none built)":
        pytest.skip("no compiled module in this installation")
    mod = importlib.import_module(f"cypool._ext.{name}")
    stub = _stub_functions(name)
    public = {n: obj for n, obj in vars(mod).items()
              if not n.startswith("_") and callable(obj) and not inspect.isclass(obj)
              and not inspect.ismodule(obj)}
    missing = sorted(set(public) - set(stub))
    assert not missing, f"{name}.pyi lacks {missing}"
    stale = sorted(set(stub) - set(public))
    assert not stale, f"{name}.pyi declares {stale}, which {name} does not define"
    for fname, obj in public.items():
        params = list(inspect.signature(obj).parameters)
        assert stub[fname] == params, (fname, stub[fname], params)


def _public_functions():
    """{defining module: [public function names]} of ``cypool.__all__``."""
    by_module = {}
    for name in cypool.__all__:
        obj = getattr(cypool, name)
        if inspect.isfunction(obj):
            by_module.setdefault(obj.__module__, []).append(name)
    return by_module


@pytest.mark.parametrize("module", sorted(_public_functions()))
def test_public_api_is_annotated(module):
    """Every public function carries annotations on all its parameters and
    its return value (the package ships py.typed); one test per defining
    module, so that a gap names its module."""
    gaps = []
    for name in _public_functions()[module]:
        sig = inspect.signature(getattr(cypool, name))
        bare = [p for p, v in sig.parameters.items()
                if v.annotation is inspect.Parameter.empty]
        if sig.return_annotation is inspect.Signature.empty:
            bare.append("return")
        if bare:
            gaps.append(f"{name}: {', '.join(bare)}")
    assert not gaps, f"unannotated in {module}: " + "; ".join(gaps)


@pytest.mark.skipif("compiled" not in cypool.available_backends(),
                    reason="the compiled extension is not available")
def test_openmp_runtime_coexists_with_torch():
    """PyTorch ships its own OpenMP runtime.  Two runtimes in one process
    must both work (on macOS two libomp copies can abort with 'OMP: Error
    #15'); run each library's parallel kernels in one fresh process."""
    pytest.importorskip("torch")
    code = textwrap.dedent("""
        import numpy as np, torch, cypool
        torch.set_num_threads(2)
        x = np.random.default_rng(0).random((4, 8, 64, 64), dtype=np.float32)
        t = torch.nn.functional.max_pool2d(torch.from_numpy(x), 3, 2, 1).numpy()
        with cypool.backend("compiled"), cypool.num_threads(2):
            c = cypool.max_pool2d(x, 3, 2, 1)
            a = cypool.avg_pool2d(x, 2)
        t2 = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 2).numpy()
        assert np.array_equal(t, c)
        assert np.allclose(t2, a)
        print("ok", cypool.openmp_enabled())
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert res.stdout.split()[0] == "ok"
