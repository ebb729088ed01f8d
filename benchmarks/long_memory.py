"""The long-memory runs of docs/long-memory.md: print their commands, or their results table.

    python benchmarks/long_memory.py commands            # the 12 runs, one gru-jax line each
    python benchmarks/long_memory.py table RUNS_DIR      # the table, from RUNS_DIR/<name>/

Each run is ``gru-jax train configs/{adding,copy}_long.yaml`` with at most three ``--set``
overrides: the cell (GRU with ``chrono``, the default of both configs; GRU without it; a
two-layer minGRU with ``chrono``) and the seed (0 and 1). Every run reads the same data for a
given seed and is evaluated on 4096 fresh sequences (``train.eval_batches`` × ``batch_size``).
The table gives each seed's final evaluation metric, their mean, the ratio to the task's
memoryless baseline, and the wall time of one run.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

TASKS = {"add": "adding_long.yaml", "copy": "copy_long.yaml"}
CELLS = {
    "gru_chrono": ("GRU, `chrono`", []),
    "gru_plain": ("GRU, default init", ["model.chrono=null"]),
    "mingru": ("minGRU, 2 layers, `chrono`", ["model.cell=mingru", "model.num_layers=2"]),
}
SEEDS = (0, 1)
PAPER = {"add": "5.3e-5", "copy": "0.0197"}  # Bai, Kolter & Koltun (2018), Table 1, GRU


def runs() -> list[tuple[str, str, list[str]]]:
    """``(name, config, overrides)`` of every run."""
    return [
        (f"{task}_{cell}_s{seed}", config, [*sets, *([f"seed={seed}"] if seed else [])])
        for task, config in TASKS.items()
        for cell, (_, sets) in CELLS.items()
        for seed in SEEDS
    ]


def commands(root: str = "runs/long") -> None:
    for name, config, sets in runs():
        extra = "".join(f" --set {s}" for s in sets)
        print(f"gru-jax train configs/{config} --workdir {root}/{name}{extra}")


def table(root: Path) -> None:
    print(
        "| task | model | seed 0 | seed 1 | mean | mean / baseline | paper's GRU | time per run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for task in TASKS:
        for cell, (label, _) in CELLS.items():
            summaries = [
                json.loads((root / f"{task}_{cell}_s{seed}" / "summary.json").read_text())
                for seed in SEEDS
            ]
            values = [s["value"] for s in summaries]
            mean = statistics.fmean(values)
            minutes = statistics.fmean(s["wall_seconds"] for s in summaries) / 60
            print(
                f"| {summaries[0]['task']} T = {1020 if task == 'copy' else 600} | {label} | "
                + " | ".join(f"{v:.3g}" for v in values)
                + f" | **{mean:.3g}** | {mean / summaries[0]['baseline']:.3g} | {PAPER[task]} "
                f"| {minutes:.0f} min |"
            )


if __name__ == "__main__":
    if sys.argv[1:2] == ["commands"]:
        commands(*sys.argv[2:3])
    elif sys.argv[1:2] == ["table"] and len(sys.argv) == 3:
        table(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
