"""Packaging checks: the sdist, the wheel built from it, fresh installs, the
pure-Python and compiler-failure installs, cibuildwheel's build list and the
GitHub workflows.

These build and install cypool in fresh virtual environments (about three
minutes on two cores), so they carry the ``packaging`` marker: deselect them
with ``-m "not packaging"``.  The sdist is built once per session and the wheel
once, from that sdist (so the sdist is known to be complete); the wheel build
runs in the background while the pure-Python and fallback installs run.

A check whose tool is missing (``pip install -e ".[packaging]"`` installs them
all) is skipped with the reason during development, but fails under ``CI=true``.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile

import pytest

pytestmark = pytest.mark.packaging

ROOT = pathlib.Path(__file__).resolve().parents[1]
UNDER_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")
ON_LINUX = sys.platform.startswith("linux")
X86_64 = platform.machine().lower() in ("x86_64", "amd64")
BUILD_TIMEOUT = 1200

# The wheels cibuildwheel is meant to build (pyproject.toml [tool.cibuildwheel]
# and the matrix of .github/workflows/wheels.yml).
PYTHONS = ["cp310", "cp311", "cp312", "cp313", "cp314", "cp315", "cp314t", "cp315t"]
INTENDED_BUILDS = {
    "linux": {f"{py}-{libc}_{arch}" for py in PYTHONS
              for libc in ("manylinux", "musllinux") for arch in ("x86_64", "aarch64")},
    "macos": {f"{py}-macosx_{arch}" for py in PYTHONS for arch in ("x86_64", "arm64")},
    "windows": {f"{py}-win_amd64" for py in PYTHONS},
}
WORKFLOW_OS = {"linux": "ubuntu", "macos": "macos", "windows": "windows"}

# Nothing of these may be in the wheel: sources, generated C, build outputs.
WHEEL_JUNK = re.compile(
    r"(\.pyx|\.pxd|\.c|\.cpp|\.h|\.html|\.o|\.obj|\.pyc|\.orig|\.rej)$"
    r"|(^|/)(__pycache__|build|tests|\.git|\.hypothesis|\.venv)/")


# ----------------------------------------------------------------- helpers

def _need_module(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"the Python module {name!r}")


def _need_command(name):
    path = shutil.which(name, path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if path is None:
        _missing(f"the command {name!r}")
    return path


def _missing(what):
    msg = (f"{what} is not installed (pip install -e \".[packaging]\" installs the "
           "packaging tools)")
    if UNDER_CI:
        pytest.fail(msg + "; CI=true: the packaging checks must run")
    pytest.skip(msg)


def _env(**extra):
    """The environment of a build or install: none of cypool's switches
    leaks in from the caller, only those given here."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CYPOOL_", "CIBW_", "PYTHON", "PIP_REQUIRE_VIRTUALENV"))
           and k not in ("CC", "CXX", "LDSHARED", "CFLAGS", "LDFLAGS", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONNOUSERSITE="1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(cmd, *, env=None, cwd=None, ok=True, timeout=BUILD_TIMEOUT):
    proc = subprocess.run([str(c) for c in cmd], env=env or _env(), cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    if ok and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                    f"{proc.stdout[-6000:]}")
    return proc


def _kernel_modules():
    """``KERNEL_MODULES`` of setup.py: {module: built in SIMD variants}."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "KERNEL_MODULES"):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no KERNEL_MODULES dict")


def _simd_variants():
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "VARIANTS"):
            return [k.value for k in node.value.keys]
    raise AssertionError("setup.py defines no VARIANTS dict")


def _version():
    ns = {}
    exec((ROOT / "src/cypool/_version.py").read_text(), ns)
    return ns["__version__"]


class Venv:
    """A fresh virtual environment; packages go in with this interpreter's
    pip (``pip --python``), which saves bootstrapping pip into each one."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        _run([sys.executable, "-m", "venv", "--without-pip", self.path])
        bindir = "Scripts" if os.name == "nt" else "bin"
        self.python = self.path / bindir / ("python.exe" if os.name == "nt" else "python")

    def pip(self, *args, ok=True, **env):
        return _run([sys.executable, "-m", "pip", "--python", self.python, *args],
                    env=_env(**env), ok=ok)

    def run(self, code, ok=True, cwd=None, **env):
        return _run([self.python, "-c", textwrap.dedent(code)], env=_env(**env),
                    ok=ok, cwd=cwd)

    def site_package(self):
        out = self.run("import cypool, os; print(os.path.dirname(cypool.__file__))")
        return pathlib.Path(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="session")
def sdist(work):
    """``python -m build --sdist`` of the checkout (seconds: no compiling)."""
    _need_module("build")
    out = work / "sdist"
    _run([sys.executable, "-m", "build", "--sdist", "--outdir", out, ROOT])
    (path,) = out.glob("cypool-*.tar.gz")
    return path


class _WheelBuild:
    """``pip wheel`` of the sdist (a normal build: OpenMP required, SIMD
    variants on x86-64), started in the background when first asked for."""

    def __init__(self, sdist, out):
        self.out = out
        self.log_path = out / "wheel-build.log"
        out.mkdir(exist_ok=True)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
             "--wheel-dir", str(out), str(sdist)],
            env=_env(CYPOOL_OPENMP="1", CYPOOL_PURE_PYTHON="0"),
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT)

    def wait(self):
        try:
            rc = self.proc.wait(timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        log = self.log_path.read_text(errors="replace")
        if rc != 0:
            pytest.fail(f"building the wheel from the sdist failed:\n{log[-8000:]}")
        (wheel,) = self.out.glob("cypool-*.whl")
        return wheel, log


@pytest.fixture(scope="session")
def wheel_build(sdist, work):
    build = _WheelBuild(sdist, work / "wheel")
    yield build
    if build.proc.poll() is None:
        build.proc.kill()
        build.proc.wait()


@pytest.fixture(scope="session")
def wheel(wheel_build):
    return wheel_build.wait()[0]


@pytest.fixture(scope="session")
def wheel_log(wheel_build):
    return wheel_build.wait()[1]


# -------------------------------------------- sdist (the wheel builds meanwhile)

def test_sdist_contents(sdist, wheel_build):
    version = _version()
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        pkg_info = tar.extractfile(f"cypool-{version}/PKG-INFO").read().decode()
    assert sdist.name == f"cypool-{version}.tar.gz"
    required = {"pyproject.toml", "setup.py", "MANIFEST.in", "LICENSE", "README.md",
                "src/cypool/__init__.py", "src/cypool/py.typed",
                "src/cypool/_version.py", "src/cypool/_ext/omp_shim.h",
                "tests/conftest.py"}
    # every header and declaration file the kernels include or cimport
    ext_dir = ROOT / "src" / "cypool" / "_ext"
    required |= {f"src/cypool/_ext/{f.name}" for f in ext_dir.iterdir()
                 if f.suffix in (".h", ".pxd")}
    for base, variants in _kernel_modules().items():
        required.add(f"src/cypool/_ext/{base}.pyx")
        required.add(f"src/cypool/_ext/{base}.pyi")
        if variants:
            required |= {f"src/cypool/_ext/{base}_{v}.pyx" for v in _simd_variants()}
    assert required <= names, sorted(required - names)
    junk = sorted(n for n in names
                  if re.search(r"\.(so|pyd|dylib|o|obj|pyc)$", n)
                  or re.search(r"^src/cypool/_ext/.*\.(c|html)$", n)
                  or re.match(r"(build|dist|\.venv|\.git|\.hypothesis|benchmarks/results)/", n)
                  or "__pycache__" in n)
    assert not junk, junk
    assert f"\nVersion: {version}\n" in pkg_info
    assert "\nRequires-Python: >=3.10\n" in pkg_info
    assert "\nLicense-Expression: BSD-3-Clause\n" in pkg_info


def test_pure_python_install(work, sdist):
    """``CYPOOL_PURE_PYTHON=1 pip install .``: no compiler involved, the
    reference backend runs, and a smoke subset of the test suite passes."""
    venv = Venv(work / "venv-pure")
    venv.pip("install", f"{ROOT}[test]", CYPOOL_PURE_PYTHON="1")
    pkg = venv.site_package()
    assert pkg.is_relative_to(venv.path), pkg
    compiled = [p.name for p in (pkg / "_ext").iterdir()
                if p.suffix in (".so", ".pyd", ".dylib", ".dll")]
    assert compiled == []
    assert (pkg / "py.typed").exists()
    report = venv.run("""
        import json, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import cypool
        import numpy as np
        x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        print(json.dumps({
            "backend": cypool.get_backend(),
            "available": cypool.available_backends(),
            "openmp": cypool.openmp_enabled(),
            "warnings": [w.category.__name__ for w in caught],
            "max": cypool.max_pool2d(x, 2).ravel().tolist(),
        }))
    """)
    info = json.loads(report.stdout.strip().splitlines()[-1])
    assert info["backend"] == "reference"
    assert info["available"] == ["reference"]
    assert info["openmp"] is False
    assert info["warnings"] == ["CypoolFallbackWarning"]
    assert info["max"] == [5.0, 7.0, 13.0, 15.0]
    cli = _run([venv.python, "-m", "cypool"], env=_env())
    assert "backend in use:      reference" in cli.stdout
    # the smoke subset of the real tests, against this install
    smoke = ["tests/test_semantics_examples.py", "tests/test_errors.py",
             "tests/test_backend.py", "tests/test_packaging_runtime.py"]
    smoke = [t for t in smoke if (ROOT / t).exists()]
    res = _run([venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "-m", "not packaging and not large and not slow",
                # the annotation check is about the sources, not this install
                "-k", "not public_api_is_annotated", *smoke],
               cwd=ROOT, ok=False,
               env=_env(CYPOOL_ALLOW_REFERENCE_ONLY="1", HYPOTHESIS_PROFILE="repro"))
    assert res.returncode == 0, res.stdout[-6000:]
    assert re.search(r"\d+ passed", res.stdout), res.stdout[-2000:]


@pytest.mark.skipif(os.name == "nt", reason="CC=false is a POSIX compiler setting")
def test_missing_compiler_falls_back_to_pure_python(work, sdist):
    """A compiler that cannot build anything: the default install still
    works, says loudly why it has no kernels, and runs the reference backend."""
    venv = Venv(work / "venv-nocc")
    res = venv.pip("install", "-v", "--no-cache-dir", sdist, CC="false")
    assert "cannot build a trivial C program" in res.stdout
    assert "installing WITHOUT the compiled extension" in res.stdout
    pkg = venv.site_package()
    assert not [p for p in (pkg / "_ext").iterdir() if p.suffix in (".so", ".pyd")]
    out = venv.run("import cypool; print(cypool.get_backend())", CYPOOL_BACKEND="")
    assert out.stdout.strip().splitlines()[-1] == "reference"
    assert "CypoolFallbackWarning" in out.stdout


@pytest.mark.skipif(os.name == "nt", reason="CC=false is a POSIX compiler setting")
def test_missing_compiler_is_an_error_when_fallback_is_off(work, sdist):
    res = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir",
                "--wheel-dir", work / "strict", sdist],
               env=_env(CC="false", CYPOOL_PURE_PYTHON="0"), ok=False)
    assert res.returncode != 0
    assert "cannot build a trivial C program" in res.stdout
    assert "CYPOOL_PURE_PYTHON=1" in res.stdout
    assert not list((work / "strict").glob("*.whl")) if (work / "strict").exists() else True


