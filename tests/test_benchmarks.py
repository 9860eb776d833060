"""The benchmark suite (benchmarks/bench_pool.py) runs: every case on tiny
inputs, its own NumPy peers compute the right thing, its options work.  No
timing is asserted."""

import importlib.util
import json
import pathlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cypool

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "bench_pool.py"

# tinybrain 1.x calls np.maximum(a, b, out) positionally (deprecated in NumPy 2.4)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:tinybrain.*")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pool", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_pool"] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("bench_pool", None)


@pytest.fixture(scope="module")
def smoke_run(bench, tmp_path_factory):
    """One ``--smoke`` run of every case (tiny inputs, one timed call each)."""
    d = tmp_path_factory.mktemp("bench")
    import contextlib
    import io
    buf = io.StringIO()
    threads_before = cypool.get_num_threads()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        rc = bench.main(["--smoke", "--json", str(d / "r.json"), "--plot", str(d / "r.png")])
    assert cypool.get_num_threads() == threads_before
    return rc, buf.getvalue(), d


def test_smoke_runs_every_case(bench, smoke_run):
    rc, out, d = smoke_run
    assert rc == 0
    doc = json.loads((d / "r.json").read_text())
    assert [c["case"] for c in doc["cases"]] == [c.name for c in bench.CASES]
    assert set(doc["copy_bandwidth"]) == {"1", "2"}
    assert all(v["gbps"] > 0 for v in doc["copy_bandwidth"].values())
    for case in doc["cases"]:
        assert f"| {case['case']} |" in out
        if "skipped" in case:  # an operator cypool does not have yet
            assert "not available yet" in case["skipped"]
            continue
        impls = {r["impl"] for r in case["rows"]}
        assert bench.CY in impls
        assert bench.CY_REF in impls  # tiny inputs: the reference is timed
        for r in case["rows"]:
            assert "mismatch" not in r, (case["case"], r)
            if "median_s" in r:
                assert r["median_s"] > 0 and r["gbps"] > 0 and r["pct_of_copy"] > 0
                assert r["threads"] in (1, 2)
        # single-threaded peers are timed once, threaded ones at 1 and 2 threads
        for r in case["rows"]:
            if r.get("single_threaded"):
                assert r["threads"] == 1
        if any(r["impl"] == bench.TH and "median_s" in r for r in case["rows"]):
            th = [r for r in case["rows"] if r["impl"] == bench.TH]
            assert sorted(r["threads"] for r in th) == [1, 2]
            assert all(r["torch_over_this"] == pytest.approx(1.0) for r in th)
    assert "## Summary" in out
    assert "## Targets of the performance issue" in out
    assert "| >= 10x PyTorch default | max k2s2 | 1 |" in out
    assert doc["targets_markdown"] in out


def test_smoke_run_has_the_expected_peers(bench, smoke_run):
    _, out, d = smoke_run
    doc = json.loads((d / "r.json").read_text())
    by_name = {c["case"]: c for c in doc["cases"]}
    impls = {r["impl"] for r in by_name["max k2s2"]["rows"]}
    assert {bench.CY, bench.CY_OUT, bench.NP_} <= impls
    if bench.torch is not None:
        assert {bench.TH, bench.TH_DNN, bench.TH_CL} <= impls
    if bench.skimage_block_reduce() is not None:
        assert bench.SK in impls
    if bench.tinybrain_module() is not None:
        assert bench.TB in impls
    # overlapping windows: no block_reduce / tinybrain, NumPy over taps
    impls3 = {r["impl"] for r in by_name["max k3s2p1"]["rows"]}
    assert bench.SK not in impls3 and bench.TB not in impls3 and bench.NP_ in impls3
    assert by_name["latency max k2s2 (1, 1, 2, 2)"]["calls_per_sample"] > 1
    assert "µs per call" in out


