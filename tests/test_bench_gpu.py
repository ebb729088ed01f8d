"""benchmarks/bench_gpu.py without running it (CI runs its dry run from .ci/run): the shapes of
issue 24, the report's Markdown from a fake result, the aims' verdicts and torch's reset loop."""

import subprocess
import sys

import numpy as np
import pytest
from test_bench import ROOT, load

bench_gpu = load("bench_gpu")


def fake_row(shape, dtype="float32", mode="fwdbwd", override=None, error_in=None):
    times = {"xla": 3.0, "pallas": 1.0, "flax": 5.0, "torch": 0.8}
    times |= {"pallas_resets": 1.05, "torch_resets": 4.0} | (override or {})
    cells = {
        c: {"median_ms": t, "min_ms": 0.9 * t, "max_ms": 1.1 * t, "samples_ms": [t]}
        for c, t in times.items()
    }
    if error_in:
        cells[error_in] = {"error": "RuntimeError: Triton compile failed | line 2\nmore"}
    check = {"pallas_vs_xla": 1e-6, "pallas_resets_vs_xla_resets": 2e-6} if mode == "fwd" else {}
    row = {"shape": list(shape), "dtype": dtype, "mode": mode, "cells": cells, "check": check}
    return row | {"ratios": bench_gpu.ratios(cells)}


def fake_report(rows):
    return {
        "command": "python benchmarks/bench_gpu.py --out x",
        "commit": "abc1234",
        "load_before": [0.1, 0.1, 0.1],
        "load_after": [0.2, 0.1, 0.1],
        "dry_run": False,
        "device": "NVIDIA H100 80GB HBM3",
        "torch_device": "cuda",
        "versions": {"jax": "0.11", "jaxlib": "0.11", "flax": "0.12", "torch": "2.13"}
        | {"cudnn_torch": 91000, "cudnn_jax": 91000},
        "settings": {"repeats": 5},
        "rows": rows,
        "aims": bench_gpu.evaluate_aims(rows),
        "wall_seconds": 300.0,
    }


def test_the_shapes_dtypes_modes_and_columns_are_the_issues():
    assert bench_gpu.SHAPES == (
        (1, 512, 32, 128),
        (64, 128, 128, 256),
        (32, 256, 64, 512),
        (8, 4096, 128, 128),
        (256, 64, 256, 256),
    )
    assert bench_gpu.AIM_SHAPES == ((64, 128, 128, 256), (8, 4096, 128, 128))
    assert bench_gpu.DTYPES == ("float32", "bfloat16") and bench_gpu.MODES == ("fwd", "fwdbwd")
    assert bench_gpu.COLUMNS == ("xla", "pallas", "flax", "torch", "pallas_resets", "torch_resets")
    assert bench_gpu.RESET_RATE == 0.05
    assert set(bench_gpu.RATIOS) == {
        "pallas/xla",
        "pallas/flax",
        "pallas/torch",
        "pallas_resets/pallas",
        "pallas_resets/torch_resets",
    }


def test_markdown_has_every_column_ratio_aim_and_error():
    rows = [fake_row((64, 128, 128, 256), mode="fwd"), fake_row((64, 128, 128, 256))]
    rows.append(fake_row((8, 4096, 128, 128), error_in="pallas"))
    text = bench_gpu.markdown(fake_report(rows))
    tables = [line for line in text.splitlines() if line.startswith("| B, T, I, H |")]
    assert len(tables) == 3
    labels = [bench_gpu.LABELS[c] for c in bench_gpu.COLUMNS]
    assert tables[0] == "| " + " | ".join(["B, T, I, H", "dtype", "mode", *labels]) + " |"
    checks = [*bench_gpu.RATIOS, *bench_gpu.CHECKS]
    assert tables[1] == "| " + " | ".join(["B, T, I, H", "dtype", "mode", *checks]) + " |"
    assert (
        "| 64, 128, 128, 256 | float32 | fwdbwd | 3.000 [2.700-3.300] | 1.000 [0.900-1.100] |"
        in text
    )
    # pallas/xla, pallas/flax, pallas/torch, resets/pallas, resets/torch_resets, no checks
    assert (
        "| 64, 128, 128, 256 | float32 | fwdbwd | 0.33 | 0.20 | 1.25 | 1.05 | 0.26 | n/a | n/a |"
        in text
    )
    assert (
        "| 8, 4096, 128, 128 | float32 | fwdbwd | 3.000 [2.700-3.300] | error: RuntimeError: Triton compile failed / line 2 |"
        in text
    )
    assert "NVIDIA H100 80GB HBM3" in text and "cuDNN 91000 (torch)" in text
    assert "## Aims" in text and "## Errors" in text
    assert "- (8, 4096, 128, 128) float32 forward+backward, pallas: RuntimeError: Triton" in text


def test_aims_say_met_missed_or_unknown():
    rows = [fake_row((64, 128, 128, 256)), fake_row((8, 4096, 128, 128))]
    rows.append(fake_row((1, 512, 32, 128), "bfloat16", override={"torch": 0.5}))
    aims = {a["ratio"]: a for a in bench_gpu.evaluate_aims(rows)}
    # xla/pallas = 3 and flax/pallas = 5 at both aim shapes (the bfloat16 row is not covered)
    assert aims["pallas/xla"]["verdict"] == "met" and len(aims["pallas/xla"]["rows"]) == 2
    assert aims["pallas/flax"]["verdict"] == "met"
    assert aims["pallas/flax"]["rows"][0]["value"] == pytest.approx(5.0)
    # pallas/torch is 1.25 twice, then 2.0 in bfloat16
    assert aims["pallas/torch"]["verdict"] == "missed"
    assert [r["met"] for r in aims["pallas/torch"]["rows"]] == [True, True, False]
    assert aims["pallas_resets/pallas"]["verdict"] == "met"
    rows[0]["cells"]["xla"] = {"error": "boom"}
    rows[0]["ratios"] = bench_gpu.ratios(rows[0]["cells"])
    aims = {a["ratio"]: a for a in bench_gpu.evaluate_aims(rows)}
    assert aims["pallas/xla"]["verdict"] == "unknown"
    assert bench_gpu.evaluate_aims([])[0]["verdict"].startswith("not measured")


def test_torch_reset_loop_equals_a_step_by_step_loop():
    torch = pytest.importorskip("torch")
    b, t, i, h = 3, 12, 4, 5
    rng = np.random.default_rng(1)
    resets = rng.random((b, t)) < 0.2
    resets[1, 5] = True
    torch.manual_seed(0)
    model = torch.nn.GRU(i, h, batch_first=True).double()
    x = torch.from_numpy(rng.standard_normal((b, t, i)))
    ys = bench_gpu.reset_runner(model, resets)(x)
    state, expected = torch.zeros(1, b, h, dtype=torch.float64), []
    for s in range(t):
        state = state * torch.from_numpy(1.0 - resets[:, s]).view(1, b, 1)
        y, state = model(x[:, s : s + 1], state)
        expected.append(y)
    torch.testing.assert_close(ys, torch.cat(expected, dim=1))


def test_bad_arguments_are_one_line(capsys):
    assert bench_gpu.main(["--repeats", "0"]) == 2
    with pytest.raises(SystemExit) as e:
        bench_gpu.main(["--shapes", "1x2"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("bench_gpu.py: error:") for line in err)


def test_the_module_imports_without_jax_flax_or_torch():
    code = (
        "import sys; sys.modules.update(torch=None, flax=None); "
        "import benchmarks.bench_gpu; assert 'jax' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
