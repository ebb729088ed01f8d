"""Print the README's results table from the runs' ``summary.json`` files.

python examples/results_table.py runs/adding runs/copy runs/forecast runs/charlm runs/seq2seq
"""

import json
import sys
from pathlib import Path


def main(workdirs: list[str]) -> None:
    print("| task | metric | baseline | target | reached | steps | wall time |")
    print("|---|---|---|---|---|---|---|")
    for workdir in workdirs:
        s = json.loads((Path(workdir) / "summary.json").read_text())
        better = "≥" if s["higher_is_better"] else "≤"
        print(
            f"| {s['task']} | {s['metric']} | {s['baseline']:.4g} | {better} {s['target']:g} "
            f"| **{s['value']:.4g}** ({'yes' if s['reached'] else 'no'}) | {s['steps']} "
            f"| {s['wall_seconds']:.0f} s |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