def test_ramp_cases_time_the_random_input_in_turns(bench, smoke_run):
    """The data-independence target compares the ramp with the random input
    timed round-robin in the same case (not with another case, minutes
    apart); that row is not compared with the ramp's result."""
    _, out, d = smoke_run
    doc = json.loads((d / "r.json").read_text())
    by_name = {c["case"]: c for c in doc["cases"]}
    for name in ("max k2s2 ramp", "max k3s2p1 ramp"):
        rows = [r for r in by_name[name]["rows"] if r["impl"] == bench.CY_RAND]
        assert sorted(r["threads"] for r in rows) == [1, 2]
        assert all("median_s" in r and "mismatch" not in r for r in rows)
        assert f"| ramp within 10 % of random | {name}: ramp vs random input, timed in turns |" in out
    assert not any(r["impl"] == bench.CY_RAND for r in by_name["max k2s2"]["rows"])


def test_plot_written(smoke_run):
    pytest.importorskip("matplotlib")
    _, _, d = smoke_run
    assert (d / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib(bench, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert bench.plot([], [1], str(tmp_path / "p.png")) is False
    assert "matplotlib is not installed" in capsys.readouterr().out
    assert not (tmp_path / "p.png").exists()


def test_case_selection(bench):
    quick = bench.select_cases(bench.parse_args(["--quick"]))
    assert quick and all(c.in_quick for c in quick) and len(quick) < len(bench.CASES)
    sel = bench.select_cases(bench.parse_args(["--cases", "backward,ramp"]))
    assert {c.name for c in sel} == {"max k2s2 ramp", "max k3s2p1 ramp",
                                     "max k3s2p1 backward", "avg k2s2 backward"}
    args = bench.parse_args(["--smoke"])
    assert (args.sizes, args.repeat, args.warmup) == ("tiny", 1, 1)
    assert bench.parse_args([]).threads == [1, 2]
    with pytest.raises(SystemExit):
        bench.parse_args(["--threads", "0"])


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0), (3, 3, 1), (4, 3, 2)])
def test_numpy_peers_match_torch(bench, op, k, s, p):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = np.random.default_rng(k * 10 + s + p).standard_normal((2, 3, 9, 10)).astype(np.float32)
    want = getattr(F, f"{op}_pool2d")(torch.from_numpy(x), k, s, p).numpy()
    got = bench.np_taps(x, op, (k, k), (s, s), (p, p), (2, 3))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    if k == s and p == 0:
        got = bench.np_nonoverlap(x, op, (k, k), (2, 3))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # channels-last axes
    xl = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    got = bench.np_taps(xl, op, (k, k), (s, s), (p, p), (1, 2))
    np.testing.assert_allclose(np.moveaxis(got, -1, 1), want, rtol=1e-5, atol=1e-6)


def test_integer_average_peer_truncates(bench):
    x = np.array([[[[1, 2], [2, 2]]]], dtype=np.uint8)  # mean 7/4
    assert bench.np_nonoverlap(x, "avg", (2, 2), (2, 3)).tolist() == [[[[1]]]]


def test_copy_bandwidth_baseline(bench):
    res = bench.copy_bandwidth([1, 2], repeat=2, mib=4)
    assert set(res) == {1, 2} and all(len(v) == 2 and min(v) > 0 for v in res.values())


def test_command_line(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--cases", "max k2s2,global",
                        "--threads", "1", "--json", str(tmp_path / "x.json")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "| max k2s2 | 1 | cypool |" in r.stdout
    doc = json.loads((tmp_path / "x.json").read_text())
    assert doc["args"]["threads"] == [1]
    r = subprocess.run([sys.executable, str(SCRIPT), "--cases", "no such case"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 2 and "no case matches" in r.stderr


def test_strides_benchmark_smoke():
    """benchmarks/bench_strides.py runs, checks every view's result against
    the contiguous one, and prints a row per (operation, view, threads)."""
    script = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_strides.py"
    r = subprocess.run([sys.executable, str(script), "--smoke", "--threads", "1", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| max") or line.startswith("| avg")]
    assert len(rows) == 3 * 7 * 2
    assert any("Fortran order" in line for line in rows)