@pytest.mark.skipif(os.name == "nt", reason="uses a POSIX shell script as CC")
def test_failing_extension_compile_falls_back(work, sdist):
    """The compiler works (the probe passes) but fails on the extension's C:
    the wheel comes out without any compiled module, and the log says why."""
    cc = work / "cc-failing-on-cypool"
    real = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
    if real is None:
        _missing("a C compiler")
    cc.write_text(f'#!/bin/sh\ncase "$*" in *cypool/_ext/*) echo "cc: refusing $*" >&2; '
                  f'exit 1;; esac\nexec {real} "$@"\n')
    cc.chmod(0o755)
    out = work / "fallback-wheel"
    res = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir",
                "--wheel-dir", out, sdist],
               env=_env(CC=cc, CYPOOL_SIMD_VARIANTS="0", CYPOOL_EXTENSIONS="_pool"))
    assert "compiling the extension failed" in res.stdout
    (whl,) = out.glob("cypool-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert "cypool/__init__.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))], names


# --------------------------------------------------- cibuildwheel, workflows

def _pinned_cibuildwheel():
    text = (ROOT / "pyproject.toml").read_text()
    m = re.search(r'"cibuildwheel==([0-9.]+)"', text)
    assert m, "pyproject.toml pins no cibuildwheel version in the packaging extra"
    return m.group(1)


