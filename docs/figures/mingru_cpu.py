"""The minGRU measurements on CPU, as one figure: draws docs/images/mingru_cpu.png.

Two panels one above the other, so that the figure keeps legible text at the width of a page.

Run from the repository root:

    python docs/figures/mingru_cpu.py

It measures nothing: it plots three committed result files.

* Top: the minGRU modes across sequence lengths, the sweep of ``benchmarks/bench_mingru.py``
  (median ms per training step) from ``benchmarks/results/mingru_cpu_quiet.json`` (an idle
  machine) and ``benchmarks/results/mingru_cpu.json`` (a busy one).
* Bottom: evaluation MSE against training time at T = 4096 for minGRU and the full GRU, the
  curves of ``examples/mingru_long.py`` in ``benchmarks/results/mingru_long_cpu.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "images" / "mingru_cpu.png"
MODES = {"sequential": "C0", "parallel": "C1", "chunked": "C2"}


def main() -> None:
    idle = json.loads((RESULTS / "mingru_cpu_quiet.json").read_text())
    busy = json.loads((RESULTS / "mingru_cpu.json").read_text())
    long = json.loads((RESULTS / "mingru_long_cpu.json").read_text())

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 8.4))
    for report, style, label in ((idle, "-", "idle"), (busy, "--", "busy")):
        lengths = sorted(int(t) for t in report["sweep"])
        for mode, color in MODES.items():
            ms = [report["sweep"][str(t)][mode]["median_ms"] for t in lengths]
            top.plot(
                lengths, ms, style, color=color, marker="o", ms=3, lw=1.3, label=f"{mode} ({label})"
            )
    shape = idle["shape"]
    top.set(
        xscale="log",
        yscale="log",
        xlabel="sequence length T",
        ylabel="ms per training step (median)",
        title=f"minGRU modes, B={shape['B']}, I={shape['I']}, H={shape['H']} (lower is better)",
    )
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize=8, ncol=2)

    config = long["config"]
    for result, color in zip(long["results"], ("C0", "C3"), strict=True):
        curve = result["curve"]
        bottom.plot(
            [p["train_s"] for p in curve],
            [p["eval_mse"] for p in curve],
            "o-",
            color=color,
            ms=2.5,
            lw=1.2,
            label=f"{result['model']}: {result['time_to_target_s']:.1f} s to target",
        )
    bottom.axhline(2 / 12, color="gray", ls="--", lw=1, label="baseline 0.167 (always 1)")
    bottom.axhline(
        config["target_mse"], color="green", ls=":", lw=1, label=f"target {config['target_mse']}"
    )
    bottom.set(
        yscale="log",
        xlabel="training time, s (evaluations and compilation excluded)",
        ylabel="evaluation MSE",
        title=f"adding problem, T = {config['seq_len']}, H = {config['hidden_size']}",
    )
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(fontsize=8)

    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
