"""Build script for cypool's compiled backend.

Environment switches (all optional):

``CYPOOL_OPENMP=auto|0|1``
    ``auto`` (default) compiles and links a tiny OpenMP program with the
    compiler's flags and builds serially, with a warning, when that fails;
    ``0`` builds serially; ``1`` makes a missing OpenMP an error (wheel and CI
    builds set it so that a serial build cannot ship by mistake).
``CYPOOL_PURE_PYTHON=auto|0|1``
    ``1``: build no extension at all, the install runs the reference backend
    (no compiler needed).  ``auto`` (default): build the extension, but when
    the C compiler is missing or fails on it, print a banner saying so and
    install without it (the reference backend runs; ``import cypool`` warns).
    ``0``: a compiler failure is an error (wheel and CI builds set it, so that
    an install without kernels cannot pass unnoticed).  An in-place
    development build (``build_ext --inplace``) never falls back.
``CYPOOL_CYTHON_DEBUG=1``
    Turn Cython's bounds, wraparound and initialisation checks back on.
``CYPOOL_EXTENSIONS=_pool,_adaptive,...``
    Build only these kernel modules (a development shortcut; by default every
    module in ``KERNEL_MODULES`` is built).
``CYPOOL_SIMD_VARIANTS=auto|0``
    On x86-64 the kernels are compiled three times: for the baseline
    instruction set (SSE2), for AVX2+FMA and for AVX-512; ``cypool`` loads the
    widest one the CPU supports at import time (never ``-march=native``: the
    wheels run on any x86-64 CPU).  ``0`` builds the baseline only.  A variant
    the compiler cannot build is skipped with a warning.
"""

import os
import platform
import sys
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError


def _env_flag(name, default="0"):
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


PURE_PYTHON_MODE = os.environ.get("CYPOOL_PURE_PYTHON", "auto").strip().lower() or "auto"
if PURE_PYTHON_MODE in ("1", "true", "yes", "on"):
    PURE_PYTHON_MODE = "1"
elif PURE_PYTHON_MODE in ("0", "false", "no", "off"):
    PURE_PYTHON_MODE = "0"
elif PURE_PYTHON_MODE != "auto":
    sys.exit(f"CYPOOL_PURE_PYTHON must be auto, 0 or 1, got {PURE_PYTHON_MODE!r}")
PURE_PYTHON = PURE_PYTHON_MODE == "1"
SIMD_VARIANTS = os.environ.get("CYPOOL_SIMD_VARIANTS", "auto").strip().lower() != "0"

# Instruction-set variants of the kernel module: (module suffix, gcc/clang
# flags, MSVC flags).  x86-64-v3 and x86-64-v4 without their -march (GCC 11+).
VARIANTS = {
    "avx2": (["-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mf16c", "-mlzcnt"],
             ["/arch:AVX2"]),
    "avx512": (["-mavx2", "-mfma", "-mbmi", "-mbmi2", "-mf16c", "-mlzcnt",
                "-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq",
                "-mavx512vl", "-mprefer-vector-width=512"],
               ["/arch:AVX512"]),
}
# The kernel modules under src/cypool/_ext and whether each is also built in
# the SIMD variants (``<module>_avx2.pyx`` / ``<module>_avx512.pyx``, each a
# one-line ``include`` of the module's source).
KERNEL_MODULES = {
    "_pool": True,
    # measured 0.23-0.85x in AVX-512 (adaptive max 14x14 -> 7x7, average,
    # global average): the baseline build only
    "_adaptive": False,
    "_lp": True,
    "_unpool": False,       # a scatter: nothing for wider vectors to do
    "_fractional": True,
}
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