def _cibw_identifiers(platform_, archs=None):
    cmd = [sys.executable, "-m", "cibuildwheel", "--print-build-identifiers",
           "--platform", platform_]
    if archs:
        cmd += ["--archs", archs]
    res = _run(cmd, cwd=ROOT, env=_env(), timeout=120)
    return {line.strip() for line in res.stdout.splitlines() if line.strip()}


@pytest.mark.parametrize("platform_", ["linux", "macos", "windows"])
def test_cibuildwheel_build_identifiers(platform_):
    cibw = _need_module("cibuildwheel")
    version = getattr(cibw, "__version__", None)
    assert version == _pinned_cibuildwheel(), version
    assert _cibw_identifiers(platform_) == INTENDED_BUILDS[platform_]


def _workflow(name):
    yaml = _need_module("yaml")
    return yaml.safe_load((ROOT / ".github/workflows" / name).read_text())


def _on(doc):
    return doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as True


def test_wheels_workflow_builds_the_intended_list():
    wf = _workflow("wheels.yml")
    jobs = wf["jobs"]
    assert {"build_wheels", "build_sdist", "upload_pypi"} <= set(jobs)
    build = jobs["build_wheels"]
    steps = build["steps"]
    cibw = [s for s in steps if str(s.get("uses", "")).startswith("pypa/cibuildwheel@")]
    assert len(cibw) == 1
    assert cibw[0]["uses"] == f"pypa/cibuildwheel@v{_pinned_cibuildwheel()}"
    assert any(str(s.get("uses", "")).startswith("actions/upload-artifact@") for s in steps)
    matrix = build["strategy"]["matrix"]["include"]
    # every job's share of the build list, and together exactly the list
    for platform_, prefix in WORKFLOW_OS.items():
        rows = [r for r in matrix if r["os"].startswith(prefix)]
        assert rows, f"no wheel job on {platform_}"
        got = set()
        for r in rows:
            share = _cibw_identifiers(platform_, r["archs"])
            assert share, r
            assert not (share & got), f"{r} builds wheels another job builds"
            got |= share
        assert got == INTENDED_BUILDS[platform_], sorted(got ^ INTENDED_BUILDS[platform_])
    sdist = jobs["build_sdist"]
    assert any("build --sdist" in str(s.get("run", "")) for s in sdist["steps"])


