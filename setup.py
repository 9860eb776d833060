"""Build script for cypool's compiled backend.

Environment switches (all optional):

``CYPOOL_OPENMP=auto|0|1``
    ``auto`` (default) compiles and links a tiny OpenMP program with the
    compiler's flags and builds serially, with a warning, when that fails;
    ``0`` builds serially; ``1`` makes a missing OpenMP an error (wheel and CI
    builds set it so that a serial build cannot ship by mistake).
``CYPOOL_PURE_PYTHON=1``
    Build no extension at all: the install runs the reference backend.
``CYPOOL_CYTHON_DEBUG=1``
    Turn Cython's bounds, wraparound and initialisation checks back on.
"""

import os
import sys
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _env_flag(name, default="0"):
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


PURE_PYTHON = _env_flag("CYPOOL_PURE_PYTHON")
OPENMP_MODE = os.environ.get("CYPOOL_OPENMP", "auto").strip().lower()
if OPENMP_MODE not in ("auto", "0", "1"):
    sys.exit(f"CYPOOL_OPENMP must be auto, 0 or 1, got {OPENMP_MODE!r}")

OMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
    }
    """
)


def _openmp_flags(compiler):
    """(compile_args, link_args) candidates for this compiler."""
    ctype = compiler.compiler_type
    if ctype == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        prefixes = [p for p in (os.environ.get("LIBOMP_PREFIX"), "/opt/homebrew/opt/libomp",
                                "/usr/local/opt/libomp") if p]
        cands = [(["-fopenmp"], ["-fopenmp"])]
        for pre in prefixes:
            cands.append(([f"-Xpreprocessor", "-fopenmp", f"-I{pre}/include"],
                          [f"-L{pre}/lib", "-lomp", f"-Wl,-rpath,{pre}/lib"]))
        return cands
    return [(["-fopenmp"], ["-fopenmp"])]


def _try_openmp(compiler, cflags, lflags):
    """Compile and link (not run) a tiny OpenMP program with these flags."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(OMP_TEST)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            compiler.link_executable(objs, os.path.join(tmp, "omp_test"),
                                     extra_postargs=lflags)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            base = ["/O2"]
        else:
            # -O3 vectorises the inner loops; never -ffast-math (it deletes the
            # NaN tests of max pooling) and never -march=native in wheels.
            base = ["-O3", "-fno-math-errno", "-Wno-unused-function",
                    "-Wno-unreachable-code"]
        omp_c, omp_l = [], []
        if OPENMP_MODE != "0":
            for cflags, lflags in _openmp_flags(self.compiler):
                if _try_openmp(self.compiler, cflags, lflags):
                    omp_c, omp_l = cflags, lflags
                    break
            else:
                msg = ("cypool: this compiler cannot build OpenMP programs; "
                       "building the compiled backend SERIAL (single-threaded)")
                if OPENMP_MODE == "1":
                    raise RuntimeError(msg + " -- refused because CYPOOL_OPENMP=1")
                print("*" * 72 + "\n" + msg + "\n" + "*" * 72, file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = base + omp_c + list(ext.extra_compile_args or [])
            ext.extra_link_args = omp_l + list(ext.extra_link_args or [])
        super().build_extensions()


def _extensions():
    if PURE_PYTHON:
        return []
    import numpy as np
    from Cython.Build import cythonize

    debug = _env_flag("CYPOOL_CYTHON_DEBUG")
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "initializedcheck": debug,
        "nonecheck": debug,
        "cdivision": True,
        "cpow": True,
        "freethreading_compatible": True,
    }
    exts = [
        Extension(
            "cypool._ext._pool",
            ["src/cypool/_ext/_pool.pyx"],
            include_dirs=[np.get_include(), "src/cypool/_ext"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
    ]
    return cythonize(exts, compiler_directives=directives,
                     nthreads=os.cpu_count() or 1, quiet=True)


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
