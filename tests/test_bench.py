"""Smoke tests of the benchmark scripts (timings are never asserted; only that the report is
complete and self-consistent, and that bad arguments are one-line errors)."""

import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gru_jax import cli

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def load(name):
    """The module ``benchmarks.<name>``. The repository root need not be on ``sys.path`` (it is
    not under ``pytest``), so the package is registered from its folder, as ``gru-jax bench``
    does."""
    if "benchmarks" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "benchmarks", BENCH / "__init__.py", submodule_search_locations=[str(BENCH)]
        )
        sys.modules["benchmarks"] = package = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(package)
    return importlib.import_module(f"benchmarks.{name}")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick"
    argv = ["bench", "--quick", "--shapes", "2x6x3x4", "--impls", "gru_jax,gru_jax_rb,equinox"]
    assert cli.main([*argv, "--repeats", "2", "--out", str(out)]) == 0
    return out


def test_bench_report_is_complete(report):
    data = json.loads(report.with_suffix(".json").read_text())
    assert report.with_suffix(".md").exists() and report.with_suffix(".png").exists()
    assert data["machine"]["versions"]["jax"] and data["matmul_peak_gflops"] > 0
    res = data["results"]["2, 6, 3, 4"]
    assert set(res) == {"gru_jax", "gru_jax_rb", "equinox"}
    for mode in ("fwd", "fwdbwd"):
        peer = res["equinox"][mode]["median_ms"]
        for entry in (res[name][mode] for name in res):
            assert len(entry["samples_ms"]) == 2
            assert entry["min_ms"] <= entry["median_ms"] <= entry["max_ms"]
            assert entry["speedup_vs_fastest_peer"] == pytest.approx(peer / entry["median_ms"])
            assert entry["peak_memory_bytes"] > 0
    remat = data["remat"]
    assert remat["memory_ratio"] == pytest.approx(
        remat["remat"]["peak_bytes"] / remat["no_remat"]["peak_bytes"]
    )
    assert "| 2, 6, 3, 4 |" in report.with_suffix(".md").read_text()


def test_floor_reads_the_report(report, tmp_path, capsys):
    floor = load("floor")
    out = tmp_path / "floor.json"
    assert (
        floor.main(
            ["--report", str(report.with_suffix(".json")), "--repeats", "1", "--out", str(out)]
        )
        == 0
    )
    (row,) = json.loads(out.read_text())["rows"]
    assert row["floor_ms"] == pytest.approx(row["recurrent_ms"] + row["projection_at_peak_ms"])
    assert row["fastest_peer"] == "equinox"
    assert "| 2, 6, 3, 4 |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "run",
    [
        lambda: cli.main(["bench", "--shapes", "1x2"]),
        lambda: cli.main(["bench", "--repeats", "0"]),
        lambda: cli.main(["bench", "--impls", "gru_jax,nope"]),
        lambda: load("floor").main(["--report", "/nonexistent.json"]),
    ],
    ids=["shape", "repeats", "impls", "floor-report"],
)
def test_bad_arguments_are_one_line(run, capsys):
    try:
        code = run()
    except SystemExit as e:
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err, err


def test_bench_resets_report_is_complete(tmp_path, capsys):
    bench_resets = load("bench_resets")
    out = tmp_path / "resets.json"
    argv = ["--shapes", "2x6x3x4", "--repeats", "2", "--min-time", "0.001", "--out", str(out)]
    assert bench_resets.main(argv) == 0
    data = json.loads(out.read_text())
    assert out.with_suffix(".md").exists()
    for variant in ("reset_after=True", "reset_after=False"):
        modes = data["results"][f"2x6x3x4 {variant}"]
        for mode in ("fwd", "fwdbwd"):
            cases = modes[mode]
            assert set(cases) == set(bench_resets.CASES)
            assert cases["plain"]["ratio_to_plain"] == 1.0
            for c in cases.values():
                assert c["min_ms"] <= c["median_ms"] <= c["max_ms"]
                plain = cases["plain"]["median_ms"]
                assert c["ratio_to_plain"] == pytest.approx(c["median_ms"] / plain)
    assert bench_resets.main(["--shapes", "2x6x3"]) == 2
    assert capsys.readouterr().err.strip().startswith("bench_resets: error: a shape is BxTxIxH")


def test_bench_export_report_is_complete(tmp_path, capsys):
    bench_export = load("bench_export")
    out = tmp_path / "export.json"
    argv = ["--shapes", "2x6x3x4", "--repeats", "2", "--min-time", "0.001", "--out", str(out)]
    assert bench_export.main(argv) == 0
    data = json.loads(out.read_text())
    assert "export b,t" in out.with_suffix(".md").read_text()
    for variant in ("reset_after=True", "reset_after=False"):
        cases = data["results"][f"2x6x3x4 {variant}"]
        assert set(cases) == set(bench_export.CASES) and cases["jit"]["ratio_to_jit"] == 1.0
        for c in cases.values():
            assert c["min_ms"] <= c["median_ms"] <= c["max_ms"]
    assert bench_export.main(["--repeats", "0"]) == 2
    assert capsys.readouterr().err.strip() == "bench_export: error: --repeats must be >= 1"


def test_interleave_rotates_the_order_and_times_after_last():
    harness = load("harness")
    order = []
    cases = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = harness.interleave(cases, 3, 0.0, after={"peak": lambda: order.append("peak")})
    # calibration: two calls each; then one call per sample, rotated, "peak" last in each repeat
    assert order[:8] == ["a", "a", "b", "b", "c", "c", "peak", "peak"]
    assert order[8:] == [*"abc", "peak", *"bca", "peak", *"cab", "peak"]
    assert list(times) == [*"abc", "peak"]
    for t in times.values():
        assert t.calls == 1 and len(t.wall) == len(t.cpu) == 3
        s = t.summary(digits=3)
        assert s["min_ms"] <= s["median_ms"] <= s["max_ms"] and len(s["samples_ms"]) == 3


@pytest.mark.parametrize("form", ["script", "module"])
def test_scripts_run_as_files_and_as_modules(form):
    """``python benchmarks/floor.py`` and ``python -m benchmarks.floor`` both find the harness
    and ``bench.py`` (the bad report fails before JAX is imported)."""
    target = [str(BENCH / "floor.py")] if form == "script" else ["-m", "benchmarks.floor"]
    done = subprocess.run(
        [sys.executable, *target, "--report", "/nonexistent.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("floor.py: error: --report /nonexistent.json"), done.stderr