def _try_openmp(compiler, cflags, lflags, program=OMP_TEST):
    """Compile and link (not run) a tiny OpenMP program with these flags."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(program)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
            compiler.link_executable(objs, os.path.join(tmp, "omp_test"),
                                     extra_postargs=lflags)
        except Exception:
            return False
    return True


def _banner(*lines):
    bar = "*" * 78
    print("\n".join([bar, *lines, bar]), file=sys.stderr, flush=True)


# What a failing or missing compiler raises (distutils' CompileError and
# LinkError derive from CCompilerError; a missing MSVC is a PlatformError).
COMPILER_ERRORS = (CCompilerError, ExecError, PlatformError, OSError)


class BuildExt(build_ext):
    def run(self):
        # setuptools clears ``inplace`` while it builds (and copies the
        # modules into the source tree afterwards): remember what was asked
        self._asked_inplace = bool(self.inplace)
        super().run()

    def build_extensions(self):
        if not self.extensions:
            return
        may_fall_back = (PURE_PYTHON_MODE == "auto"
                         and not getattr(self, "_asked_inplace", self.inplace))
        if not _try_openmp(self.compiler, [], [], "int main(void) { return 0; }\n"):
            msg = (f"cypool: the C compiler ({self.compiler.compiler_type}) cannot "
                   "build a trivial C program")
            if not may_fall_back:
                raise RuntimeError(
                    msg + "; cannot build the compiled backend (install a C compiler, "
                    "or set CYPOOL_PURE_PYTHON=1 for the pure-Python install)")
            self._fall_back(msg)
            return
        self._configure()
        _cythonize(self.extensions)
        try:
            super().build_extensions()
        except COMPILER_ERRORS as exc:
            if not may_fall_back:
                raise
            self._fall_back(f"cypool: compiling the extension failed ({exc})")

    def _fall_back(self, reason):
        """Install without the extension: remove any module already built."""
        for ext in self.extensions:
            path = self.get_ext_fullpath(ext.name)
            if os.path.exists(path):
                os.remove(path)
        self.extensions = []
        _banner(reason + ".",
                "cypool: installing WITHOUT the compiled extension: the pure-NumPy",
                "cypool: reference backend will run (correct, but much slower).",
                "cypool: to get the fast kernels, install a C compiler (gcc, clang,",
                "cypool: MSVC) and reinstall with: pip install --no-cache-dir "
                "--force-reinstall cypool",
                "cypool: CYPOOL_PURE_PYTHON=0 makes this an error, =1 silences it.")

    def _configure(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            base = ["/O2"]
        else:
            # -O3 vectorises the inner loops; never -ffast-math (it deletes the
            # NaN tests of max pooling) and never -march=native in wheels.
            # -ffp-contract=off: no a*b+c fused behind the source's back in
            # the FMA variants (built with -mfma): every product and sum
            # rounds as the reference backend rounds it
            base = ["-O3", "-fno-math-errno", "-ffp-contract=off",
                    "-Wno-unused-function", "-Wno-unreachable-code"]
            if not _env_flag("CYPOOL_CYTHON_DEBUG"):
                # no debug information (Python's CFLAGS ask for -g): the
                # kernels' fused specialisations made it 90% of each module
                # and a third of the compile time
                base.append("-g0")
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
        if not self._x86_64_target():
            # the SIMD variants exist for x86-64 only (arm64 builds, also
            # macOS cross and universal2 builds, keep the baseline)
            self.extensions = [e for e in self.extensions
                               if getattr(e, "cypool_simd", None) is None]
        for ext in self.extensions:
            simd = getattr(ext, "cypool_simd", None)
            extra = []
            if simd is not None:
                extra = VARIANTS[simd][1 if ctype == "msvc" else 0]
            ext.extra_compile_args = (base + omp_c + extra
                                      + list(ext.extra_compile_args or []))
            ext.extra_link_args = omp_l + list(ext.extra_link_args or [])
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def _x86_64_target(self):
        plat = (self.plat_name or "").lower()
        archflags = os.environ.get("ARCHFLAGS", "")
        if sys.platform == "darwin":
            archs = archflags.replace("-arch", " ").split()
            if archs:
                return archs == ["x86_64"]
            return platform.machine() == "x86_64"
        if "arm" in plat or "aarch64" in plat:
            return False
        return platform.machine().lower() in ("x86_64", "amd64") or plat in (
            "win-amd64", "linux-x86_64")


def _cythonize(exts):
    """Translate the .pyx sources to C, in place (at build time: an sdist
    ships the .pyx sources, not generated C)."""
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
    translated = cythonize(list(exts), compiler_directives=directives,
                           nthreads=os.cpu_count() or 1, quiet=True)
    sources = {e.name: e.sources for e in translated}
    for e in exts:
        e.sources = sources[e.name]


def _extensions():
    if PURE_PYTHON:
        return []
    import numpy as np

    def ext(name, base, optional=False):
        return Extension(
            f"cypool._ext.{name}",
            [f"src/cypool/_ext/{name}.pyx"],
            include_dirs=[np.get_include(), "src/cypool/_ext"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            depends=[f"src/cypool/_ext/{base}.pyx", "src/cypool/_ext/omp_shim.h",
                     "src/cypool/_ext/small_kernels.h", "src/cypool/_ext/sep_kernels.h",
                     "src/cypool/_ext/pix3_kernels.h", "src/cypool/_ext/scatter_stream.h",
                     "src/cypool/_ext/pair_kernels.h", "src/cypool/_ext/avg3_kernels.h",
                     "src/cypool/_ext/omp_shim.pxd"],
            optional=optional,
        )

    only = [m.strip() for m in os.environ.get("CYPOOL_EXTENSIONS", "").split(",")
            if m.strip()]
    unknown = set(only) - set(KERNEL_MODULES)
    if unknown:
        sys.exit(f"CYPOOL_EXTENSIONS names unknown modules: {sorted(unknown)}")
    exts = []
    for base, variants in KERNEL_MODULES.items():
        if only and base not in only:
            continue
        exts.append(ext(base, base))
        if SIMD_VARIANTS and variants:
            for simd in VARIANTS:
                # optional: a compiler without these flags skips the variant
                exts.append(ext(f"{base}_{simd}", base, optional=True))
    for e in exts:
        suffix = e.name.rsplit("_", 1)[-1]
        e.cypool_simd = suffix if suffix in VARIANTS else None
    return exts


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildExt})
