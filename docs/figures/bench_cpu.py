"""The CPU benchmark as a chart for the docs' column: draws docs/images/bench_cpu_float32.png.

Run from the repository root:

    python docs/figures/bench_cpu.py

It measures nothing: it plots ``benchmarks/results/cpu_float32.json``, the report that
``python benchmarks/bench.py --repeats 9`` wrote. These are the numbers of the chart that
``bench.py`` draws beside it (``cpu_float32.png``), laid out one mode above the other so that the
chart keeps legible text at the width of a page.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "benchmarks" / "results" / "cpu_float32.json"
OUT = ROOT / "docs" / "images" / "bench_cpu_float32.png"
# bench.py's implementations and labels, in its order: gru_jax's two variants, then the peers.
LABELS = {
    "gru_jax": "gru_jax, reset_after=True",
    "gru_jax_rb": "gru_jax, reset_after=False",
    "flax_linen": "Flax linen RNN(GRUCell)",
    "flax_nnx": "Flax NNX RNN(GRUCell)",
    "equinox": "Equinox GRUCell + scan",
    "torch": "torch.nn.GRU",
}
MODES = {"fwd": "forward", "fwdbwd": "forward+backward (one training step)"}


def main() -> None:
    report = json.loads(REPORT.read_text())
    shapes = list(report["results"])
    names = [n for n in LABELS if any(n in report["results"][s] for s in shapes)]
    width = 0.8 / len(names)

    fig, axes = plt.subplots(2, 1, figsize=(7.0, 7.4), sharex=True)
    for ax, (mode, title) in zip(axes, MODES.items(), strict=True):
        for k, name in enumerate(names):
            speedups = [
                report["results"][s][name][mode]["speedup_vs_fastest_peer"]
                if name in report["results"][s]
                else 0.0
                for s in shapes
            ]
            ax.bar(
                [j + (k - (len(names) - 1) / 2) * width for j in range(len(shapes))],
                speedups,
                width,
                label=LABELS[name],
            )
        ax.axhline(1.0, color="k", lw=0.8, label="the fastest peer (1×)")
        ax.axhline(1.25, color="k", lw=0.8, ls="--", label="target (1.25×)")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("speed-up over the fastest peer")
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(range(len(shapes)), shapes)
    axes[1].set_xlabel("shape B, T, I, H")
    axes[0].tick_params(labelbottom=True)
    handles, labels = axes[0].get_legend_handles_labels()
    # matplotlib lists the two lines before the bars: the bars first, in bench.py's order.
    handles, labels = handles[2:] + handles[:2], labels[2:] + labels[:2]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    m = report["machine"]
    fig.suptitle(
        f"Speed-up over the fastest peer (higher is better); {m['cpu']}, {m['cores']} cores, "
        f"{report['dtype']}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(OUT, dpi=110)
    plt.close(fig)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