def test_wheels_workflow_publishes_by_trusted_publishing():
    wf = _workflow("wheels.yml")
    pub = wf["jobs"]["upload_pypi"]
    assert set(pub["needs"]) == {"build_wheels", "build_sdist"}
    assert pub["permissions"] == {"id-token": "write"}
    assert "refs/tags/" in pub["if"]
    assert wf["permissions"] == {"contents": "read"}
    uses = [s.get("uses", "") for s in pub["steps"]]
    assert any(u.startswith("pypa/gh-action-pypi-publish@") for u in uses)
    text = (ROOT / ".github/workflows/wheels.yml").read_text()
    assert "password" not in text and "secrets." not in text
    assert "tags" in _on(wf)["push"]


def test_tests_workflow_jobs():
    wf = _workflow("tests.yml")
    on = _on(wf)
    assert "push" in on and "pull_request" in on
    jobs = wf["jobs"]
    test = jobs["test"]
    matrix = test["strategy"]["matrix"]
    assert {o.split("-")[0] for o in matrix["os"]} == {"ubuntu", "macos", "windows"}
    assert {"3.10", "3.11", "3.12", "3.13", "3.14"} <= set(matrix["python"])
    assert jobs["reference-backend"]["env"]["CYPOOL_BACKEND"] == "reference"
    assert jobs["pure-python"]["env"]["CYPOOL_PURE_PYTHON"] == "1"
    assert jobs["cython-debug"]["env"]["CYPOOL_CYTHON_DEBUG"] == "1"
    assert any("-m packaging" in str(s.get("run", ""))
               for s in jobs["packaging"]["steps"])
    assert wf["env"]["CYPOOL_OPENMP"] == "1"
    for name, job in jobs.items():
        runs = " ".join(str(s.get("run", "")) for s in job["steps"])
        assert "pytest" in runs, name


def test_workflows_match_the_github_schema():
    _need_command("check-jsonschema")
    files = sorted((ROOT / ".github/workflows").glob("*.yml"))
    assert {f.name for f in files} >= {"tests.yml", "wheels.yml"}
    res = _run([_need_command("check-jsonschema"), "--builtin-schema",
                "vendor.github-workflows", *files], timeout=120)
    assert "ok" in res.stdout


def test_readme_test_command_installs_the_packaging_tools():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- test-command -->\s*```[a-z]*\n(.+?)\n```", text, re.S)
    assert m, "README.md has no test-command block"
    cmd = m.group(1)
    assert "\n" not in cmd.strip()
    extras = re.search(r'\.\[([a-z,]+)\]', cmd)
    assert extras and {"test", "packaging"} <= set(extras.group(1).split(",")), cmd
    assert "python -m pytest" in cmd


# ------------------------------------------------------------------ the wheel

def test_wheel_contents(wheel):
    version = _version()
    names = zipfile.ZipFile(wheel).namelist()
    assert wheel.name.startswith(f"cypool-{version}-cp{sys.version_info[0]}{sys.version_info[1]}-")
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"cypool", f"cypool-{version}.dist-info"}, tops
    junk = sorted(n for n in names if WHEEL_JUNK.search(n))
    assert not junk, junk
    required = {"cypool/__init__.py", "cypool/py.typed", "cypool/_version.py",
                "cypool/_ext/__init__.py", f"cypool-{version}.dist-info/licenses/LICENSE"}
    assert required <= set(names), sorted(required - set(names))
    compiled = {n.split("/")[-1].split(".")[0] for n in names
                if n.startswith("cypool/_ext/") and n.endswith((".so", ".pyd"))}
    expected = set()
    for base, variants in _kernel_modules().items():
        expected.add(base)
        if variants and X86_64:
            expected |= {f"{base}_{v}" for v in _simd_variants()}
    assert compiled == expected, (sorted(compiled), sorted(expected))
    stubs = {n.split("/")[-1][:-4] for n in names
             if n.startswith("cypool/_ext/") and n.endswith(".pyi")}
    assert compiled <= stubs, sorted(compiled - stubs)
    meta = zipfile.ZipFile(wheel).read(f"cypool-{version}.dist-info/METADATA").decode()
    assert "Description-Content-Type: text/markdown" in meta
    assert "Requires-Dist: numpy" in meta


def test_wheel_build_flags(wheel_log):
    """OpenMP compiled in, no host-specific optimisation flags."""
    assert "-march=native" not in wheel_log and "-mtune=native" not in wheel_log
    assert "-ffast-math" not in wheel_log
    if ON_LINUX:
        assert "-fopenmp" in wheel_log
    assert "building the compiled backend SERIAL" not in wheel_log


def test_twine_check(sdist, wheel):
    _need_module("twine")
    res = _run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel])
    assert res.stdout.count("PASSED") == 2, res.stdout


@pytest.mark.skipif(not ON_LINUX, reason="auditwheel inspects Linux wheels")
def test_auditwheel_show(wheel, work):
    auditwheel = _need_command("auditwheel")
    res = _run([auditwheel, "show", wheel])
    (work / "auditwheel-show.txt").write_text(res.stdout)
    print(res.stdout)
    text = " ".join(res.stdout.split())
    # the OpenMP runtime is the one external library to graft into the wheel
    assert "libgomp" in text, res.stdout
    # a wheel built here is tagged linux_<arch>; auditwheel names the
    # manylinux/musllinux policy its symbol versions allow (cibuildwheel's
    # images build for manylinux_2_28 / musllinux_1_2 and graft libgomp)
    assert re.search(r"(many|musl)linux_\d+_\d+_", text), res.stdout


def test_install_from_sdist_in_a_fresh_venv(work, wheel):
    """The wheel pip built from the sdist, installed into a fresh venv: the
    compiled backend loads with OpenMP and agrees with the reference."""
    venv = Venv(work / "venv-sdist")
    venv.pip("install", wheel)
    info = json.loads(venv.run(f"""
        import importlib, json, os, warnings
        warnings.simplefilter("error")
        import numpy as np, cypool
        from cypool import _compiled
        for m in {sorted(_kernel_modules())!r}:
            importlib.import_module("cypool._ext." + m)
        x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
        with cypool.num_threads(2):
            y = cypool.max_pool2d(x, 2)
        print(json.dumps({{
            "file": cypool.__file__, "version": cypool.__version__,
            "backend": cypool.get_backend(), "openmp": cypool.openmp_enabled(),
            "simd": _compiled.simd, "max": y.ravel().tolist(),
        }}))
    """).stdout.strip().splitlines()[-1])
    assert pathlib.Path(info["file"]).is_relative_to(venv.path)
    assert info["version"] == _version()
    assert info["backend"] == "compiled"
    assert info["max"] == [5.0, 7.0, 13.0, 15.0]
    if ON_LINUX:
        assert info["openmp"] is True
    check = _run([venv.python, "-m", "cypool", "-q"], env=_env())
    assert "self-check passed" in check.stdout, check.stdout
